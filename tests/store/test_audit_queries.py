"""Querying the audit log: every filter alone and combined, both orders, cursor pages while
entries arrive, time ranges over out-of-order times, and the index behind each query.

Pages are checked against a plain Python filter over the whole log (tests/store/audit_log.py)
and, for a few cases, against seq numbers written out by hand.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from signoff.core.audit import AuditEntry, verify_chain
from signoff.errors import FailedPrecondition
from signoff.store import AuditQuery, SqliteStore, Store
from signoff.store.sqlite import audit_index
from signoff.store.sqlite import audit_query as sqlite_audit_query
from tests.store.audit_log import US, at_minutes, matches, record
from tests.store.conftest import MakeStore
from tests.store.helpers import all_entries

N = 40


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # PostgreSQL keeps its indexes on the write path (no watermark): it runs "indexed" only
    # (tests/store/conftest.py deselects the rest rather than reporting 120 skips).
    if "log" in metafunc.fixturenames:
        metafunc.parametrize("watermark", ["tail", "half", "indexed"])


@pytest.fixture
async def log(watermark: str, backend: str, make_store: MakeStore) -> Store:
    """Entries 1..40 of the catalogue, appended in a few batches; on SQLite the side index
    holds none of them, the first 20 or all (the indexer steps only when told to)."""
    if backend == "postgres":
        store = await make_store()
    else:
        store = await make_store(index_every=10**9, index_idle=None)
    for start in range(1, N + 1, 8):
        await store.append([record(n) for n in range(start, min(start + 8, N + 1))])
    if isinstance(store, SqliteStore) and watermark != "tail":
        through = N // 2 if watermark == "half" else N
        await store.maintenance(lambda conn: audit_index.step(conn, through))
    return store


def seqs(entries: list[AuditEntry]) -> list[int]:
    return [e.seq for e in entries]


QUERIES: list[dict[str, Any]] = [
    {},
    {"types": ("decision",)},
    {"types": ("review.approved", "review.rejected")},
    {"types": ("access.denied",)},
    {"action_glob": "refund.issue"},
    {"action_glob": "refund.*"},
    {"action_glob": "db.*"},  # '*' spans dots: db.migrate and db.migrate.prod
    {"action_glob": "*.prod"},
    {"action_glob": "*migrate*"},
    {"action_glob": "*"},
    {"action_glob": "REFUND.*"},  # case-sensitive
    {"action_glob": "refund.?ssue"},  # only '*' is special
    {"action_glob": "nothing.*"},
    {"outcomes": ("DENY",)},
    {"outcomes": ("AUTO_ALLOW", "REQUIRE_REVIEW")},
    {"principal": "agent-1"},
    {"reviewer": "alice"},
    {"reviewer_group": "ops"},
    {"rule": "vip"},
    {"rule": "small-refund"},
    {"rule": "no-such-rule"},
    {"review_state": "APPROVED"},
    {"policy_version": "v2"},
    {"decision_id": "dec-7"},
    {"review_id": "rev-4"},
    {"request_id": "req-3"},
    {"from_seq": 35},
    {"to_seq": 4},
    {"from_seq": 5, "to_seq": 9},
    {"since": at_minutes(20)},
    {"until": at_minutes(8)},
    {"since": at_minutes(5), "until": at_minutes(7)},  # 5, 6 and the lagging 10, 11
    {"since": at_minutes(29), "until": at_minutes(30)},  # 29 only: 31 lags it by 1 µs
    {"since": at_minutes(29) - US, "until": at_minutes(29)},  # 31 only
    {"since": at_minutes(2), "until": at_minutes(3)},  # 2 and 30, 28 minutes late
    {"since": at_minutes(100)},
    {"until": at_minutes(0)},
    {"since": at_minutes(9), "until": at_minutes(9)},
    {"principal": "agent-1", "outcomes": ("DENY",)},
    {"reviewer_group": "finance", "types": ("review.approved", "review.opened")},
    {"rule": "vip", "principal": "agent-2", "since": at_minutes(10)},
    {"action_glob": "refund.*", "outcomes": ("AUTO_ALLOW",), "policy_version": "v1"},
    {"reviewer": "bob", "review_state": "PENDING", "rule": "small-refund"},
    {"decision_id": "dec-12", "types": ("decision",)},
    {"review_id": "rev-5", "reviewer": "alice", "until": at_minutes(16)},
    {"request_id": "req-10", "principal": "agent-2"},
    {"action_glob": "*.migrate*", "reviewer_group": "ops", "from_seq": 10, "to_seq": 30},
    {"types": ("decision",), "outcomes": ("DENY", "AUTO_ALLOW"), "rule": "vip"},
    {"principal": "agent-0", "since": at_minutes(1), "until": at_minutes(12)},
    {"principal": "nobody", "outcomes": ("DENY",)},
]


@pytest.mark.parametrize("query", QUERIES, ids=[str(q) for q in QUERIES])
async def test_every_filter_alone_and_combined_matches_the_reference(
    log: Store, query: dict[str, Any]
) -> None:
    q = AuditQuery(**query)
    expected = [e for e in await all_entries(log) if matches(e, q)]
    assert await log.query_audit(q, limit=1000) == expected
    assert await log.query_audit(q, descending=True, limit=1000) == expected[::-1]
    # Pages of 3, each strictly past the last seq of the one before.
    for descending in (False, True):
        paged: list[AuditEntry] = []
        after: int | None = None
        while page := await log.query_audit(q, descending=descending, after_seq=after, limit=3):
            assert len(page) <= 3
            paged += page
            after = page[-1].seq
        assert paged == (expected[::-1] if descending else expected)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"types": ("decision",), "to_seq": 12}, [5, 10]),
        ({"action_glob": "db.*", "to_seq": 9}, [2, 3, 7, 8]),
        ({"rule": "vip", "to_seq": 8}, [1, 3, 5, 7]),
        ({"since": at_minutes(5), "until": at_minutes(7)}, [5, 6, 10, 11]),
        ({"since": at_minutes(2), "until": at_minutes(3)}, [2, 30]),
        ({"since": at_minutes(29) - US, "until": at_minutes(29)}, [31]),
        ({"decision_id": "dec-7"}, [15]),  # 14 is a policy.loaded entry, without ids
    ],
)
async def test_filters_select_these_entries(
    log: Store, query: dict[str, Any], expected: list[int]
) -> None:
    assert seqs(await log.query_audit(AuditQuery(**query))) == expected


async def test_limit_and_cursor_bounds(log: Store) -> None:
    q = AuditQuery()
    assert seqs(await log.query_audit(q, limit=2)) == [1, 2]
    assert seqs(await log.query_audit(q, descending=True, limit=2)) == [40, 39]
    assert seqs(await log.query_audit(q, after_seq=38)) == [39, 40]
    assert seqs(await log.query_audit(q, descending=True, after_seq=3)) == [2, 1]
    assert await log.query_audit(q, after_seq=40) == []
    assert await log.query_audit(q, descending=True, after_seq=1) == []
    assert await log.query_audit(q, limit=0) == []
    assert len(await log.query_audit(q)) == N  # default page: 100
    q = AuditQuery(from_seq=10, to_seq=20)
    assert seqs(await log.query_audit(q, after_seq=18)) == [19, 20]
    assert seqs(await log.query_audit(q, descending=True, after_seq=12)) == [11, 10]


@pytest.mark.parametrize("descending", [False, True])
async def test_cursor_pages_see_every_entry_once_while_entries_arrive(
    log: Store, descending: bool
) -> None:
    q = AuditQuery(types=("decision", "review.opened"), since=at_minutes(3))
    before = [e for e in await all_entries(log) if matches(e, q)]
    paged: list[AuditEntry] = []
    after: int | None = None
    n = N
    while page := await log.query_audit(q, descending=descending, after_seq=after, limit=2):
        paged += page
        after = page[-1].seq
        # Between pages, matching entries arrive, some with times inside the range but
        # earlier than entries already paged past.
        await log.append([record(n + 1), record(n + 2, time=at_minutes(4)), record(n + 3)])
        n += 3
        if n > N + 60:
            break
    assert len({e.seq for e in paged}) == len(paged)  # nothing repeated
    assert seqs(paged) == sorted(seqs(paged), reverse=descending)
    if descending:
        assert paged == before[::-1]  # appended entries are above the first page
    else:
        everything = [e for e in await all_entries(log) if matches(e, q)]
        assert paged == everything[: len(paged)]  # nothing skipped
        assert set(seqs(before)) <= set(seqs(paged))


@pytest.mark.sqlite_only
async def test_an_undecodable_row_names_its_seq_and_a_decodable_change_fails_verify(
    log: Store, tmp_path: Path
) -> None:
    with sqlite3.connect(tmp_path / "db" / "signoff.db", isolation_level=None) as conn:
        conn.execute("DROP TRIGGER audit_no_update")
        conn.execute("UPDATE audit SET payload = '{\"n\":400}' WHERE seq = 4")
        conn.execute("UPDATE audit SET time = 'yesterday' WHERE seq = 9")
    # Like read_audit: the page that holds the broken row fails and says which row it is.
    with pytest.raises(FailedPrecondition, match="audit entry seq 9 cannot be decoded"):
        await log.query_audit(AuditQuery(to_seq=10))
    with pytest.raises(FailedPrecondition, match="seq 9"):
        await log.read_audit(1, 10)
    # An edited row that still decodes is returned as stored, and the chain shows the edit.
    page = await log.query_audit(AuditQuery(to_seq=8))
    assert page[3].payload == {"n": 400}
    result = verify_chain(page)
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 4, "changed")


class Recording:
    """A connection stand-in that runs each statement and records its query plan and args."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn, self.plans, self.args = conn, [], []

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        if sql.startswith("SELECT"):
            rows = self.conn.execute(f"EXPLAIN QUERY PLAN {sql}", args)
            self.plans.append(" | ".join(str(row[3]) for row in rows))
            self.args.append(list(args))
        return self.conn.execute(sql, args)


