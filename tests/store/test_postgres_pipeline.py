"""PostgreSQL group commit in pipeline mode: what a batch costs on the wire, and that an
operation that fails in a pipelined batch fails alone, with its own error.

Round trips are counted by a relay that reads the protocol between the store and the server
(tests/pgwire.py), so they are what the server saw, whatever the client library does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable
from typing import Any

import pytest

from signoff.core.audit import AuditRecord, verify_chain
from signoff.errors import AlreadyExists, FailedPrecondition
from signoff.ids import Clock
from signoff.store import Store
from signoff.store.postgres.store import PostgresStore
from tests.pgwire import WireCounter
from tests.store.conftest import MakeStore
from tests.store.helpers import all_entries, in_one_batch
from tests.store.reviews import T0, change_audit, changed, open_review, opening
from tests.store.test_grant_cache import grant

pytestmark = pytest.mark.postgres_only


def recorder(store: Store) -> Any:
    """`record(n, review=...)`: record decision `dec-n` with two matched rules (rows in
    audit_rules), opening review `rev-n` if asked."""

    def call(n: int, *, review: bool = False) -> Awaitable[Any]:
        o = opening(n)
        audit = dataclasses.replace(o.audit, rules=("over-threshold", "vip"))
        if review:
            return store.record_decision(o.decision, audit, o.review, o.review_audit)
        return store.record_decision(dataclasses.replace(o.decision, outcome="AUTO_ALLOW"), audit)

    return call


async def test_a_batch_costs_the_same_round_trips_whatever_its_size(
    pg_url: str, clock: Clock
) -> None:
    relay = WireCounter(pg_url)
    await relay.start()
    # No idle tree step: its round trips would be counted with the batch's.
    store = PostgresStore(relay.url(), clock, tree_idle=None)
    await store.open()
    await asyncio.wait_for(store._tree.caught_up.wait(), 60)  # the step at open, done
    record = recorder(store)
    try:
        await asyncio.gather(*(record(n) for n in range(1, 11)))  # connections, statements warm
        trips, statements = {}, {}
        first = 100
        for size in (2, 20, 120):
            calls = [record(n, review=n % 3 == 0) for n in range(first, first + size)]
            calls.append(record(1))  # a replay: answered from the keys read with the head
            commits = store.stats.commits
            relay.reset()
            results = await asyncio.gather(*calls)
            assert store.stats.commits == commits + 1  # one batch
            assert [replayed for _, replayed in results] == [False] * size + [True]
            trips[size], statements[size] = relay.round_trips, relay.statements
            first += size
        # A pool check, the lock + chain head + stored decisions read, COMMIT.
        assert trips == {2: 3, 20: 3, 120: 3}, (trips, statements)
        assert statements[120] > statements[2]  # the relay did see the batch grow
        assert verify_chain(await all_entries(store)).ok
    finally:
        await store.close()
        await relay.close()


async def test_a_statement_the_database_refuses_fails_only_its_decision(store: Store) -> None:
    record = recorder(store)
    await record(1)
    # A new request whose decision_id is already stored: the primary key refuses it.
    o = opening(5)
    clash = dataclasses.replace(o.decision, decision_id="dec-1")
    clash_audit = dataclasses.replace(o.audit, decision_id="dec-1")
    results = await in_one_batch(
        store,
        record(2),
        store.record_decision(clash, clash_audit),
        record(3, review=True),
    )
    assert isinstance(results[1], FailedPrecondition)
    assert "rejected by the database" in results[1].message
    assert "decisions_pkey" in results[1].message
    assert [replayed for _, replayed in (results[0], results[2])] == [False, False]
    entries = await all_entries(store)
    assert [(e.decision_id, e.type) for e in entries] == [
        ("dec-1", "decision"),
        ("dec-2", "decision"),
        ("dec-3", "decision"),
        ("dec-3", "review.opened"),
    ]
    assert verify_chain(entries).ok
    assert store.stats.retried_batches == 1  # type: ignore[attr-defined]


async def test_refused_review_changes_and_reused_request_ids_fail_alone_in_the_pipeline(
    store: Store,
) -> None:
    record = recorder(store)
    r = await open_review(store, 1)
    new, stale = changed(r), changed(r, version=8)
    # Fails after its decision row was held: the review's time has no zone.
    naive = opening(8)
    naive = dataclasses.replace(
        naive, review=dataclasses.replace(naive.review, updated_at=T0.replace(tzinfo=None))
    )
    reused = opening(9, request_id="req-1")
    reused = dataclasses.replace(  # req-1 was used for a different request
        reused, decision=dataclasses.replace(reused.decision, request_digest="f" * 64)
    )
    results = await in_one_batch(
        store,
        record(2),
        store.update_review(stale, 7, [change_audit(stale)]),  # the review is at version 1
        record(3, review=True),
        store.record_decision(reused.decision, reused.audit, reused.review, reused.review_audit),
        store.record_decision(naive.decision, naive.audit, naive.review, naive.review_audit),
        store.update_review(new, r.version, [change_audit(new)]),
    )
    assert isinstance(results[1], FailedPrecondition)
    assert "changed since version 7" in results[1].message
    assert isinstance(results[3], AlreadyExists)
    assert isinstance(results[4], ValueError)
    assert "timezone-aware" in str(results[4])
    assert results[5] == new
    entries = await all_entries(store)
    assert [(e.type, e.decision_id) for e in entries[2:]] == [
        ("decision", "dec-2"),
        ("decision", "dec-3"),
        ("review.opened", "dec-3"),
        ("review.approved", "dec-1"),
    ]
    assert await store.get_review("rev-9") is None
    assert await store.find_decision("agent-1", "req-8") is None
    assert verify_chain(entries).ok
    assert store.stats.retried_batches == 0  # type: ignore[attr-defined]


async def test_standing_approvals_are_used_and_used_up_in_one_pipelined_batch(
    make_store: MakeStore,
) -> None:
    store = await make_store()
    g = await grant(store, 1, T0.replace(year=2100), max_uses=1)
    a, b = opening(10), opening(11)
    results = await in_one_batch(
        store,
        store.record_granted_decision(a.decision, a.audit, g.grant_id, T0),
        store.record_granted_decision(b.decision, b.audit, g.grant_id, T0),
    )
    assert results == [(a.decision, False), None]
    [stored] = [x for x in await store.list_grants("finance", T0, False) if x.grant_id == "g-1"]
    assert stored.uses == 1
    revoke = AuditRecord(type="grant.revoked", time=T0, actor="alice", payload={"grant_id": "g-1"})
    assert await store.revoke_grant(g.grant_id, "alice", T0, revoke) is True
    assert await store.revoke_grant(g.grant_id, "alice", T0, revoke) is False
    assert verify_chain(await all_entries(store)).ok


async def test_rows_inserted_in_bulk_read_back_exactly(store: Store) -> None:
    zone = dt.timezone(dt.timedelta(hours=5, minutes=30))
    when = dt.datetime(2024, 5, 1, 17, 30, 1, 123456, tzinfo=zone)
    o = opening(1, created=when, expires=when + dt.timedelta(days=2), principal="ağent-😀")
    rec = dataclasses.replace(o.decision, decision=bytes(range(256)))
    review = dataclasses.replace(o.review, review=b"\x00\\x00'\"")
    audit = dataclasses.replace(
        o.audit,
        rules=('quote"d', "back\\slash", "ü", 'quote"d'),
        payload={"ü": "😀", "esc": '"\\\n\t\u2028', "n": [1.5, -0.0, 10**20]},
    )
    plain = opening(2)  # a review that never expires, in the same batch
    results = await in_one_batch(
        store,
        store.record_decision(rec, audit, review, o.review_audit),
        store.record_decision(plain.decision, plain.audit, plain.review, plain.review_audit),
    )
    assert results == [(rec, False), (plain.decision, False)]
    assert await store.find_decision(rec.principal_id, rec.request_id) == rec
    assert await store.get_review(review.review_id) == review
    assert await store.get_review(plain.review.review_id) == plain.review
    entries = await all_entries(store)
    assert entries[0].payload_json == audit.payload_json
    assert entries[0].rules == audit.rules
    assert (entries[0].actor, entries[0].time) == (audit.actor, audit.time)
    assert verify_chain(entries).ok
    # The rule index holds each matched rule once.
    assert sorted(rule for _, rule in await store.rule_index(1, 1)) == sorted(set(audit.rules))  # type: ignore[attr-defined]
    assert store.stats.retried_batches == 0  # type: ignore[attr-defined]
