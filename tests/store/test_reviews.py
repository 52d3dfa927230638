"""Reviews in the store: opened with their decision, changed only by a guarded update, immutable
once resolved, kept across restarts and schema upgrades -- and the audit chain holds throughout.

Tests taking the `store` / `make_store` fixtures run against every backend; the ones that open
a raw connection are SQLite-specific.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import sqlite3
from pathlib import Path

import pytest

from signoff.core.audit import GENESIS, seal, verify_chain
from signoff.errors import FailedPrecondition, NotFound
from signoff.store import ReviewQuery, ReviewRecord, Store
from signoff.store import migrations as migrations_module
from signoff.store.sqlite import audit as audit_sql
from signoff.store.sqlite import decisions as decisions_sql
from tests.store.conftest import MakeStore
from tests.store.helpers import all_entries, in_one_batch
from tests.store.reviews import change_audit, changed, open_review, opening

STATES = ["APPROVED", "MODIFIED", "REJECTED", "CANCELLED", "EXPIRED", "PENDING"]


def raw(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "db" / "signoff.db", isolation_level=None)


async def test_decision_review_and_both_entries_commit_together(store: Store) -> None:
    o = opening(1)
    assert await store.record_decision(o.decision, o.audit, o.review, o.review_audit) == (
        o.decision,
        False,
    )
    assert await store.get_review("rev-1") == o.review
    assert await store.review_for_decision("dec-1") == o.review
    entries = await all_entries(store)
    assert [(e.seq, e.type, e.review_id) for e in entries] == [
        (1, "decision", ""),
        (2, "review.opened", "rev-1"),
    ]
    assert verify_chain(entries).ok


async def test_old_call_signature_opens_no_review(store: Store) -> None:
    o = opening(1)
    await store.record_decision(o.decision, o.audit)
    assert await store.review_for_decision("dec-1") is None
    assert await store.get_review("rev-1") is None
    assert [e.type for e in await all_entries(store)] == ["decision"]


async def test_replay_returns_the_first_decision_and_inserts_nothing(store: Store) -> None:
    first = opening(1)
    await store.record_decision(first.decision, first.audit, first.review, first.review_audit)
    # Same principal and request_id (so same digest), fresh ids as a retrying server makes.
    retry = opening(2, request_id="req-1")
    stored, replayed = await store.record_decision(
        retry.decision, retry.audit, retry.review, retry.review_audit
    )
    assert (stored, replayed) == (first.decision, True)
    assert await store.get_review("rev-2") is None
    assert await store.review_for_decision("dec-1") == first.review
    assert len(await all_entries(store)) == 2


async def test_racing_duplicates_open_one_review(store: Store) -> None:
    copies = [opening(i, request_id="req-x") for i in range(10)]
    results = await in_one_batch(
        store,
        *(store.record_decision(c.decision, c.audit, c.review, c.review_audit) for c in copies),
    )
    assert [replayed for _, replayed in results].count(False) == 1
    assert len(await store.list_reviews(ReviewQuery(states=()))) == 1
    assert [e.type for e in await all_entries(store)] == ["decision", "review.opened"]


async def test_a_review_that_cannot_be_stored_stores_no_decision(store: Store) -> None:
    await open_review(store, 1)
    clash = opening(2)
    clash = dataclasses.replace(  # rev-1 exists: the review insert fails
        clash,
        review=dataclasses.replace(clash.review, review_id="rev-1"),
        review_audit=dataclasses.replace(clash.review_audit, review_id="rev-1"),
    )
    ok = opening(3)
    results = await in_one_batch(
        store,
        store.record_decision(clash.decision, clash.audit, clash.review, clash.review_audit),
        store.record_decision(ok.decision, ok.audit, ok.review, ok.review_audit),
    )
    assert isinstance(results[0], FailedPrecondition)
    assert results[1] == (ok.decision, False)
    assert await store.find_decision("agent-1", "req-2") is None
    assert await store.review_for_decision("dec-2") is None
    entries = await all_entries(store)
    assert [e.decision_id for e in entries] == ["dec-1", "dec-1", "dec-3", "dec-3"]
    assert verify_chain(entries).ok


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("review_audit", None, "review.opened audit record"),
        ("decision_id", "dec-9", "another decision"),
        ("version", 2, "PENDING at version 1"),
        ("state", "APPROVED", "PENDING at version 1"),
    ],
)
async def test_a_malformed_opening_is_refused(
    store: Store, field: str, value: object, message: str
) -> None:
    o = opening(1)
    review, review_audit = o.review, o.review_audit
    if field == "review_audit":
        review_audit = None
    else:
        review = dataclasses.replace(review, **{field: value})
    with pytest.raises(ValueError, match=message):
        await store.record_decision(o.decision, o.audit, review, review_audit)
    assert await all_entries(store) == []


async def test_update_changes_the_review_and_appends_its_entries(store: Store) -> None:
    r = await open_review(store, 1)
    escalated = changed(r, "PENDING", reviewer_group="finance-leads")
    assert (
        await store.update_review(escalated, 1, [change_audit(escalated, "signoff")]) == escalated
    )
    approved = changed(escalated, "APPROVED")
    assert await store.update_review(approved, 2, [change_audit(approved)]) == approved
    assert await store.get_review("rev-1") == approved
    entries = await all_entries(store)
    assert [e.type for e in entries] == [
        *("decision", "review.opened", "review.escalated", "review.approved"),
    ]
    assert verify_chain(entries).ok


async def test_update_refusals_say_why_and_change_nothing(store: Store) -> None:
    r = await open_review(store, 1)
    with pytest.raises(ValueError, match=r"expected_version \+ 1 \(2\), not 3"):
        await store.update_review(dataclasses.replace(changed(r), version=3), 1, [])
    with pytest.raises(ValueError, match="unknown review state 'DONE'"):
        await store.update_review(changed(r, "DONE"), 1, [])
    with pytest.raises(ValueError, match="cannot change principal_id"):
        await store.update_review(changed(r, principal_id="mallory"), 1, [change_audit(r)])
    with pytest.raises(NotFound, match="review 'rev-404' not found"):
        await store.update_review(changed(dataclasses.replace(r, review_id="rev-404")), 1, [])
    assert await store.get_review("rev-1") == r  # the refused updates left no trace

    escalated = changed(r, "PENDING")
    await store.update_review(escalated, 1, [change_audit(escalated)])
    with pytest.raises(
        FailedPrecondition, match="changed since version 1: it is now PENDING at version 2"
    ) as stale:
        await store.update_review(changed(r), 1, [change_audit(changed(r))])
    assert stale.value.current_state == "PENDING"

    rejected = changed(escalated, "REJECTED")
    await store.update_review(rejected, 2, [change_audit(rejected)])
    with pytest.raises(FailedPrecondition, match="already REJECTED \\(version 3\\)") as resolved:
        await store.update_review(changed(rejected, "APPROVED"), 3, [])
    assert resolved.value.current_state == "REJECTED"
    assert await store.get_review("rev-1") == rejected
    assert [e.type for e in await all_entries(store)][-2:] == [
        "review.escalated",
        "review.rejected",
    ]


@pytest.mark.parametrize("mode", ["same-batch", "consecutive-batches", "free-running"])
async def test_concurrent_updates_from_one_version_have_exactly_one_winner(
    make_store: MakeStore, mode: str
) -> None:
    store = await make_store(max_batch=1 if mode == "consecutive-batches" else 512)
    rng = random.Random(f"race-{mode}")
    rounds, updaters = 50, 0
    for n in range(rounds):
        r = await open_review(store, n)
        k = rng.randint(2, 10)
        updaters += k
        attempts = [
            changed(r, rng.choice(STATES), review=f"updater {i}".encode()) for i in range(k)
        ]
        calls = [
            store.update_review(a, 1, [change_audit(a, f"reviewer-{i}")])
            for i, a in enumerate(attempts)
        ]
        if mode == "same-batch":
            results = await in_one_batch(store, *calls)
        else:
            results = await asyncio.gather(*calls, return_exceptions=True)
        winners = [x for x in results if isinstance(x, ReviewRecord)]
        losers = [x for x in results if not isinstance(x, ReviewRecord)]
        assert len(winners) == 1, results
        assert all(isinstance(x, FailedPrecondition) for x in losers), losers
        stored = await store.get_review(r.review_id)
        assert stored == winners[0]
        assert all(x.current_state == stored.state for x in losers)  # type: ignore[union-attr]
    entries = await all_entries(store)
    changes = [e for e in entries if e.type not in ("decision", "review.opened")]
    assert len(changes) == rounds  # one entry per winner, none for a loser
    assert len({e.review_id for e in changes}) == rounds
    assert verify_chain(entries).ok
    assert updaters >= 2 * rounds


async def test_a_failed_update_does_not_fail_its_batch(store: Store) -> None:
    r1, r2 = await open_review(store, 1), await open_review(store, 2)
    won = changed(r1)
    await store.update_review(won, 1, [change_audit(won)])
    o3, ok = opening(3), changed(r2, "MODIFIED")
    results = await in_one_batch(
        store,
        store.update_review(changed(r1, "REJECTED"), 1, [change_audit(changed(r1, "REJECTED"))]),
        store.record_decision(o3.decision, o3.audit, o3.review, o3.review_audit),
        store.update_review(ok, 1, [change_audit(ok)]),
        store.update_review(changed(dataclasses.replace(r1, review_id="rev-x")), 1, []),
    )
    assert isinstance(results[0], FailedPrecondition)
    assert results[1] == (o3.decision, False)
    assert results[2] == ok
    assert isinstance(results[3], NotFound)
    assert await store.get_review("rev-1") == won
    assert verify_chain(await all_entries(store)).ok


@pytest.mark.sqlite_only
async def test_the_database_refuses_to_change_resolved_reviews_or_delete_any(
    store: Store, tmp_path: Path
) -> None:
    pending, resolved = await open_review(store, 1), await open_review(store, 2)
    await store.update_review(changed(resolved), 1, [change_audit(changed(resolved))])
    with raw(tmp_path) as conn:
        refused = [
            ("SET state = 'PENDING', version = version + 1 WHERE review_id = 'rev-2'", "immutable"),
            ("SET version = version + 2 WHERE review_id = 'rev-1'", "exactly 1"),
            ("SET principal_id = 'x', version = 2 WHERE review_id = 'rev-1'", "identity"),
            ("SET state = 'DONE', version = 2 WHERE review_id = 'rev-1'", "CHECK"),
        ]
        for sql, message in refused:
            with pytest.raises(sqlite3.IntegrityError, match=message):
                conn.execute(f"UPDATE reviews {sql}")
        with pytest.raises(sqlite3.IntegrityError, match="never deleted"):
            conn.execute("DELETE FROM reviews WHERE review_id = 'rev-1'")
    assert await store.get_review("rev-1") == pending
    assert await store.get_review("rev-2") == changed(resolved)


async def test_reopening_keeps_reviews_deadlines_and_the_chain(make_store: MakeStore) -> None:
    store = await make_store()
    r1 = await open_review(store, 1, expires=opening(1).review.created_at)
    r2 = await open_review(store, 2)
    await store.update_review(changed(r2), 1, [change_audit(changed(r2))])
    before = await store.list_reviews(ReviewQuery(states=()))
    await store.close()

    reopened = await make_store()
    assert await reopened.list_reviews(ReviewQuery(states=())) == before
    assert await reopened.due_reviews(r1.created_at) == [r1]
    # The version guard still holds after a restart: nothing is approved twice.
    with pytest.raises(FailedPrecondition, match="already APPROVED"):
        await reopened.update_review(changed(r2, "REJECTED"), 1, [])
    expired = changed(r1, "EXPIRED")
    assert await reopened.update_review(expired, 1, [change_audit(expired, "signoff")]) == expired
    assert await reopened.due_reviews(r1.created_at) == []
    entries = await all_entries(reopened)
    assert len(entries) == 6
    assert verify_chain(entries).ok


@pytest.mark.sqlite_only
async def test_a_database_from_migration_0001_upgrades_in_place(
    make_store: MakeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = migrations_module.load
    with monkeypatch.context() as patch:
        patch.setattr(migrations_module, "load", lambda dialect: full(dialect)[:1])
        await (await make_store()).close()
    # A decision as a 0001 build wrote it (today's writer reads 0003's tables).
    o = opening(1)
    with raw(tmp_path) as conn:
        decisions_sql.insert(conn, o.decision)
        audit_sql.insert(conn, seal(o.audit, seq=1, prev_hash=GENESIS), (0, GENESIS), "")
    with raw(tmp_path) as conn:
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (1,)
        assert (
            conn.execute("SELECT name FROM sqlite_master WHERE name = 'reviews'").fetchall() == []
        )

    store = await make_store()
    assert await store.find_decision("agent-1", "req-1") == opening(1).decision
    r = await open_review(store, 2)
    await store.update_review(changed(r), 1, [change_audit(changed(r))])
    with raw(tmp_path) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        assert rows.fetchall()[:2] == [(1, "0001_init.sql"), (2, "0002_reviews.sql")]
    entries = await all_entries(store)
    assert [e.type for e in entries] == ["decision", "decision", "review.opened", "review.approved"]
    assert verify_chain(entries).ok
