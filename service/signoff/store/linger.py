"""How long a group commit waits for more writes to join it (the commit linger).

Why a writer must wait at all: in the server, the event loop runs one request at a time,
from its arrival to the write it submits, without yielding. A writer that commits as soon
as it holds a write therefore commits what one or two requests queued while the previous
commit ran: measured, 1 to 1.6 decisions per commit at 8 and 64 requests in flight, each
commit paying its own transaction, chain-head reads, hand-off to the writer thread and
WAL pages. Waiting a little while the loop serves the other requests lets one commit carry
them all.

When to wait, without slowing a lone request: the writer cannot see requests the transport
has not handed to the loop yet, but it sees its own traffic. Writes in hand are those
submitted and not yet settled (queued or committing). The most writes in hand at one
moment since the last batch began is how many callers are writing concurrently; after a
commit, those callers come back. So the next batch waits until that many writes are
queued, or `seconds` have passed, or the queue holds `max_batch`, whichever comes first.

- A lone writer never has a second write in hand: it commits at once (no wait, no timer).
- When the load drops, one batch waits out the bound, and its peak resets the target.
- The wait is bounded by `seconds` (store.commit_linger), whatever the estimate says.

`WriteQueue` is the queue both group-commit writers (SQLite and PostgreSQL) take their
batches from, through the linger: the same semantics on both databases, in one place.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from signoff.errors import Unavailable

log = logging.getLogger("signoff.store")

DEFAULT_COMMIT_LINGER = 0.002  # seconds: about two decisions of event-loop time
DEFAULT_COMMIT_BATCH = 512

OpT = TypeVar("OpT")


class Cancellable(Protocol):
    """A scheduled call that can be called off (asyncio.TimerHandle)."""

    def cancel(self) -> None:
        """Call it off."""


# call_later(delay, callback) -> handle: the loop's by default; tests pass their own clock.
CallLater = Callable[[float, Callable[[], None]], Cancellable]


class Linger:
    """The commit linger of one group-commit writer (all on the writer's event loop)."""

    def __init__(
        self, seconds: float, max_batch: int, *, call_later: CallLater | None = None
    ) -> None:
        if seconds < 0:
            raise ValueError("commit linger must be >= 0 seconds")
        self.seconds, self.max_batch = seconds, max_batch
        self._call_later = call_later
        self._in_hand = 0  # writes submitted and not yet settled
        self._peak = 0  # most writes in hand at once since the current batch was taken
        self._target = 0  # while waiting: queued writes that end the wait
        self._waiter: asyncio.Future[None] | None = None
        self.waits = 0  # batches that waited
        self.timeouts = 0  # ...of which the bound ended the wait

    def submitted(self, queued: int) -> None:
        """A write was queued; `queued` writes are queued now."""
        self._in_hand += 1
        if self._in_hand > self._peak:
            self._peak = self._in_hand
        if self._waiter is not None and queued >= self._target:
            self._done()

    def settled(self, count: int) -> None:
        """`count` writes taken from the queue were committed, failed or skipped."""
        self._in_hand -= count

    def taken(self) -> None:
        """A batch was taken from the queue: the next peak is counted from here."""
        self._peak = self._in_hand

    def release(self) -> None:
        """End a wait now (the writer is stopping)."""
        self._done()

    async def wait(self, queued: int) -> None:
        """Return when the batch should start: at once for a lone write, else once the
        writers seen in flight have queued, the queue is full, or the bound has passed."""
        target = min(self._peak, self.max_batch)
        if self.seconds <= 0 or queued >= target:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        self._target = target
        self.waits += 1
        call_later = self._call_later or loop.call_later
        timer = call_later(self.seconds, self._expired)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _expired(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self.timeouts += 1
        self._done()

    def _done(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class WriteQueue(Generic[OpT]):
    """The operations waiting for one group-commit writer, taken in batches after the linger.

    An operation either joins a batch (a write) or runs alone between batches, keeping its
    place in the queue order (maintenance: rare, and not counted by the linger)."""

    def __init__(self, linger: Linger, joins: Callable[[OpT], bool]) -> None:
        self.linger, self._joins = linger, joins
        self._queue: collections.deque[OpT] = collections.deque()
        self._wake = asyncio.Event()
        self.accepting = False  # the writer opens it once it can run what it takes

    def put(self, op: OpT) -> None:
        """Queue `op`, or raise Unavailable once the queue is closed."""
        if not self.accepting:
            raise Unavailable("audit store unavailable: the store is not open")
        self._queue.append(op)
        if self._joins(op):
            self.linger.submitted(len(self._queue))
        self._wake.set()

    def close(self) -> None:
        """Refuse new operations; what is queued is taken at once, without lingering."""
        self.accepting = False
        self.linger.release()
        self._wake.set()

    async def take(self) -> tuple[list[OpT], OpT | None] | None:
        """The next batch, or ([], the maintenance op) next in line; None once closed and
        drained. Call `settled(len(batch))` when the batch's operations are settled."""
        while not self._queue:
            if not self.accepting:
                return None
            await self._wake.wait()
            self._wake.clear()
        if self.accepting and self._joins(self._queue[0]):
            await self.linger.wait(len(self._queue))
        batch: list[OpT] = []
        queue, joins = self._queue, self._joins
        while queue and len(batch) < self.linger.max_batch and joins(queue[0]):
            batch.append(queue.popleft())
        maintenance = None if batch else queue.popleft()
        self.linger.taken()
        return batch, maintenance

    def settled(self, count: int) -> None:
        """`count` operations of a taken batch were committed, failed or skipped."""
        self.linger.settled(count)


async def stop_task(task: asyncio.Task[None]) -> None:
    """Cancel a background loop and wait until it has ended.

    Cancelled again each tenth of a second until it has: a cancel can be swallowed (Python
    3.11's asyncio.wait_for returns a result that arrived with the cancel), and a loop that
    then goes back to waiting would hold its store's close() forever.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.1)
    if not task.cancelled() and task.exception() is not None:
        log.warning("background task %s ended with %r", task.get_name(), task.exception())
