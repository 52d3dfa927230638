"""The group commit's linger (store/linger.py): a lone write commits at once, writers in
flight share one commit, and the wait is bounded by store.commit_linger -- on SQLite and on
PostgreSQL (every test that takes the `opened` fixture runs on both backends).

Time is the test's: the writer's timer is a `FakeTimer` that fires only when told, so no
test waits on the wall clock. A write that waited for a timer nobody fires would hang: the
awaits that must not wait are guarded (`within`) so that such a test fails instead."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

from signoff.core.audit import AuditRecord, verify_chain
from signoff.store import SqliteStore
from signoff.store.linger import Linger
from tests.store.conftest import StepClock
from tests.store.helpers import all_entries

if TYPE_CHECKING:
    from signoff.store.postgres.store import PostgresStore

    Opened = SqliteStore | PostgresStore

T = TypeVar("T")
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
LINGER = 0.05  # what the store asks the timer for; never elapses on the wall clock here
GUARD = 10.0  # seconds: only a broken linger takes this long


class _Handle:
    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        self.delay, self.callback, self.cancelled = delay, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class FakeTimer:
    """A `call_later` whose timers fire only when the test says so."""

    def __init__(self) -> None:
        self.handles: list[_Handle] = []
        self.armed = asyncio.Event()  # set while a timer waits to fire

    def __call__(self, delay: float, callback: Callable[[], None]) -> _Handle:
        handle = _Handle(delay, callback)
        self.handles.append(handle)
        self.armed.set()
        return handle

    def fire(self) -> None:
        """Fire every timer that is still armed."""
        self.armed.clear()
        for h in self.handles:
            if not h.cancelled:
                h.cancelled = True
                h.callback()


async def within(aw: Awaitable[T]) -> T:
    """`aw`, or TimeoutError if it waits for a timer that only the test would fire."""
    return await asyncio.wait_for(aw, GUARD)


def record(n: int) -> AuditRecord:
    return AuditRecord(type="policy.loaded", time=T0, actor="signoff", policy_version=f"v{n}")


@pytest.fixture
async def timer() -> FakeTimer:
    return FakeTimer()


OpenStore = Callable[..., AbstractAsyncContextManager["Opened"]]


@pytest.fixture
def opened(backend: str, tmp_path: Path, pg_url: str, timer: FakeTimer) -> OpenStore:
    """Open a store of `backend` whose linger runs on `timer`; closed (within the guard) on
    the way out. Its background steps (side index, audit tree) run only when asked: one
    that ran after an idle second would hold the writer between batches, and the counts
    here would depend on the machine's speed."""

    @contextlib.asynccontextmanager
    async def open_store(commit_linger: float = LINGER) -> AsyncIterator[Opened]:
        store: Opened
        if backend == "postgres":
            from signoff.store.postgres.store import PostgresStore

            store = PostgresStore(
                pg_url, StepClock(), commit_linger=commit_linger, call_later=timer, tree_idle=None
            )
        else:
            path = tmp_path / "signoff.db"
            store = SqliteStore(
                path,
                StepClock(),
                commit_linger=commit_linger,
                call_later=timer,
                index_idle=None,
                tree_idle=None,
            )
        await store.open()
        await within(store._tree.caught_up.wait())  # the tree's step at open, done
        try:
            yield store
        finally:
            await within(store.close())

    return open_store


async def writers(store: Opened, n: int, first: int) -> None:
    """`n` concurrent appends, all queued before the writer runs (one batch)."""
    await within(asyncio.gather(*(store.append([record(first + i)]) for i in range(n))))


async def staggered(store: Opened, n: int, first: int) -> list[asyncio.Task[object]]:
    """`n` appends that arrive one per turn of the event loop, as requests do in the server
    (each runs from its arrival to its write without yielding)."""
    tasks: list[asyncio.Task[object]] = []
    for i in range(n):
        tasks.append(asyncio.create_task(store.append([record(first + i)])))
        await asyncio.sleep(0)  # one turn of the loop: the writer may run in between
    return tasks


