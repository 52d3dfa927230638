"""Listing reviews (filters, both orders, cursor pages while rows arrive) and the expiry sweep."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from signoff.core.audit import verify_chain
from signoff.store import ReviewQuery, ReviewRecord, Store
from signoff.store.sqlite import reviews as sqlite_reviews
from tests.store.helpers import Explaining, all_entries
from tests.store.reviews import T0, change_audit, changed, open_review


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def ids(reviews: list[ReviewRecord]) -> list[str]:
    return [r.review_id for r in reviews]


async def listed(store: Store, **query: object) -> list[str]:
    return ids(await store.list_reviews(ReviewQuery(**query)))  # type: ignore[arg-type]


@pytest.fixture
async def catalogue(store: Store) -> Store:
    """Six reviews across groups, actions, principals and states, one minute apart."""
    await open_review(store, 1, group="finance", action="refund.issue", created=at(1))
    await open_review(store, 2, group="finance", action="refund.void", created=at(2))
    await open_review(store, 3, group="ops", action="db.migrate", created=at(3))
    await open_review(store, 4, group="finance", action="refund.issue", created=at(4))
    await open_review(store, 5, group="ops", action="db.migrate.prod", created=at(5))
    r6 = await open_review(store, 6, group="finance", principal="agent-2", created=at(6))
    approved = changed(r6)
    await store.update_review(approved, 1, [change_audit(approved)])
    return store


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["rev-1", "rev-2", "rev-3", "rev-4", "rev-5"]),  # default: PENDING only
        ({"states": ()}, ["rev-1", "rev-2", "rev-3", "rev-4", "rev-5", "rev-6"]),
        ({"states": ("APPROVED",)}, ["rev-6"]),
        ({"states": ("REJECTED", "EXPIRED")}, []),
        ({"groups": ("ops",)}, ["rev-3", "rev-5"]),
        ({"groups": ("ops", "finance"), "states": ()}, [f"rev-{i}" for i in range(1, 7)]),
        ({"groups": ("legal",)}, []),
        ({"action_glob": "refund.*"}, ["rev-1", "rev-2", "rev-4"]),
        ({"action_glob": "db.*"}, ["rev-3", "rev-5"]),  # '*' crosses dots
        ({"action_glob": "*.issue"}, ["rev-1", "rev-4"]),
        ({"action_glob": "db.migrate"}, ["rev-3"]),  # no '*': the exact name
        ({"action_glob": "*"}, ["rev-1", "rev-2", "rev-3", "rev-4", "rev-5"]),
        ({"action_glob": "refund.?ssue"}, []),  # only '*' is special
        ({"action_glob": "refund.[i]ssue"}, []),
        ({"action_glob": "REFUND.*"}, []),  # case-sensitive, like policy globs
        ({"created_before": at(3)}, ["rev-1", "rev-2"]),  # strictly before
        ({"principal_id": "agent-2", "states": ()}, ["rev-6"]),
        ({"principal_id": "agent-2"}, []),
        ({"newest_first": True}, ["rev-5", "rev-4", "rev-3", "rev-2", "rev-1"]),
        ({"newest_first": True, "limit": 2}, ["rev-5", "rev-4"]),
        ({"limit": 2}, ["rev-1", "rev-2"]),
        ({"limit": 0}, []),
        (
            {"groups": ("finance",), "action_glob": "refund.*", "created_before": at(4)},
            ["rev-1", "rev-2"],
        ),
        ({"after": (at(2), "rev-2")}, ["rev-3", "rev-4", "rev-5"]),
        ({"after": (at(4), "rev-4"), "newest_first": True}, ["rev-3", "rev-2", "rev-1"]),
    ],
)
async def test_list_filters_and_orders(
    catalogue: Store, query: dict[str, object], expected: list[str]
) -> None:
    assert await listed(catalogue, **query) == expected


async def test_list_returns_whole_records(catalogue: Store) -> None:
    [r6] = await catalogue.list_reviews(ReviewQuery(states=("APPROVED",)))
    assert r6 == await catalogue.get_review("rev-6")
    assert (r6.state, r6.version, r6.principal_id) == ("APPROVED", 2, "agent-2")


@pytest.mark.parametrize("newest_first", [False, True], ids=["oldest-first", "newest-first"])
async def test_cursor_pages_see_every_row_once_while_rows_arrive(
    store: Store, newest_first: bool
) -> None:
    # Ten pairs share a created_at, so the review_id tie-break is part of the cursor.
    for n in range(20):
        await open_review(store, 100 + n, created=at(n // 2))
    originals = {f"rev-{100 + n}" for n in range(20)}
    seen: list[str] = []
    after: tuple[dt.datetime, str] | None = None
    added = 0
    while True:
        page = await store.list_reviews(
            ReviewQuery(newest_first=newest_first, after=after, limit=3)
        )
        if not page:
            break
        seen += ids(page)
        after = (page[-1].created_at, page[-1].review_id)
        if added < 5:  # newer reviews arrive between pages
            await open_review(store, 200 + added, created=at(30 + added))
            added += 1
    assert len(seen) == len(set(seen)), "a row was listed twice"
    assert originals <= set(seen), "a row was skipped"
    keys = [(r.created_at, r.review_id) for r in await store.list_reviews(ReviewQuery(limit=100))]
    order = {rid: i for i, (_, rid) in enumerate(keys)}
    positions = [order[rid] for rid in seen]
    assert positions == sorted(positions, reverse=newest_first)
    if not newest_first:  # ascending pages reach the rows that arrived meanwhile
        assert set(seen) == originals | {f"rev-{200 + i}" for i in range(5)}


async def test_due_reviews_are_pending_with_a_passed_deadline_oldest_first(store: Store) -> None:
    now = at(60)
    await open_review(store, 1, created=at(0), expires=at(50))
    await open_review(store, 2, created=at(1), expires=at(10))
    await open_review(store, 3, created=at(2), expires=now)  # due exactly now
    await open_review(store, 4, created=at(3), expires=at(61))  # not yet
    await open_review(store, 5, created=at(4))  # no timeout
    r6 = await open_review(store, 6, created=at(5), expires=at(5))
    await store.update_review(changed(r6, "CANCELLED"), 1, [change_audit(changed(r6, "CANCELLED"))])

    assert ids(await store.due_reviews(now)) == ["rev-2", "rev-1", "rev-3"]
    assert ids(await store.due_reviews(now, limit=1)) == ["rev-2"]
    assert await store.due_reviews(now, limit=0) == []
    assert ids(await store.due_reviews(at(1000))) == ["rev-2", "rev-1", "rev-3", "rev-4"]

    # Escalation moves the deadline: the review leaves the due list until the new one passes.
    r2 = await store.get_review("rev-2")
    assert r2 is not None
    escalated = changed(r2, "PENDING", reviewer_group="finance-leads", expires_at=at(120))
    await store.update_review(escalated, 1, [change_audit(escalated, "signoff")])
    assert ids(await store.due_reviews(now)) == ["rev-1", "rev-3"]
    assert ids(await store.due_reviews(at(120))) == ["rev-1", "rev-3", "rev-4", "rev-2"]
    assert verify_chain(await all_entries(store)).ok


async def test_times_in_other_zones_compare_as_instants(store: Store) -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    r = await open_review(
        store, 1, created=at(0).astimezone(plus2), expires=at(5).astimezone(plus2)
    )
    stored = await store.get_review("rev-1")
    assert stored == r  # equal instants; read back in UTC
    assert stored is not None
    assert stored.created_at.tzinfo == dt.UTC
    assert ids(await store.due_reviews(at(5))) == ["rev-1"]
    assert await listed(store, created_before=at(0)) == []
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.due_reviews(dataclasses.replace(r).created_at.replace(tzinfo=None))


# -- SQLite specifics -----------------------------------------------------------------------


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("call", "index"),
    [
        (lambda c: sqlite_reviews.due(c, T0, 100), "reviews_pending_expiry"),
        (lambda c: sqlite_reviews.query(c, ReviewQuery(groups=("a",))), "reviews_state_group"),
        (
            lambda c: sqlite_reviews.query(c, ReviewQuery(groups=("a",), after=(T0, "r"))),
            "reviews_state_group",
        ),
        (
            lambda c: sqlite_reviews.query(c, ReviewQuery(states=(), newest_first=True)),
            "reviews_created",
        ),
        (
            lambda c: sqlite_reviews.query(c, ReviewQuery(states=(), principal_id="p")),
            "reviews_principal",
        ),
        (lambda c: sqlite_reviews.for_decision(c, "d"), "sqlite_autoindex_reviews_2"),
    ],
)
async def test_review_queries_read_in_order_from_their_index(
    store: Store, tmp_path: Path, call: Callable[[Any], object], index: str
) -> None:
    with sqlite3.connect(tmp_path / "db" / "signoff.db") as conn:
        explaining = Explaining(conn)
        call(explaining)
    [plan] = explaining.plans
    assert index in plan, plan
    assert "TEMP B-TREE" not in plan, plan
