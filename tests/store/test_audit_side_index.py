"""The SQLite side index of the audit log (store/sqlite/audit_index.py): pages are the same
whatever its watermark, it is built for a log written before it existed, and it holds exactly
the entries up to its watermark, whatever the indexer was doing when interrupted.

The reference is a plain Python filter over the whole log (tests/store/audit_log.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from signoff.core.audit import GENESIS, AuditEntry, AuditRecord, seal
from signoff.ids import Clock
from signoff.store import AuditQuery, SqliteStore
from signoff.store import migrations as migrations_mod
from signoff.store.sqlite import audit as audit_sql
from signoff.store.sqlite import audit_index, indexer
from tests.store.audit_log import T0, matches
from tests.store.helpers import all_entries

pytestmark = pytest.mark.sqlite_only

ACTIONS = ("refund.issue", "refund.void", "db.migrate", "db.migrate.prod", "a[b]?c", "")
GLOBS = ("refund.*", "*.prod", "db.*", "*migrate*", "refund.issue", "a[b]?c", "*?*", "no.*")


def random_record(rnd: random.Random, n: int) -> AuditRecord:
    """An entry whose fields come from small vocabularies, '' included, at a time that
    sometimes lags (out-of-order commits) by up to ten minutes."""

    def pick(*values: str) -> str:
        return rnd.choice(values)

    lag = dt.timedelta(minutes=rnd.randint(1, 10)) if rnd.random() < 0.15 else dt.timedelta()
    return AuditRecord(
        type=pick("decision", "review.opened", "review.approved", "policy.loaded"),
        time=T0 + dt.timedelta(minutes=n) - lag,
        actor="a",
        request_id=pick("", "req-1", "req-2", "req-3"),
        decision_id=pick("", f"dec-{n % 7}"),
        review_id=pick("", f"rev-{n % 5}"),
        action_name=rnd.choice(ACTIONS),
        outcome=pick("", "AUTO_ALLOW", "REQUIRE_REVIEW", "DENY"),
        principal=pick("", "agent-0", "agent-1", "agent-2"),
        reviewer=pick("", "alice", "bob"),
        reviewer_group=pick("", "ops", "finance"),
        review_state=pick("", "PENDING", "APPROVED"),
        rules=tuple(rnd.sample(("vip", "small", "eu"), rnd.randint(0, 2))),
        policy_version=pick("v1", "v2", "v3"),
        payload={"n": n},
    )


def random_query(rnd: random.Random, head: int) -> AuditQuery:
    """One to three filters of every kind, values that match and values that do not."""
    options: dict[str, Any] = {
        "types": tuple(rnd.sample(("decision", "review.opened", "policy.loaded", "x"), 2)),
        "outcomes": tuple(rnd.sample(("", "AUTO_ALLOW", "DENY", "REQUIRE_REVIEW"), 2)),
        "action_glob": rnd.choice((*GLOBS, *ACTIONS[:-1])),
        "principal": rnd.choice(("agent-0", "agent-1", "nobody")),
        "reviewer": rnd.choice(("alice", "bob")),
        "reviewer_group": rnd.choice(("ops", "finance")),
        "review_state": rnd.choice(("PENDING", "APPROVED")),
        "policy_version": rnd.choice(("v1", "v2", "v9")),
        "decision_id": f"dec-{rnd.randint(0, 7)}",
        "review_id": f"rev-{rnd.randint(0, 5)}",
        "request_id": rnd.choice(("req-1", "req-3")),
        "rule": rnd.choice(("vip", "eu", "none")),
        "since": T0 + dt.timedelta(minutes=rnd.randint(-5, head)),
        "until": T0 + dt.timedelta(minutes=rnd.randint(0, head + 5)),
        "from_seq": rnd.randint(1, head),
        "to_seq": rnd.randint(1, head),
    }
    chosen = rnd.sample(sorted(options), rnd.randint(1, 3))
    return AuditQuery(**{name: options[name] for name in chosen})


async def pages(store: SqliteStore, q: AuditQuery, descending: bool, size: int) -> list[Any]:
    """Every match of `q`, walked in pages of `size`."""
    out: list[AuditEntry] = []
    after: int | None = None
    while page := await store.query_audit(q, descending=descending, after_seq=after, limit=size):
        out += page
        after = page[-1].seq
    return out


async def index_to(store: SqliteStore, through: int) -> None:
    """Move the watermark to `through` (it only moves forward)."""
    done = await store.maintenance(audit_index.indexed_through)
    if through > done:
        await store.maintenance(lambda conn: audit_index.step(conn, through - done))


@pytest.mark.parametrize("seed", range(6))
async def test_random_pages_equal_a_plain_scan_at_any_watermark(
    tmp_path: Path, clock: Clock, seed: int
) -> None:
    rnd = random.Random(seed)
    store = SqliteStore(tmp_path / "a.db", clock, index_every=10**9, index_idle=None)
    await store.open()
    try:
        n = 0
        while n < 160:
            size = rnd.randint(1, 12)
            await store.append([random_record(rnd, n + i) for i in range(size)])
            n += size
        log = await all_entries(store)
        watermarks = sorted({0, rnd.randint(1, n - 1), rnd.randint(1, n - 1), n})
        for through in watermarks:
            await index_to(store, through)
            for _ in range(25):
                q = random_query(rnd, n)
                expected = [e for e in log if matches(e, q)]
                assert await store.query_audit(q, limit=1000) == expected, (through, q)
                down = await store.query_audit(q, descending=True, limit=1000)
                assert down == expected[::-1], (through, q)
                size = rnd.randint(1, 7)
                assert await pages(store, q, False, size) == expected, (through, q, size)
                assert await pages(store, q, True, size) == expected[::-1], (through, q, size)
            for column in ("decision_id", "review_id"):
                ids = [f"{column[:3]}-{i}" for i in rnd.sample(range(8), 2)]
                types = ("decision", "review.opened")
                got = await store.audit_by_ids(column, ids, types)
                want = [e for e in log if getattr(e, column) in ids and e.type in types]
                assert got == want, (through, column, ids)
    finally:
        await store.close()


def old_database(path: Path, clock: Clock, entries: int) -> None:
    """A database migrated to 0006 only (per-column indexes), holding `entries` entries."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "CREATE TABLE schema_migrations ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    for number, name, sql in migrations_mod.load("sqlite")[:6]:
        for statement in migrations_mod.sqlite_statements(sql):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (number, name, "2026-01-01"))
    rnd = random.Random(1)
    head, high_water = (0, GENESIS), ""
    conn.execute("BEGIN")
    for n in range(entries):
        entry = seal(random_record(rnd, n), seq=head[0] + 1, prev_hash=head[1])
        high_water = audit_sql.insert(conn, entry, head, high_water)
        head = (entry.seq, entry.hash)
    conn.execute("COMMIT")
    conn.close()


