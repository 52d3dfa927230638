"""Replicas on one PostgreSQL schema: review changes wake the other replica, one sweeper lease.

Two `PostgresStore` instances on one schema stand for two `signoff serve` replicas: each has
its own pool, writer, listener and lease connection, exactly as separate processes would.
The change-feed contract itself (callbacks after commit) is checked on both backends.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from signoff.errors import FailedPrecondition
from signoff.store import Store
from tests.store.conftest import MakeStore
from tests.store.reviews import change_audit, changed, open_review

WAKE_BUDGET_S = 0.100  # issue 7: a watcher on B learns of an approval on A within 100 ms


async def _listening(store: Store) -> None:
    from signoff.store.postgres.store import PostgresStore

    if isinstance(store, PostgresStore):
        await asyncio.wait_for(store.feed.listening.wait(), 2)


def _subscribe(store: Store) -> tuple[asyncio.Event, list[str]]:
    seen: list[str] = []
    arrived = asyncio.Event()

    def on_change(review_id: str) -> None:
        seen.append(review_id)
        arrived.set()

    store.subscribe_reviews(on_change)
    return arrived, seen


async def test_review_changes_call_subscribers_after_commit(store: Store) -> None:
    await _listening(store)
    arrived, seen = _subscribe(store)
    rev = await open_review(store, 1)
    await asyncio.wait_for(arrived.wait(), 2)
    arrived.clear()
    new = changed(rev)
    await store.update_review(new, 1, [change_audit(new)])
    await asyncio.wait_for(arrived.wait(), 2)
    assert seen == ["rev-1", "rev-1"]


@pytest.mark.postgres_only
async def test_approval_through_a_wakes_b_within_100ms(make_store: MakeStore) -> None:
    a, b = await make_store(), await make_store()
    await _listening(b)
    rev = await open_review(a, 1)
    arrived, seen = _subscribe(b)
    await asyncio.sleep(0.1)  # the open's notification passes first; only the approval counts
    arrived.clear()
    seen.clear()
    new = changed(rev)
    started = time.perf_counter()
    await a.update_review(new, 1, [change_audit(new)])
    acknowledged = time.perf_counter()
    await asyncio.wait_for(arrived.wait(), 2)
    woke = time.perf_counter()
    print(
        f"\ncross-replica wake-up: {1000 * (woke - started):.1f} ms after update_review on A "
        f"was called ({1000 * (woke - acknowledged):.1f} ms after it returned)"
    )
    assert seen == ["rev-1"]
    assert woke - started < WAKE_BUDGET_S


@pytest.mark.postgres_only
async def test_refused_update_notifies_nobody(make_store: MakeStore) -> None:
    a, b = await make_store(), await make_store()
    await _listening(b)
    rev = await open_review(a, 1)
    await asyncio.sleep(0.1)
    arrived, _ = _subscribe(b)
    new = changed(rev)
    await a.update_review(new, 1, [change_audit(new)])
    await asyncio.wait_for(arrived.wait(), 2)
    arrived.clear()
    with pytest.raises(FailedPrecondition):  # stale version: its savepoint undoes the NOTIFY
        await a.update_review(changed(rev, "REJECTED"), 1, [change_audit(new)])
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(arrived.wait(), 0.3)


@pytest.mark.postgres_only
async def test_exactly_one_replica_leads_and_another_takes_over(make_store: MakeStore) -> None:
    a, b = await make_store(), await make_store()
    assert [await a.try_lead("sweeper"), await b.try_lead("sweeper")] == [True, False]
    # Asking again keeps the answers: the holder still holds, the follower still follows.
    assert [await a.try_lead("sweeper"), await b.try_lead("sweeper")] == [True, False]
    assert await b.try_lead("checkpointer")  # one lease per name
    await a.close()  # the holder goes away, and its session lock with it
    assert await b.try_lead("sweeper")


@pytest.mark.postgres_only
async def test_lease_is_lost_with_its_session(make_store: MakeStore) -> None:
    from signoff.store.postgres.store import PostgresStore

    a, b = await make_store(), await make_store()
    assert isinstance(a, PostgresStore)
    assert await a.try_lead("sweeper")
    conn = a._leases._conn
    assert conn is not None
    pid = conn.info.backend_pid
    # Kill A's lease session from outside, as a crashed backend or a cut network would.
    await b.maintenance(lambda c: c.execute("SELECT pg_terminate_backend(%s)", (pid,)))
    deadline = time.monotonic() + 2
    while not await b.try_lead("sweeper"):
        assert time.monotonic() < deadline, "the lease outlived its session"
        await asyncio.sleep(0.05)
    assert not await a.try_lead("sweeper")  # A finds its session gone and follows


def test_channel_names_fit_postgres_identifiers() -> None:
    from signoff.store.postgres.feed import channel_for

    assert channel_for("s1") != channel_for("s2")  # schemas do not cross-talk
    assert len(channel_for("x" * 200).encode()) <= 63
