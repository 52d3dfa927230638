"""Witness co-signatures in the store (both backends) and through the audit desk: stored
only for a checkpoint that exists and whose tree head they name, after their signature is
checked; one per witness key; bounded; returned with GetCheckpoints; append-only."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from typing import NamedTuple

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff import pb
from signoff.app.audit import witness as app_witness
from signoff.app.audit.checkpoints import Signer
from signoff.app.audit.desk import AuditDesk
from signoff.auth.identity import Identity
from signoff.core import checkpoints
from signoff.core import witness as w
from signoff.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from signoff.export import verify_export
from signoff.store import Store
from signoff.store import cosignatures as store_cosig
from tests.store.audit_log import at_minutes, record
from tests.store.conftest import MakeStore, StepClock

A = pb.audit
LOG_KEY = Ed25519PrivateKey.generate()
WITNESS = Identity("wit", frozenset({"witness"}))
AUDITOR = Identity("ann", frozenset({"auditor"}))


class Signed(NamedTuple):
    """A store holding five entries, its desk, and the checkpoint of them it stored."""

    store: Store
    desk: AuditDesk
    cp: checkpoints.Checkpoint


@pytest.fixture
async def signed(make_store: MakeStore, clock: StepClock) -> Signed:
    """Five entries and a version 2 checkpoint of them, read back from the store."""
    store = await make_store()
    await store.append([record(i) for i in range(1, 6)])
    desk = AuditDesk(store, clock, Signer(LOG_KEY))
    made = await desk.checkpoint_if_due(1, dt.timedelta(0))
    assert made is not None
    assert made.tree_size == 5
    cp = await store.last_checkpoint()
    assert cp is not None
    return Signed(store, desk, cp)


def witness_key() -> Ed25519PrivateKey:
    """A fresh witness signing key."""
    return Ed25519PrivateKey.generate()


def request(cp: checkpoints.Checkpoint, key: Ed25519PrivateKey) -> A.AddCosignatureRequest:
    cs = w.cosign(key, cp, at_minutes(90))
    return A.AddCosignatureRequest(
        seq=cp.seq,
        cosignature=app_witness.cosignature_proto(cs),
        public_key_pem=checkpoints.public_pem(key).decode(),
    )


async def test_cosignatures_are_stored_per_checkpoint_and_returned_with_it(signed: Signed) -> None:
    store, desk, cp = signed
    a, b = witness_key(), witness_key()
    assert (await desk.add_cosignature(WITNESS, request(cp, a))).cosignatures == 1
    assert (await desk.add_cosignature(WITNESS, request(cp, b))).cosignatures == 2
    # A repeat from the same witness keeps the first one.
    assert (await desk.add_cosignature(WITNESS, request(cp, a))).cosignatures == 2
    stored = (await store.cosignatures())[cp.seq]
    assert {cs.key_id for cs in stored} == {checkpoints.key_id(a), checkpoints.key_id(b)}
    for cs in stored:
        key = a if cs.key_id == checkpoints.key_id(a) else b
        assert w.verify_cosignature(key.public_key(), cs)
        assert w.covers(cs, cp)
    for who in (AUDITOR, WITNESS):
        resp = await desk.list_checkpoints(who, A.GetCheckpointsRequest())
        [out] = resp.checkpoints
        assert len(out.cosignatures) == 2
        assert {c.key_id for c in out.cosignatures} == {cs.key_id for cs in stored}
    assert await store.cosignatures(from_seq=cp.seq + 1) == {}


async def test_a_cosignature_of_no_stored_checkpoint_is_not_found(signed: Signed) -> None:
    store, desk, cp = signed
    req = request(cp, witness_key())
    req.seq = cp.seq - 1
    with pytest.raises(NotFound, match=f"no stored checkpoint at seq {cp.seq - 1}"):
        await desk.add_cosignature(WITNESS, req)
    assert await store.cosignatures() == {}


async def test_a_cosignature_of_another_tree_head_is_refused(signed: Signed) -> None:
    store, desk, cp = signed
    key = witness_key()
    other_root = dataclasses.replace(cp, root_hash="ab" * 32)
    with pytest.raises(InvalidArgument, match="not the checkpoint at seq"):
        await desk.add_cosignature(WITNESS, request(other_root, key))
    other_log = checkpoints.sign(Ed25519PrivateKey.generate(), cp.seq, cp.head_hash,
                                 cp.time, root_hash=cp.root_hash)  # fmt: skip
    with pytest.raises(InvalidArgument, match="of log key"):
        await desk.add_cosignature(WITNESS, request(other_log, key))
    assert await store.cosignatures() == {}


async def test_a_cosignature_that_does_not_verify_is_refused(signed: Signed) -> None:
    store, desk, cp = signed
    key = witness_key()
    req = request(cp, key)
    bad = A.AddCosignatureRequest()
    bad.CopyFrom(req)
    bad.cosignature.time.seconds += 1  # signed at another time
    with pytest.raises(InvalidArgument, match=r"cosignature\.signature: does not verify"):
        await desk.add_cosignature(WITNESS, bad)
    bad.CopyFrom(req)
    bad.public_key_pem = checkpoints.public_pem(witness_key()).decode()
    with pytest.raises(InvalidArgument, match=r"cosignature\.key_id"):
        await desk.add_cosignature(WITNESS, bad)
    bad.public_key_pem = "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n"
    with pytest.raises(InvalidArgument, match="public_key_pem: not a PEM public key"):
        await desk.add_cosignature(WITNESS, bad)
    bad.public_key_pem = "x" * (app_witness.MAX_PEM_BYTES + 1)
    with pytest.raises(InvalidArgument, match="public_key_pem: must be"):
        await desk.add_cosignature(WITNESS, bad)
    bad.CopyFrom(req)
    bad.ClearField("cosignature")
    with pytest.raises(InvalidArgument, match="cosignature: is required"):
        await desk.add_cosignature(WITNESS, bad)
    assert await store.cosignatures() == {}
    assert (await desk.add_cosignature(WITNESS, req)).cosignatures == 1


async def test_only_witnesses_add_and_only_auditors_or_witnesses_read(signed: Signed) -> None:
    _, desk, cp = signed
    with pytest.raises(PermissionDenied, match="ann needs the role witness"):
        await desk.add_cosignature(AUDITOR, request(cp, witness_key()))
    agent = Identity("bot", frozenset({"agent"}))
    with pytest.raises(PermissionDenied, match="auditor or witness"):
        await desk.list_checkpoints(agent, A.GetCheckpointsRequest())
    with pytest.raises(PermissionDenied, match="auditor or witness"):
        await desk.consistency_proof(agent, A.GetConsistencyProofRequest(first=1, second=5))
    with pytest.raises(PermissionDenied, match="needs the role auditor"):
        await desk.query(WITNESS, A.QueryAuditRequest())  # entries stay for auditors


async def test_a_checkpoint_carries_a_bounded_number_of_cosignatures(signed: Signed) -> None:
    store, _, cp = signed
    keys = [witness_key() for _ in range(store_cosig.MAX_PER_CHECKPOINT + 1)]
    sigs = [w.cosign(k, cp, at_minutes(90)) for k in keys]
    counts = await asyncio.gather(*(store.add_cosignature(cp.seq, cs) for cs in sigs[:-1]))
    assert sorted(counts) == list(range(1, store_cosig.MAX_PER_CHECKPOINT + 1))
    with pytest.raises(FailedPrecondition, match="carries 32 co-signatures already"):
        await store.add_cosignature(cp.seq, sigs[-1])


async def test_cosignatures_survive_reopening(make_store: MakeStore, signed: Signed) -> None:
    store, _, cp = signed
    cs = w.cosign(witness_key(), cp, at_minutes(90))
    await store.add_cosignature(cp.seq, cs)
    await store.close()
    store = await make_store()
    assert await store.cosignatures() == {cp.seq: [cs]}
    naive = dataclasses.replace(cs, time=dt.datetime(2024, 5, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.add_cosignature(cp.seq, naive)


async def test_exports_carry_cosignatures_and_still_verify(signed: Signed) -> None:
    _, desk, cp = signed
    key = witness_key()
    await desk.add_cosignature(WITNESS, request(cp, key))
    data = b"".join(
        [c.data async for c in desk.export(AUDITOR, A.ExportAuditRequest())]
    ).splitlines(keepends=True)
    [line] = [json.loads(x) for x in data if b'"checkpoint":{' in x and b'"end"' not in x]
    assert line["checkpoint"]["seq"] == cp.seq
    [cs] = [w.parse_cosignature(obj) for obj in line["cosignatures"]]
    assert w.verify_cosignature(key.public_key(), cs)
    assert w.covers(cs, cp)
    report = verify_export(data, LOG_KEY.public_key())
    assert report.ok, report
    # A malformed co-signature makes the file malformed, naming it.
    bad = [x.replace(b'"cosignatures":[{', b'"cosignatures":[{"extra":1,') for x in data]
    report = verify_export(bad, LOG_KEY.public_key())
    assert not report.ok
    assert "cosignatures[0] field 'extra' is not part of the format" in report.detail
