"""The reviewer console's reads: each group's pending backlog and the decided reviews of an
action (the precedent candidates), on every backend, and that both read from their index."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from signoff.store import ReviewRecord, Store
from signoff.store.base import GroupBacklog
from signoff.store.postgres import query as postgres_query
from signoff.store.sqlite import reviews as sqlite_reviews
from tests.store.helpers import Explaining
from tests.store.reviews import T0, change_audit, changed, open_review


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def ids(reviews: list[ReviewRecord]) -> list[str]:
    return [r.review_id for r in reviews]


async def resolve(store: Store, r: ReviewRecord, state: str, at_minute: float) -> ReviewRecord:
    """Move pending `r` to `state`, resolved at minute `at_minute`."""
    new = changed(r, state, updated_at=at(at_minute), expires_at=None)
    return await store.update_review(new, r.version, [change_audit(new)])


# -- pending_backlog ------------------------------------------------------------------------


@pytest.fixture
async def backlog_store(store: Store) -> Store:
    """finance: 3 pending (one never expires) + 1 approved; ops: 1 pending, no deadline."""
    await open_review(store, 1, group="finance", created=at(5), expires=at(100))
    await open_review(store, 2, group="finance", created=at(2), expires=at(300))
    await open_review(store, 3, group="finance", created=at(9))
    r4 = await open_review(store, 4, group="finance", created=at(1), expires=at(50))
    await resolve(store, r4, "APPROVED", 10)  # the oldest and earliest deadline, but resolved
    await open_review(store, 5, group="ops", created=at(7))
    r6 = await open_review(store, 6, group="legal", created=at(0), expires=at(20))
    await resolve(store, r6, "CANCELLED", 3)  # a group with nothing pending does not appear
    return store


FINANCE = GroupBacklog(
    reviewer_group="finance", pending=3, oldest_created_at=at(2), next_expires_at=at(100)
)
OPS = GroupBacklog(reviewer_group="ops", pending=1, oldest_created_at=at(7), next_expires_at=None)


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ((), [FINANCE, OPS]),  # all groups, by name
        (("ops",), [OPS]),
        (("ops", "finance"), [FINANCE, OPS]),
        (("finance", "finance"), [FINANCE]),
        (("legal",), []),
        (("nobody",), []),
    ],
)
async def test_pending_backlog_counts_oldest_and_next_deadline_per_group(
    backlog_store: Store, groups: tuple[str, ...], expected: list[GroupBacklog]
) -> None:
    assert await backlog_store.pending_backlog(groups) == expected


async def test_pending_backlog_of_an_empty_store_is_empty(store: Store) -> None:
    assert await store.pending_backlog() == []


async def test_pending_backlog_follows_escalations(backlog_store: Store) -> None:
    r1 = await backlog_store.get_review("rev-1")
    assert r1 is not None
    escalated = changed(r1, "PENDING", reviewer_group="ops", expires_at=at(40))
    await backlog_store.update_review(escalated, 1, [change_audit(escalated, "signoff")])
    assert await backlog_store.pending_backlog() == [
        GroupBacklog(
            reviewer_group="finance", pending=2, oldest_created_at=at(2), next_expires_at=at(300)
        ),
        GroupBacklog(
            reviewer_group="ops", pending=2, oldest_created_at=at(5), next_expires_at=at(40)
        ),
    ]


# -- decided_reviews ------------------------------------------------------------------------


@pytest.fixture
async def history(store: Store) -> Store:
    """refund.issue reviews resolved in every way, one pending, and one of another action."""
    states = {1: "APPROVED", 2: "REJECTED", 3: "CANCELLED", 4: "MODIFIED", 5: "EXPIRED"}
    resolved_at = {1: 50, 2: 40, 3: 60, 4: 45, 5: 45}  # 4 and 5 tie: review_id breaks it
    for n, state in states.items():
        r = await open_review(store, n, action="refund.issue", created=at(n))
        await resolve(store, r, state, resolved_at[n])
    await open_review(store, 6, action="refund.issue", created=at(6))  # pending
    other = await open_review(store, 7, action="refund.void", created=at(7))
    await resolve(store, other, "APPROVED", 70)
    return store


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["rev-1", "rev-5", "rev-4", "rev-2"]),  # newest resolution first; no CANCELLED
        ({"exclude_review_id": "rev-5"}, ["rev-1", "rev-4", "rev-2"]),
        ({"exclude_review_id": "rev-6"}, ["rev-1", "rev-5", "rev-4", "rev-2"]),
        ({"limit": 2}, ["rev-1", "rev-5"]),
        ({"limit": 0}, []),
        ({"action_name": "refund.void"}, ["rev-7"]),
        ({"action_name": "refund.*"}, []),  # an exact name, not a glob
        ({"action_name": "REFUND.ISSUE"}, []),
    ],
)
async def test_decided_reviews_are_the_actions_resolved_ones_latest_first(
    history: Store, query: dict[str, Any], expected: list[str]
) -> None:
    args = {"action_name": "refund.issue", **query}
    assert ids(await history.decided_reviews(**args)) == expected


async def test_decided_reviews_return_whole_records(history: Store) -> None:
    [first, *_] = await history.decided_reviews("refund.issue", limit=1)
    assert first == await history.get_review("rev-1")
    assert (first.state, first.updated_at) == ("APPROVED", at(50))


# -- opened_reviews -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "until", "after", "limit", "expected"),
    [
        (0, 100, None, 100, ["rev-1", "rev-2", "rev-3", "rev-4", "rev-5", "rev-6", "rev-7"]),
        (2, 5, None, 100, ["rev-2", "rev-3", "rev-4"]),  # since inclusive, until exclusive
        (0, 100, None, 2, ["rev-1", "rev-2"]),
        (0, 100, (2, "rev-2"), 2, ["rev-3", "rev-4"]),  # the next page
        (0, 100, (7, "rev-7"), 2, []),
        (8, 100, None, 100, []),
        (0, 100, None, 0, []),
    ],
)
async def test_opened_reviews_page_every_state_by_opening_time(
    history: Store,
    since: float,
    until: float,
    after: tuple[float, str] | None,
    limit: int,
    expected: list[str],
) -> None:
    cursor = None if after is None else (at(after[0]), after[1])
    got = await history.opened_reviews(at(since), at(until), after=cursor, limit=limit)
    assert ids(got) == expected


# -- query plans ----------------------------------------------------------------------------


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("call", "index"),
    [
        (lambda c: sqlite_reviews.backlog(c, ()), "reviews_pending_backlog"),
        (lambda c: sqlite_reviews.backlog(c, ("a", "b")), "reviews_pending_backlog"),
        (lambda c: sqlite_reviews.decided(c, "refund.issue", "r", 200), "reviews_decided_action"),
        (lambda c: sqlite_reviews.opened(c, at(0), at(60), None, 1000), "reviews_created"),
        (lambda c: sqlite_reviews.opened(c, at(0), at(60), (at(5), "r"), 1000), "reviews_created"),
    ],
)
async def test_console_queries_read_their_index_without_sorting_on_sqlite(
    store: Store, tmp_path: Path, call: Any, index: str
) -> None:
    with sqlite3.connect(tmp_path / "db" / "signoff.db") as conn:
        explaining = Explaining(conn)
        call(explaining)
    [plan] = explaining.plans
    assert f"COVERING INDEX {index}" in plan or f"USING INDEX {index}" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


class PgExplaining:
    """A psycopg connection stand-in that records each statement's plan instead of rows."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn, self.plans = conn, []

    async def execute(self, sql: str, args: Any = ()) -> psycopg.AsyncCursor[Any]:
        cur = await self.conn.execute(f"EXPLAIN {sql}", args)  # type: ignore[arg-type]
        self.plans.append("\n".join(str(row[0]) for row in await cur.fetchall()))
        return await self.conn.execute("SELECT 1 WHERE false")  # no rows


