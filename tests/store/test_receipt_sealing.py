"""Receipts sealed once per write batch (store/sealing.py), on both backends: the writer
calls the sealer once with the batch's leaves and stores each decision with its receipt."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from signoff.core.audit import AuditRecord
from signoff.errors import AlreadyExists, Unavailable
from signoff.store import sealing
from signoff.store.base import DecisionRecord, Store

from .conftest import T0


class CountingSealer:
    """Seals a batch as `[b"<" + leaf + b">" ...]` and remembers every call's leaves."""

    def __init__(self) -> None:
        self.calls: list[list[bytes]] = []

    def __call__(self, leaves: list[bytes]) -> list[bytes]:
        self.calls.append(list(leaves))
        return [b"<" + leaf + b">" for leaf in leaves]


def _rec(n: int, leaf: bytes = b"", request_id: str = "") -> DecisionRecord:
    return DecisionRecord(
        decision_id=f"d{n}",
        principal_id="bot",
        request_id=request_id,
        request_digest="0" * 64,
        action_name="x.do",
        outcome="OUTCOME_AUTO_ALLOW",
        created_at=T0,
        decision=f"decision {n}".encode(),
        receipt_leaf=leaf,
    )


def _audit(rec: DecisionRecord) -> AuditRecord:
    return AuditRecord(type="decision", time=T0, decision_id=rec.decision_id)


async def test_one_seal_per_batch_and_each_decision_stored_with_its_receipt(store: Store):
    sealer = CountingSealer()
    store.use_sealer(sealer)
    recs = [
        _rec(n, leaf=f"leaf {n}".encode() if n % 3 else b"", request_id=f"r{n}") for n in range(12)
    ]
    results = await asyncio.gather(*(store.record_decision(r, _audit(r)) for r in recs))
    # Queued before the writer took a batch: one group commit, one call of the sealer.
    assert sealer.calls == [[r.receipt_leaf for r in recs if r.receipt_leaf]]
    for rec, (stored, replayed) in zip(recs, results, strict=True):
        assert not replayed
        expected = rec.decision + (b"<" + rec.receipt_leaf + b">" if rec.receipt_leaf else b"")
        assert stored.decision == expected
        assert stored.receipt_leaf == b""
        found = await store.find_decision("bot", rec.request_id)
        assert found is not None
        assert found.decision == expected


async def test_a_replay_returns_the_stored_receipt_even_in_the_same_batch(store: Store):
    sealer = CountingSealer()
    store.use_sealer(sealer)
    first = _rec(1, leaf=b"first", request_id="r")
    retry = dataclasses.replace(first, decision_id="d2", decision=b"other", receipt_leaf=b"second")
    (a, a_replayed), (b, b_replayed) = await asyncio.gather(
        store.record_decision(first, _audit(first)), store.record_decision(retry, _audit(retry))
    )
    assert (a_replayed, b_replayed) == (False, True)
    assert a.decision == b.decision == b"decision 1<first>"
    # A later retry, in its own batch, gets the same bytes back.
    later = dataclasses.replace(retry, receipt_leaf=b"third")
    c, replayed = await store.record_decision(later, _audit(later))
    assert replayed
    assert c.decision == b"decision 1<first>"


async def test_a_batch_run_again_after_a_refused_operation_keeps_its_one_seal(store: Store):
    sealer = CountingSealer()
    store.use_sealer(sealer)
    first = _rec(0, leaf=b"leaf 0", request_id="r")
    await store.record_decision(first, _audit(first))
    # The same key for another request is refused, which makes the writer run the batch
    # again operation by operation (SAVEPOINTs): the others keep the batch's seal.
    clash = dataclasses.replace(first, decision_id="d9", request_digest="1" * 64)
    recs = [_rec(n, leaf=f"leaf {n}".encode(), request_id=f"r{n}") for n in range(1, 4)]
    results = await asyncio.gather(
        store.record_decision(recs[0], _audit(recs[0])),
        store.record_decision(clash, _audit(clash)),
        *(store.record_decision(r, _audit(r)) for r in recs[1:]),
        return_exceptions=True,
    )
    assert isinstance(results[1], AlreadyExists)
    assert sealer.calls[1:] == [[b"leaf 1", b"leaf 0", b"leaf 2", b"leaf 3"]]
    for rec in recs:
        found = await store.find_decision("bot", rec.request_id)
        assert found is not None
        assert found.decision == rec.decision + b"<" + rec.receipt_leaf + b">"


async def test_a_decision_without_a_leaf_calls_no_sealer(store: Store):
    sealer = CountingSealer()
    store.use_sealer(sealer)
    rec = _rec(1, request_id="r")
    stored, _ = await store.record_decision(rec, _audit(rec))
    assert stored.decision == rec.decision
    assert sealer.calls == []


async def test_a_leaf_without_a_sealer_fails_its_batch_and_stores_nothing(store: Store):
    rec = _rec(1, leaf=b"leaf", request_id="r")
    with pytest.raises(Unavailable, match="no sealer"):
        await store.record_decision(rec, _audit(rec))
    assert await store.find_decision("bot", "r") is None


async def test_a_failing_sealer_fails_the_batch_and_the_next_one_commits(store: Store):
    def broken(leaves: list[bytes]) -> list[bytes]:
        raise RuntimeError("the key is gone")

    store.use_sealer(broken)
    rec = _rec(1, leaf=b"leaf", request_id="r")
    with pytest.raises(Unavailable, match="the key is gone"):
        await store.record_decision(rec, _audit(rec))
    assert await store.find_decision("bot", "r") is None
    store.use_sealer(CountingSealer())
    stored, replayed = await store.record_decision(rec, _audit(rec))
    assert not replayed
    assert stored.decision == b"decision 1<leaf>"


def test_with_receipt_keeps_every_other_field():
    # with_receipt builds the record field by field (faster than dataclasses.replace): a new
    # field of DecisionRecord must be added there too, and this test says so.
    names = {f.name for f in dataclasses.fields(DecisionRecord)}
    assert names == {
        *("decision_id", "principal_id", "request_id", "request_digest", "action_name"),
        *("outcome", "created_at", "decision", "receipt_leaf"),
    }, "a new DecisionRecord field: copy it in store/sealing.py's with_receipt"
    rec = _rec(7, leaf=b"leaf", request_id="r7")
    out = sealing.with_receipt(rec, sealing.Leaf(b"leaf", b"<leaf>"))
    assert out == dataclasses.replace(rec, decision=rec.decision + b"<leaf>", receipt_leaf=b"")
    assert sealing.with_receipt(rec, None) is rec