SIDE_INDEX = "SEARCH i USING PRIMARY KEY (col=? AND value=? AND seq>? AND seq<?)"


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("query", "driver"),
    [
        ({"types": ("decision",)}, "type"),
        ({"types": ("decision", "review.opened")}, "MERGE (UNION ALL)"),
        ({"action_glob": "refund.issue"}, "action_name"),
        ({"action_glob": "refund.*"}, "MERGE (UNION ALL)"),
        ({"outcomes": ("DENY",)}, "outcome"),
        ({"outcomes": ("DENY", "AUTO_ALLOW")}, "MERGE (UNION ALL)"),
        ({"principal": "agent-1"}, "principal"),
        ({"reviewer": "alice"}, "reviewer"),
        ({"reviewer_group": "ops"}, "reviewer_group"),
        ({"rule": "vip"}, "SEARCH r USING PRIMARY KEY (rule=? AND seq>? AND seq<?)"),
        ({"review_state": "APPROVED"}, "review_state"),
        ({"policy_version": "v2"}, "policy_version"),
        ({"decision_id": "dec-7"}, "decision_id"),
        ({"review_id": "rev-4"}, "review_id"),
        ({"request_id": "req-3"}, "request_id"),
        ({}, "USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"),
        ({"since": at_minutes(3), "until": at_minutes(9)}, "INTEGER PRIMARY KEY (rowid>?"),
        ({"from_seq": 3, "to_seq": 9}, "USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"),
        ({"action_glob": "*.prod", "since": at_minutes(3)}, "action_name"),
        # Combinations: the index holding fewer entries drives, whatever the usual order
        # (agent-1 has 13 entries, DENY 3; review_id rev-4 has 3, reviewer alice 10).
        ({"principal": "agent-1", "outcomes": ("DENY",)}, "outcome"),
        ({"review_id": "rev-4", "reviewer": "alice"}, "review_id"),
        ({"rule": "vip", "reviewer_group": "ops"}, "SEARCH r USING PRIMARY KEY"),
        ({"request_id": "req-3", "principal": "agent-1"}, "request_id"),
    ],
)
@pytest.mark.parametrize("descending", [False, True])
async def test_each_query_reads_an_index_in_seq_order_without_scanning_or_sorting(
    log: Store, tmp_path: Path, query: dict[str, Any], driver: str, descending: bool
) -> None:
    await log.index_audit()  # type: ignore[attr-defined]  # the tail is empty
    with sqlite3.connect(tmp_path / "db" / "signoff.db", isolation_level=None) as conn:
        recording = Recording(conn)
        sqlite_audit_query.query(recording, AuditQuery(**query), descending=descending)  # type: ignore[arg-type]
    if driver in audit_index.CODES or driver.startswith("MERGE"):
        # Side-index ranges (one, or several merged), then the (empty) tail after the
        # watermark, scanned by seq: the page's two statements, in seq order.
        *_lookups, first, second = zip(recording.plans, recording.args, strict=True)
        (plan, args), tail = (second, first) if descending else (first, second)
        assert SIDE_INDEX in plan, plan
        assert driver in plan or args[0] == audit_index.CODES[driver], (plan, args)
        assert "SEARCH a USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in tail[0], tail
    else:
        assert driver in recording.plans[-1], recording.plans[-1]
    for plan in recording.plans:
        assert "TEMP B-TREE" not in plan, plan
        # The only SCAN allowed reads the rows of a counting subquery (an index SEARCH).
        scans = [step for step in plan.split(" | ") if step.startswith("SCAN")]
        assert all(step.startswith("SCAN (subquery-") for step in scans), plan