async def test_a_log_written_before_the_side_index_is_indexed_when_opened(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "old.db"
    old_database(path, clock, 700)
    monkeypatch.setattr(indexer, "INDEX_CHUNK", 100)  # several steps, as for a big log
    caplog.set_level(logging.INFO, logger="signoff.store")
    store = SqliteStore(path, clock, index_every=10**9, index_idle=None)
    await store.open()
    try:
        # Queries are exact from the start (the first step indexed 100 entries) ...
        log = await all_entries(store)
        rnd = random.Random(2)
        for _ in range(30):
            q = random_query(rnd, len(log))
            assert await store.query_audit(q, limit=1000) == [e for e in log if matches(e, q)]
        # ... and the background catch-up reaches the head.
        assert await store.index_audit() == 700
        names = await store.maintenance(
            lambda c: {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        )
        held = await store.maintenance(
            lambda c: c.execute(
                "SELECT col, value, seq FROM audit_index ORDER BY 1, 2, 3"
            ).fetchall()
        )
        expected = await store.maintenance(lambda c: audit_index.derive(c, 1, 700))
    finally:
        await store.close()
    assert not {
        n for n in names if n.startswith("audit_") and n != "audit_time_regressions_deficit"
    }
    assert [tuple(r) for r in held] == expected
    assert "indexing the existing log in the background" in caplog.text


async def test_the_side_index_holds_exactly_the_entries_up_to_its_watermark(
    tmp_path: Path, clock: Clock
) -> None:
    """A step that fails midway leaves neither rows nor a moved watermark (the crash test,
    test_sqlite_crash.py, kills a writer that indexes as it goes)."""
    store = SqliteStore(tmp_path / "a.db", clock, index_every=10**9, index_idle=None)
    await store.open()
    try:
        rnd = random.Random(3)
        await store.append([random_record(rnd, n) for n in range(50)])

        def failing(conn: sqlite3.Connection) -> None:
            conn.execute(
                "CREATE TEMP TRIGGER stop AFTER UPDATE ON audit_index_state "
                "BEGIN SELECT RAISE(ABORT, 'stop'); END"
            )
            try:
                audit_index.step(conn, 30)
            finally:
                conn.execute("DROP TRIGGER temp.stop")

        with pytest.raises(Exception, match="stop"):
            await store.maintenance(failing)
        assert await check_side_index(store) == 0
        await index_to(store, 30)
        assert await check_side_index(store) == 30
    finally:
        await store.close()


async def check_side_index(store: SqliteStore) -> int:
    """Assert the side index is exactly entries 1..watermark; return the watermark."""

    def read(conn: sqlite3.Connection) -> tuple[int, list[Any], list[Any]]:
        through = audit_index.indexed_through(conn)
        held = conn.execute("SELECT col, value, seq FROM audit_index ORDER BY 1, 2, 3")
        return through, [tuple(r) for r in held], audit_index.derive(conn, 1, through)

    through, held, expected = await store.maintenance(read)
    assert held == expected
    return through
