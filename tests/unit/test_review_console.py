"""The reviewer console's pure parts (limits, group choice, who-am-I, precedent matching) and
the queue watcher's loop against a fake read and a real Hub: coalescing, no repeats, cleanup."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from signoff import pb
from signoff.app.reviews.console import (
    PRECEDENT_LIMIT,
    QUEUE_LIMIT,
    bounded,
    caller,
    precedents,
    queue_groups,
    watch_queue,
)
from signoff.app.reviews.desk import Hub
from signoff.auth.identity import Identity
from signoff.errors import InvalidArgument, PermissionDenied
from signoff.store.base import ReviewRecord

S = pb.review
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def who(*roles: str, name: str = "x", others: bool = False) -> Identity:
    return Identity(name, frozenset(roles), act_for_others=others)


@pytest.mark.parametrize(
    ("value", "limits", "expected"),
    [(0, QUEUE_LIMIT, 100), (1, QUEUE_LIMIT, 1), (500, QUEUE_LIMIT, 500), (0, PRECEDENT_LIMIT, 10)],
)
def test_limits_default_and_bounds(value: int, limits: tuple[int, int], expected: int) -> None:
    assert bounded(value, "limit", limits) == expected


@pytest.mark.parametrize(
    ("value", "limits"), [(501, QUEUE_LIMIT), (-1, QUEUE_LIMIT), (51, PRECEDENT_LIMIT)]
)
def test_limits_out_of_range_name_the_field(value: int, limits: tuple[int, int]) -> None:
    with pytest.raises(InvalidArgument) as err:
        bounded(value, "limit", limits)
    assert err.value.field == "limit"
    assert f"must be 1-{limits[1]}" in str(err.value)


@pytest.mark.parametrize(
    ("roles", "requested", "expected"),
    [
        (("reviewer:finance", "reviewer:dba"), (), ("dba", "finance")),
        (("reviewer:finance", "reviewer:dba"), ("finance", "finance"), ("finance",)),
        (("reviewer:*",), (), ()),
        (("reviewer:*",), ("ops", "comms"), ("comms", "ops")),
        (("admin",), (), ()),
        (("auditor",), ("anything",), ("anything",)),
        (("agent", "reviewer:comms"), (), ("comms",)),
    ],
)
def test_queue_groups_are_chosen_like_list_reviews(
    roles: tuple[str, ...], requested: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert queue_groups(who(*roles), requested) == expected


@pytest.mark.parametrize(
    ("roles", "requested", "named"),
    [
        (("reviewer:finance",), ("finance", "ops", "dba"), "dba, ops"),
        (("agent",), ("finance",), "finance"),
        (("agent",), (), "a queue is for reviewers"),
        ((), (), "a queue is for reviewers"),
    ],
)
def test_queue_groups_the_caller_may_not_review_are_refused(
    roles: tuple[str, ...], requested: tuple[str, ...], named: str
) -> None:
    with pytest.raises(PermissionDenied, match=named):
        queue_groups(who(*roles), requested)


def test_caller_lists_sorted_roles_and_groups() -> None:
    c = caller(who("reviewer:ops", "agent", "reviewer:*", "reviewer:dba", name="gw", others=True))
    assert c == S.Caller(
        id="gw",
        roles=["agent", "reviewer:*", "reviewer:dba", "reviewer:ops"],
        reviewer_groups=["*", "dba", "ops"],
        act_for_others=True,
    )
    assert list(caller(who("agent")).reviewer_groups) == []


# -- precedents -----------------------------------------------------------------------------


def review(rid: str, *rules: str, group: str = "finance", shadow: str = "") -> S.Review:
    r = S.Review(review_id=rid, reviewer_group=group)
    for rule in rules:
        r.matched_rules.add(policy="refunds", rule=rule)
    if shadow:
        r.matched_rules.add(policy="refunds", rule=shadow, shadow=True)
    return r


def record(r: S.Review) -> ReviewRecord:
    return ReviewRecord(
        **dict.fromkeys(("decision_id", "principal_id", "on_behalf_of", "action_name"), ""),
        review_id=r.review_id,
        reviewer_group=r.reviewer_group,
        state="APPROVED",
        version=2,
        created_at=T0,
        updated_at=T0,
        expires_at=None,
        review=r.SerializeToString(),
    )


def test_precedents_match_the_rule_set_in_visible_groups_in_order() -> None:
    this = review("r0", "large", "vip")
    candidates = [
        review("r0", "large", "vip"),  # itself
        review("r1", "vip", "large"),  # same set, other order
        review("r2", "large"),  # a subset
        review("r3", "large", "vip", group="directors"),  # not visible
        review("r4", "large", "vip", shadow="two-approvers"),  # shadow rules do not count
        review("r5", "large", "vip", "fraud"),  # a superset
        review("r6", "large", "vip"),
        review("r7", "large", "vip"),
    ]
    found = precedents(this, map(record, candidates), lambda g: g == "finance", 3)
    assert [r.review_id for r in found] == ["r1", "r4", "r6"]
    everything = precedents(this, map(record, candidates), lambda g: True, 50)
    assert [r.review_id for r in everything] == ["r1", "r3", "r4", "r6", "r7"]


# -- the queue watcher ----------------------------------------------------------------------


class FakeQueue:
    """A read that counts itself and returns the queue of `pending` reviews at `version`."""

    def __init__(self) -> None:
        self.pending, self.version, self.reads = 0, 1, 0
        self._read = asyncio.Condition()

    async def read(self) -> S.Queue:
        async with self._read:
            self.reads += 1
            self._read.notify_all()
        q = S.Queue(pending=self.pending)
        for n in range(min(self.pending, 3)):
            q.reviews.add(review_id=f"r{n}", version=self.version)
        return q

    async def until_read(self, times: int) -> None:
        """Return once the watcher has read `times` times."""
        async with asyncio.timeout(5), self._read:
            await self._read.wait_for(lambda: self.reads >= times)


async def next_of(stream: object) -> S.Queue:
    async with asyncio.timeout(5):
        return await stream.__anext__()  # type: ignore[attr-defined,no-any-return]


def watcher(fake: FakeQueue, hub: Hub, recheck_s: float = 30.0, interval: float = 0.05) -> object:
    return watch_queue(fake.read, hub.any_event, recheck_s=recheck_s, min_interval_s=interval)


async def test_first_snapshot_at_once_then_one_per_change() -> None:
    fake, hub = FakeQueue(), Hub()
    stream = watcher(fake, hub)
    assert (await next_of(stream)).pending == 0
    fake.pending = 1
    hub.notify("r0")
    assert (await next_of(stream)).pending == 1
    fake.version = 2
    hub.notify("r0")
    assert [r.version for r in (await next_of(stream)).reviews] == [2]
    await stream.aclose()  # type: ignore[attr-defined]


async def test_a_burst_of_changes_costs_a_few_reads() -> None:
    fake, hub = FakeQueue(), Hub()
    stream = watcher(fake, hub, interval=0.1)
    await next_of(stream)
    for n in range(1, 1001):
        fake.pending = n
        hub.notify(f"r{n}")
        if n % 100 == 0:
            await asyncio.sleep(0.01)  # the burst spans ~0.1 s of other work
    seen = [(await next_of(stream)).pending]
    while seen[-1] != 1000:
        seen.append((await next_of(stream)).pending)
    assert fake.reads <= 4, (fake.reads, seen)
    await stream.aclose()  # type: ignore[attr-defined]


async def test_a_snapshot_equal_to_the_last_is_not_sent() -> None:
    fake, hub = FakeQueue(), Hub()
    stream = watcher(fake, hub, recheck_s=0.02, interval=0.01)
    await next_of(stream)
    hub.notify("unrelated")  # wakes, re-reads, finds nothing new
    pending = asyncio.ensure_future(next_of(stream))
    await fake.until_read(6)  # the re-check keeps reading, and keeps finding the same queue
    assert not pending.done()
    fake.pending = 2
    assert (await pending).pending == 2
    await stream.aclose()  # type: ignore[attr-defined]


async def test_a_cancelled_watcher_leaves_nothing_behind() -> None:
    fake, hub = FakeQueue(), Hub()
    stream = watcher(fake, hub)
    consumed = asyncio.Event()

    async def consume() -> None:
        async for _ in stream:  # type: ignore[attr-defined]
            consumed.set()

    before = asyncio.all_tasks()
    task = asyncio.ensure_future(consume())
    async with asyncio.timeout(5):
        await consumed.wait()  # and then the watcher waits for a change
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert asyncio.all_tasks() == before
    assert hub._events == {}  # queue watchers register nothing per watcher
    hub.notify("r0")  # a later change finds nobody to wake, without error
    assert fake.reads == 1


async def test_a_closed_watcher_reads_no_more() -> None:
    fake, hub = FakeQueue(), Hub()
    stream = watcher(fake, hub, recheck_s=0.01, interval=0.0)
    await next_of(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    hub.notify("r0")
    await asyncio.sleep(0.05)  # several re-check periods
    assert fake.reads == 1


def test_hub_any_event_is_set_by_a_change_from_another_thread() -> None:
    async def main() -> None:
        hub = Hub()
        changed = hub.any_event()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, hub.notify, "r9")
        await asyncio.wait_for(changed.wait(), 5)
        assert hub.any_event() is not changed  # the next change sets a fresh event

    asyncio.run(main())