async def test_a_lone_write_commits_without_arming_the_linger(
    opened: OpenStore, timer: FakeTimer
) -> None:
    async with opened() as store:
        for n in range(3):  # one writer, one write at a time: never a second in hand
            await within(store.append([record(n)]))
        assert timer.handles == []  # nothing waited, not even for a timer that fires at once
        assert store.stats.commits == 3
        assert store.stats.lingered == 0


async def test_writes_in_flight_share_one_commit(opened: OpenStore, timer: FakeTimer) -> None:
    async with opened() as store:
        await writers(store, 4, first=0)  # four writers seen in flight at once
        before = store.stats.commits
        await within(asyncio.gather(*await staggered(store, 4, first=4)))
        assert store.stats.commits == before + 1  # the four, arriving one by one, in one
        assert store.stats.lingered == 1
        assert store.stats.linger_timeouts == 0  # they came: no timer had to end the wait
        entries = await all_entries(store)
        assert [e.seq for e in entries] == list(range(1, 9))
        assert verify_chain(entries).ok


async def test_without_a_linger_the_same_writes_commit_one_by_one(
    opened: OpenStore,
) -> None:
    # The control of the test above: what the linger saves.
    async with opened(commit_linger=0) as store:
        await writers(store, 4, first=0)
        before = store.stats.commits
        await within(asyncio.gather(*await staggered(store, 4, first=4)))
        assert store.stats.commits > before + 1


async def test_the_linger_is_bounded_by_commit_linger(opened: OpenStore, timer: FakeTimer) -> None:
    async with opened() as store:
        await writers(store, 4, first=0)
        before = store.stats.commits
        (lone,) = await staggered(store, 1, first=4)  # the other three writers went away
        await within(timer.armed.wait())  # the writer waits for them, on a timer of commit_linger
        assert [h.delay for h in timer.handles] == [LINGER]
        assert not lone.done()
        assert store.stats.commits == before
        timer.fire()  # the bound has passed
        await within(lone)
        assert store.stats.commits == before + 1
        assert store.stats.linger_timeouts == 1
        # The peak resets with that batch: the next lone write commits at once.
        await within(store.append([record(5)]))
        assert len(timer.handles) == 1


async def test_closing_the_store_commits_a_lingering_batch_at_once(
    opened: OpenStore, timer: FakeTimer
) -> None:
    async with opened() as store:
        await writers(store, 4, first=0)
        (lone,) = await staggered(store, 1, first=4)
        await within(timer.armed.wait())
    # Closed, and no timer fired: close ended the wait.
    assert lone.done()
    assert lone.exception() is None
    assert store.stats.linger_timeouts == 0


# -- the linger alone -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "max_batch", "in_flight", "queued", "waits"),
    [
        (0.002, 512, 1, 1, False),  # a lone write
        (0.002, 512, 4, 4, False),  # every writer seen in flight has queued
        (0.002, 512, 4, 1, True),  # three more are expected
        (0.002, 2, 4, 2, False),  # a full batch does not wait for the rest
        (0.002, 2, 4, 1, True),
        (0.0, 512, 4, 1, False),  # linger off
    ],
)
async def test_when_the_linger_waits(
    seconds: float, max_batch: int, in_flight: int, queued: int, waits: bool
) -> None:
    timer = FakeTimer()
    linger = Linger(seconds, max_batch, call_later=timer)
    for _ in range(in_flight):
        linger.submitted(queued=1)
    linger.settled(in_flight - queued)  # those committed; the rest are queued
    waiting = asyncio.create_task(linger.wait(queued))
    await asyncio.sleep(0)  # one turn of the loop
    assert waiting.done() is not waits
    assert bool(timer.handles) is waits
    linger.release()
    await within(waiting)
