"""Behaviour of the storage layer: group commit, idempotency, failures, tamper evidence.

Tests taking the `store` / `make_store` fixtures run against every backend; the ones that
open a `SqliteStore` or poke at the file are SQLite-specific.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from signoff.core.audit import GENESIS, AuditEntry, AuditRecord, entry_hash, seal, verify_chain
from signoff.errors import AlreadyExists, FailedPrecondition, Unavailable
from signoff.ids import Clock
from signoff.store import DecisionRecord, SqliteStore, Store
from signoff.store.migrations import load
from tests.store.helpers import all_entries, in_one_batch

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
MakeStore = Callable[..., Awaitable[Store]]


def decision(n: int, *, request_id: str | None = None, digest: str = "") -> DecisionRecord:
    """Decision number `n` by agent-1 (request_id defaults to f"req-{n}")."""
    return DecisionRecord(
        decision_id=f"dec-{n}",
        principal_id="agent-1",
        request_id=f"req-{n}" if request_id is None else request_id,
        request_digest=digest or hashlib.sha256(f"request {n}".encode()).hexdigest(),
        action_name="refund.issue",
        outcome="AUTO_ALLOW",
        created_at=T0,
        decision=f"decision bytes {n}".encode(),
    )


def audit_of(rec: DecisionRecord) -> AuditRecord:
    """The audit record the app appends with `rec`."""
    return AuditRecord(
        type="decision",
        time=rec.created_at,
        actor=rec.principal_id,
        request_id=rec.request_id,
        decision_id=rec.decision_id,
        action_name=rec.action_name,
        outcome=rec.outcome,
        principal=rec.principal_id,
        rules=("small-refund", "vip"),
        policy_version="v1",
        payload={"params": {"amount": 12.5}, "decision": rec.decision_id},
    )


def loaded(n: int, **payload: Any) -> AuditRecord:
    """A policy.loaded record numbered `n`."""
    return AuditRecord(
        type="policy.loaded", time=T0, actor="signoff", policy_version=f"v{n}", payload=payload
    )


# -- behaviour of every backend -------------------------------------------------------------


async def test_empty_log_has_genesis_head(store: Store) -> None:
    assert isinstance(store, Store)
    assert await store.audit_head() == (0, GENESIS)
    assert await store.read_audit() == []


async def test_appends_get_gap_free_seq_and_read_back_identical(store: Store) -> None:
    first = await store.append([loaded(1), loaded(2)])
    second = await store.append([loaded(3)])
    assert [e.seq for e in first + second] == [1, 2, 3]
    assert first[0].prev_hash == GENESIS
    assert await all_entries(store) == first + second
    assert await store.audit_head() == (3, second[0].hash)
    assert (await store.read_audit(from_seq=2, limit=1)) == [first[1]]


async def test_concurrent_decisions_are_group_committed_into_one_valid_chain(
    store: Store,
) -> None:
    n = 2000
    results = await asyncio.gather(
        *(store.record_decision(decision(i), audit_of(decision(i))) for i in range(n))
    )
    assert all(replayed is False for _, replayed in results)
    entries = await all_entries(store)
    assert [e.seq for e in entries] == list(range(1, n + 1))
    assert verify_chain(entries).ok
    assert {e.decision_id for e in entries} == {f"dec-{i}" for i in range(n)}
    stats = store.stats  # type: ignore[attr-defined]
    assert stats.ops == n
    assert stats.commits < n / 10, stats
    assert await store.find_decision("agent-1", "req-1999") == decision(1999)


async def test_same_request_replays_the_stored_decision_and_appends_nothing(
    store: Store,
) -> None:
    original = decision(1)
    assert await store.record_decision(original, audit_of(original)) == (original, False)
    retry = decision(2, request_id="req-1", digest=original.request_digest)
    assert await store.record_decision(retry, audit_of(retry)) == (original, True)
    assert len(await all_entries(store)) == 1


async def test_reused_request_id_fails_only_that_request(store: Store) -> None:
    await store.record_decision(decision(1), audit_of(decision(1)))
    other = decision(2, request_id="req-1")  # same key, different request digest
    results = await in_one_batch(
        store,
        store.record_decision(decision(3), audit_of(decision(3))),
        store.record_decision(other, audit_of(other)),
        store.record_decision(decision(4), audit_of(decision(4))),
    )
    assert isinstance(results[1], AlreadyExists)
    assert "request_id 'req-1' was used for a different request" in results[1].message
    assert results[0] == (decision(3), False)
    assert results[2] == (decision(4), False)
    entries = await all_entries(store)
    assert [e.decision_id for e in entries] == ["dec-1", "dec-3", "dec-4"]
    assert verify_chain(entries).ok


@pytest.mark.parametrize("max_batch", [512, 1], ids=["same-batch", "consecutive-batches"])
async def test_racing_duplicates_store_one_decision_and_one_entry(
    make_store: MakeStore, max_batch: int
) -> None:
    store = await make_store(max_batch=max_batch)
    copies = [decision(i, request_id="req-x", digest="d" * 64) for i in range(20)]
    calls = [store.record_decision(c, audit_of(c)) for c in copies]
    if max_batch == 1:
        results = await asyncio.gather(*calls)
        assert store.stats.commits == len(copies)  # type: ignore[attr-defined]
    else:
        results = await in_one_batch(store, *calls)
    assert [replayed for _, replayed in results].count(False) == 1
    assert {rec for rec, _ in results} == {copies[0]}
    assert [e.decision_id for e in await all_entries(store)] == ["dec-0"]


async def test_requests_without_request_id_are_never_deduplicated(store: Store) -> None:
    a, b = decision(1, request_id=""), decision(2, request_id="")
    await store.record_decision(a, audit_of(a))
    assert await store.record_decision(b, audit_of(b)) == (b, False)
    assert await store.find_decision("agent-1", "") is None
    assert len(await all_entries(store)) == 2


async def test_idempotency_keys_are_per_principal(store: Store) -> None:
    a = decision(1)
    b = dataclasses.replace(a, decision_id="dec-b", principal_id="agent-2")
    await store.record_decision(a, audit_of(a))
    assert await store.record_decision(b, audit_of(b)) == (b, False)
    assert await store.find_decision("agent-2", "req-1") == b
    assert await store.find_decision("agent-3", "req-1") is None


async def test_a_closed_or_unopened_store_is_unavailable(
    make_store: MakeStore, tmp_path: Path, clock: Clock
) -> None:
    never_opened = SqliteStore(tmp_path / "x.db", clock)
    await never_opened.close()
    store = await make_store()
    await store.close()
    await store.close()
    for call in (store.append([loaded(1)]), store.read_audit(), store.audit_head()):
        with pytest.raises(Unavailable, match="not open"):
            await call


async def test_close_commits_everything_queued_before_it(make_store: MakeStore) -> None:
    store = await make_store()
    # gather starts the appends (which enqueue) before close() enqueues its stop marker.
    *acks, _ = await asyncio.gather(*(store.append([loaded(i)]) for i in range(50)), store.close())
    with pytest.raises(Unavailable, match="not open"):
        await store.append([loaded(99)])
    reopened = await make_store()
    assert [e for (e,) in acks] == await all_entries(reopened)


# -- SQLite specifics -----------------------------------------------------------------------


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


async def test_file_and_parent_directories_are_created(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "a" / "b" / "signoff.db"
    store = SqliteStore(path, clock)
    await store.open()
    await store.close()
    assert path.exists()
    with raw(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.sqlite_only
async def test_read_only_database_is_unavailable_and_nothing_is_acknowledged(
    store: Store,
) -> None:
    sqlite_store: SqliteStore = store  # type: ignore[assignment]
    before = await store.append([loaded(1)])
    # query_only makes every write fail exactly as a read-only file does (SQLITE_READONLY).
    await sqlite_store.maintenance(lambda c: c.execute("PRAGMA query_only = ON"))
    results = await asyncio.gather(
        store.append([loaded(2)]),
        store.record_decision(decision(1), audit_of(decision(1))),
        return_exceptions=True,
    )
    for result in results:
        assert isinstance(result, Unavailable)
        assert result.message.startswith("audit store unavailable: database is read-only")
    assert await all_entries(store) == before
    assert await store.find_decision("agent-1", "req-1") is None

    await sqlite_store.maintenance(lambda c: c.execute("PRAGMA query_only = OFF"))
    after = await store.append([loaded(3)])
    assert (after[0].seq, after[0].prev_hash) == (2, before[0].hash)
    assert verify_chain(await all_entries(store)).ok


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only files")
async def test_read_only_file_refuses_to_open(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "signoff.db"
    store = SqliteStore(path, clock)
    await store.open()
    await store.close()
    path.chmod(0o444)
    with pytest.raises(Unavailable, match="read-only"):
        await SqliteStore(path, clock).open()


@pytest.mark.sqlite_only
async def test_disk_full_is_unavailable_then_appends_resume(store: Store) -> None:
    sqlite_store: SqliteStore = store  # type: ignore[assignment]
    before = await store.append([loaded(1)])

    def fill(conn: sqlite3.Connection) -> None:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")

    await sqlite_store.maintenance(fill)
    big = "x" * 200_000  # needs new pages, which max_page_count forbids
    # Hold the writer so both share one batch: a small append alone, in a batch of its own,
    # might still fit in the pages the file has.
    gate = threading.Event()
    held = sqlite_store.maintenance(lambda _: gate.wait(30))
    calls = [store.append([loaded(2, blob=big)]), store.append([loaded(3)])]

    async def release() -> None:
        gate.set()

    _, *results, _ = await asyncio.gather(held, *calls, release(), return_exceptions=True)
    assert all(isinstance(r, Unavailable) for r in results), results
    assert "database or disk is full" in results[0].message  # type: ignore[union-attr]
    assert await all_entries(store) == before
    assert sqlite_store.stats.failed_batches >= 1

    await sqlite_store.maintenance(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
    after = await store.append([loaded(2, blob=big), loaded(3)])
    assert [e.seq for e in after] == [2, 3]
    assert verify_chain(await all_entries(store)).ok


@pytest.mark.sqlite_only
async def test_migrations_are_recorded_once_and_reopen_is_idempotent(
    make_store: MakeStore, tmp_path: Path
) -> None:
    store = await make_store()
    await store.append([loaded(1)])
    await store.close()
    reopened = await make_store()
    assert len(await all_entries(reopened)) == 1
    with raw(tmp_path / "db" / "signoff.db") as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [tuple(r) for r in rows] == [(v, name) for v, name, _ in load("sqlite")]
    assert load("sqlite")[0][:2] == (1, "0001_init.sql")


@pytest.mark.sqlite_only
async def test_newer_schema_is_refused_with_a_clear_message(
    make_store: MakeStore, tmp_path: Path
) -> None:
    await (await make_store()).close()
    with raw(tmp_path / "db" / "signoff.db") as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, '0999_future.sql', 'x')")
    with pytest.raises(FailedPrecondition, match="schema version 999 is newer than"):
        await make_store()


@pytest.mark.sqlite_only
async def test_audit_rows_cannot_be_updated_or_deleted(store: Store, tmp_path: Path) -> None:
    entry = (await store.append([audit_of(decision(1))]))[0]  # with rules in audit_rules
    with raw(tmp_path / "db" / "signoff.db") as conn:
        for sql in (
            "UPDATE audit SET actor = 'x'",
            "DELETE FROM audit",
            "DELETE FROM audit_rules",
            "UPDATE audit_rules SET rule = 'x'",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)
    assert await all_entries(store) == [entry]


def _forged(entry: AuditEntry, **change: Any) -> AuditEntry:
    """`entry` with `change` applied, its hash recomputed (a well-formed entry, wrongly linked)."""
    moved = dataclasses.replace(entry, **change)
    return dataclasses.replace(
        moved, hash=entry_hash(moved, seq=moved.seq, prev_hash=moved.prev_hash)
    )


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    "change",
    [
        {"prev_hash": "f" * 64},  # points at no entry
        {"prev_hash": GENESIS},  # points before the head
        {"seq": 4},  # leaves a gap
        {"seq": 2},  # repeats the head's seq
    ],
    ids=["wrong-prev-hash", "stale-prev-hash", "gap", "repeat"],
)
async def test_the_writer_refuses_an_entry_that_does_not_extend_the_chain_head(
    make_store: MakeStore, change: dict[str, Any]
) -> None:
    # No trigger checks the link since migration 0006: the writer's insert does. An entry is
    # offered through the store's own transaction, as any code path of the store would.
    store = await make_store()
    assert isinstance(store, SqliteStore)
    _, head = await store.append([loaded(1), loaded(2)])
    good = seal(loaded(3), seq=3, prev_hash=head.hash)
    bad = _forged(good, **change)

    refused, appended = await in_one_batch(
        store, store._submit(lambda tx: tx.insert(bad)), store.append([loaded(4)])
    )
    assert isinstance(refused, FailedPrecondition)
    assert "does not extend the chain head (seq 2)" in refused.message
    assert [e.seq for e in appended] == [3]  # the batch's other write commits, in order
    entries = await all_entries(store)
    assert [e.seq for e in entries] == [1, 2, 3]
    assert verify_chain(entries).ok


@pytest.mark.sqlite_only
async def test_matched_rules_are_indexed_in_a_side_table(store: Store, tmp_path: Path) -> None:
    await store.record_decision(decision(1), audit_of(decision(1)))
    with raw(tmp_path / "db" / "signoff.db") as conn:
        assert conn.execute("SELECT rule, seq FROM audit_rules ORDER BY rule").fetchall() == [
            ("small-refund", 1),
            ("vip", 1),
        ]
        plan = conn.execute("EXPLAIN QUERY PLAN SELECT seq FROM audit_rules WHERE rule = 'vip'")
        assert "USING PRIMARY KEY" in " ".join(str(r) for r in plan)


# -- tampering is detected ------------------------------------------------------------------


async def tampered(make_store: MakeStore, tmp_path: Path, *sql: str) -> Any:
    store = await make_store()
    for i in range(1, 9):
        await store.append([loaded(i, i=i)])
    with raw(tmp_path / "db" / "signoff.db") as conn:
        conn.execute("DROP TRIGGER audit_no_update")
        conn.execute("DROP TRIGGER audit_no_delete")
        for statement in sql:
            conn.execute(statement)
    return verify_chain(await all_entries(store))


@pytest.mark.sqlite_only
async def test_verify_detects_a_changed_entry(make_store: MakeStore, tmp_path: Path) -> None:
    result = await tampered(
        make_store, tmp_path, "UPDATE audit SET payload = '{\"i\":40}' WHERE seq = 4"
    )
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 4, "changed")
    assert (result.checked, result.head_seq) == (3, 3)


@pytest.mark.sqlite_only
async def test_verify_detects_a_missing_entry(make_store: MakeStore, tmp_path: Path) -> None:
    result = await tampered(make_store, tmp_path, "DELETE FROM audit WHERE seq = 5")
    assert (result.first_bad_seq, result.problem) == (5, "missing")
    assert "seq 5 missing" in result.detail


@pytest.mark.sqlite_only
async def test_verify_detects_reordered_entries(make_store: MakeStore, tmp_path: Path) -> None:
    # The attacker swaps entries 5 and 6 and, knowing the public encoding, re-hashes each at
    # its new position; the links to the neighbours still give it away.
    store = await make_store()
    for i in range(1, 9):
        await store.append([loaded(i, i=i)])
    e5, e6 = await store.read_audit(5, 2)
    with raw(tmp_path / "db" / "signoff.db") as conn:
        conn.execute("DROP TRIGGER audit_no_update")
        for seq, e in ((5, e6), (6, e5)):
            conn.execute(
                "UPDATE audit SET policy_version = ?, payload = ?, prev_hash = ?, hash = ? "
                "WHERE seq = ?",
                (
                    e.policy_version,
                    e.payload_json,
                    e.prev_hash,
                    entry_hash(e, seq=seq, prev_hash=e.prev_hash),
                    seq,
                ),
            )
    result = verify_chain(await all_entries(store))
    assert (result.first_bad_seq, result.problem) == (5, "reordered")


async def test_two_stores_on_one_file_interleave_into_one_chain(
    tmp_path: Path, clock: Clock
) -> None:
    # Two stores stand for two `serve --workers` processes: each has its own writer thread,
    # connection and lock-file descriptor (flock excludes descriptors, not just processes).
    path = tmp_path / "signoff.db"
    first, second = SqliteStore(path, clock), SqliteStore(path, clock)
    await first.open()
    await second.open()
    try:
        recs = [decision(n) for n in range(200)]
        await asyncio.gather(
            *(
                (first if n % 2 else second).record_decision(rec, audit_of(rec))
                for n, rec in enumerate(recs)
            )
        )
        entries = await all_entries(first)
    finally:
        await first.close()
        await second.close()
    assert len(entries) == 200
    assert verify_chain(entries).ok
    assert {e.decision_id for e in entries} == {r.decision_id for r in recs}
    # Both writers committed (neither waited out SQLite's busy timeout and failed).
    assert first.stats.commits > 0
    assert second.stats.commits > 0
    assert first.stats.failed_batches == second.stats.failed_batches == 0