# 20,000 reviews of two actions over five groups, as a busy deployment looks: 1 in 200 still
# pending, 1 in 13 cancelled, the rest approved. Vacuumed, as autovacuum would have.
FILL = (
    "INSERT INTO decisions SELECT 'd' || i, 'p', 'r' || i, 'x', 'refund.issue', "
    "'REQUIRE_REVIEW', now(), '' FROM generate_series(1, 20000) AS i",
    "INSERT INTO reviews SELECT 'v' || i, 'd' || i, 'p', '', "
    "CASE WHEN i % 7 = 0 THEN 'refund.void' ELSE 'refund.issue' END, 'g' || (i % 5), "
    "CASE WHEN i % 200 = 0 THEN 'PENDING' WHEN i % 13 = 0 THEN 'CANCELLED' ELSE 'APPROVED' END, "
    "1, now() - make_interval(secs => 20000 - i), now() - make_interval(secs => 20000 - i), "
    "CASE WHEN i % 3 = 0 THEN now() END, '' FROM generate_series(1, 20000) AS i",
    "VACUUM ANALYZE reviews",
)


PENDING_ONLY = "an index that reads PENDING reviews only"
PENDING_INDEXES = ("reviews_pending_backlog", "reviews_pending_expiry", "reviews_state_group")


def _ago(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    ("call", "index"),
    [
        (lambda c: postgres_query.pending_backlog(c, ()), PENDING_ONLY),
        (lambda c: postgres_query.pending_backlog(c, ("g1", "g2")), PENDING_ONLY),
        (
            lambda c: postgres_query.decided_reviews(c, "refund.issue", "v1", 200),
            "reviews_decided_action",
        ),
        (
            lambda c: postgres_query.opened_reviews(c, _ago(3600), _ago(0), None, 1000),
            "reviews_created",
        ),
        (
            lambda c: postgres_query.opened_reviews(c, _ago(3600), _ago(0), (_ago(60), "v"), 1000),
            "reviews_created",
        ),
    ],
)
async def test_console_queries_read_their_index_without_sorting_on_postgres(
    store: Store, pg_url: str, call: Any, index: str
) -> None:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        for statement in FILL:
            await conn.execute(statement)  # type: ignore[arg-type]
        explaining = PgExplaining(conn)
        await call(explaining)
    [plan] = explaining.plans
    if index == PENDING_ONLY:
        # With every page all-visible the planner reads reviews_pending_backlog in group
        # order. When another session's old snapshot keeps VACUUM from marking pages visible
        # (any busy server) it reads pending reviews through another index and sorts the
        # few per-group totals. Either way it reads pending reviews only and sorts no rows.
        assert any(f"using {i} " in plan for i in PENDING_INDEXES), plan
        assert "Seq Scan" not in plan, plan
        lines = plan.splitlines()
        for n, line in enumerate(lines):
            if line.lstrip(" ->").startswith("Sort  ("):
                assert "Aggregate" in lines[n + 2], plan
        return
    assert f"using {index}" in plan, plan
    assert "Sort" not in plan, plan
