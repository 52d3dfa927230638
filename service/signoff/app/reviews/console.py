"""What the reviewer console reads besides single reviews: the live pending queue and the
precedents of a review. Who may see what is decided by the caller (`ReviewDesk`)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable
from typing import Protocol

from signoff import pb
from signoff.app.paging import fit_budget
from signoff.core.reviews import rule_set
from signoff.errors import InvalidArgument, PermissionDenied
from signoff.store.base import ReviewQuery, ReviewRecord, Store

S = pb.review
QUEUE_LIMIT = (100, 500)  # (default, most) reviews per snapshot
PRECEDENT_LIMIT = (10, 50)  # (default, most) precedents per answer
# Precedents are the latest decided reviews of the action, filtered here by rule set and
# group: the store reads at most this many candidates per precedent asked for, so a popular
# action costs a bounded, indexed read. The price: when almost all recent reviews of the
# action matched other rules, fewer precedents than exist are found.
PRECEDENT_SCAN = 20
# A burst of changes (an agent opening a thousand reviews) must cost each watcher a few
# re-reads, not a thousand: after a read, the next waits at least this long.
QUEUE_MIN_INTERVAL_S = 0.25


class Who(Protocol):
    """What these reads need of the caller (a subset of `review_app.Identity`)."""

    id: str
    roles: frozenset[str]
    act_for_others: bool

    def can_review(self, group: str) -> bool:
        """True if the caller may act on reviews of `group`."""
        ...


def caller(who: Who) -> pb.review.Caller:
    """The WhoAmI answer: id, sorted roles, sorted reviewer groups ("*" for reviewer:*)."""
    return S.Caller(
        id=who.id,
        roles=sorted(who.roles),
        reviewer_groups=_reviewer_groups(who),
        act_for_others=who.act_for_others,
    )


def queue_groups(who: Who, requested: tuple[str, ...]) -> tuple[str, ...]:
    """The groups a queue watches (empty = all), chosen as ListReviews chooses them."""
    sees_all = "admin" in who.roles or "auditor" in who.roles
    if requested:
        denied = sorted({g for g in requested if not (sees_all or who.can_review(g))})
        if denied:
            raise PermissionDenied(f"{who.id} may not review for {', '.join(denied)}")
        return tuple(sorted(set(requested)))
    if sees_all or "reviewer:*" in who.roles:
        return ()
    mine = tuple(_reviewer_groups(who))
    if not mine:
        # Unlike ListReviews, there is no agent's view to fall back to: a queue is a backlog.
        raise PermissionDenied(
            f"{who.id} reviews for no group: a queue is for reviewers (role reviewer:<group>)"
        )
    return mine


def _reviewer_groups(who: Who) -> list[str]:
    return sorted(r.removeprefix("reviewer:") for r in who.roles if r.startswith("reviewer:"))


def bounded(value: int, field: str, limits: tuple[int, int]) -> int:
    """`value`, or the default when 0; InvalidArgument naming `field` outside 1..most."""
    default, most = limits
    n = value or default
    if not 0 < n <= most:
        raise InvalidArgument(field, f"must be 1-{most} (0 for {default}), got {value}")
    return n


async def read_queue(
    store: Store,
    groups: tuple[str, ...],
    limit: int,
    now: dt.datetime,
    page_bytes: int = 2 << 20,
) -> pb.review.Queue:
    """One snapshot: the oldest `limit` pending reviews of `groups` (empty = all) that fit in
    `page_bytes`, and the counts of all of them."""
    # Two statements, not one snapshot of the database: a change between them is also a
    # wake-up that makes the watcher read again, so the last snapshot sent is consistent.
    rows = await store.list_reviews(ReviewQuery(groups=groups, limit=limit))
    backlog = await store.pending_backlog(groups)
    queue = S.Queue(pending=sum(b.pending for b in backlog))
    # Fewer reviews than `limit` when they are large: `pending` still counts all of them.
    fit_budget(queue.reviews, (S.Review.FromString(r.review) for r in rows), page_bytes)
    for b in backlog:
        group = queue.groups.add(reviewer_group=b.reviewer_group, pending=b.pending)
        group.oldest_created_at.FromDatetime(b.oldest_created_at)
        if b.next_expires_at is not None:
            group.next_expires_at.FromDatetime(b.next_expires_at)
    queue.server_time.FromDatetime(now)
    return queue


def queue_key(queue: pb.review.Queue) -> Hashable:
    """What makes two snapshots different for a reviewer (the server time does not)."""
    return (
        tuple((r.review_id, r.version) for r in queue.reviews),
        tuple(g.SerializeToString(deterministic=True) for g in queue.groups),
        queue.pending,
    )


async def watch_queue(
    read: Callable[[], Awaitable[pb.review.Queue]],
    next_change: Callable[[], asyncio.Event],
    *,
    recheck_s: float,
    min_interval_s: float = QUEUE_MIN_INTERVAL_S,
    check_open: Callable[[], None] = lambda: None,
) -> AsyncIterator[pb.review.Queue]:
    """The queue now, then after changes: at most one read per `min_interval_s`, no repeats."""
    loop = asyncio.get_running_loop()
    sent: Hashable = None
    while True:
        # Take the event before reading, so that a change committed during the read still
        # wakes us; the re-check every `recheck_s` covers a wake-up that never came.
        changed = next_change()
        read_at = loop.time()
        queue = await read()
        key = queue_key(queue)
        if key != sent:
            sent = key
            yield queue
        check_open()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(recheck_s):
                await changed.wait()
        check_open()
        # Changes arriving during this pause are all covered by the next read.
        pause = read_at + min_interval_s - loop.time()
        if pause > 0:
            await asyncio.sleep(pause)


def precedents(
    review: pb.review.Review,
    candidates: Iterable[ReviewRecord],
    visible: Callable[[str], bool],
    limit: int,
) -> list[pb.review.Review]:
    """The candidates matched by the same rules as `review`, in a visible group, in order."""
    rules = rule_set(review)
    found: list[pb.review.Review] = []
    for rec in candidates:
        if rec.review_id == review.review_id or not visible(rec.reviewer_group):
            continue
        candidate = S.Review.FromString(rec.review)
        if rule_set(candidate) == rules:
            found.append(candidate)
            if len(found) == limit:
                break
    return found
