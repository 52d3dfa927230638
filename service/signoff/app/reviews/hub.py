"""In-process wake-ups for review watchers (`ReviewDesk.watch`, the console's queue)."""

from __future__ import annotations

import asyncio

from signoff.errors import Unavailable


class Hub:
    """In-process wake-ups for watchers: one Event per review, and one for any review, each
    replaced at every change.

    Fed by this process's own changes (`ReviewDesk.published`) and by the store's change feed
    (other replicas), so a review changed twice may be notified twice: a spurious wake-up
    costs the watcher one re-read, a missing one costs it up to `recheck_s`. Queue watchers
    share the one "any" event and register nothing, so a watcher that goes away leaves
    nothing behind.
    """

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._any = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None  # the watchers' loop
        self.closed = False

    def close(self) -> None:
        """Wake every watcher for good: the server is stopping (call on the watchers' loop)."""
        self.closed = True
        for review_id in list(self._events):
            self._wake(review_id)
        self._wake("")

    def check_open(self) -> None:
        """Raise Unavailable once the server is stopping, so that watch streams end at once."""
        # A watch never ends by itself; left running, it would hold a graceful stop for its
        # whole grace period. Clients reconnect on UNAVAILABLE, to a replica or the restart.
        if self.closed:
            raise Unavailable("the server is shutting down; watch again")

    def event(self, review_id: str) -> asyncio.Event:
        """The event the next change of `review_id` will set."""
        self._loop = asyncio.get_running_loop()
        return self._events.setdefault(review_id, asyncio.Event())

    def any_event(self) -> asyncio.Event:
        """The event the next change of any review will set."""
        self._loop = asyncio.get_running_loop()
        return self._any

    def notify(self, review_id: str) -> None:
        """Wake everyone waiting on `review_id`; callable from any thread."""
        # asyncio.Event is not thread-safe: a store callback from another thread (or loop)
        # hands the wake-up to the watchers' loop instead of touching the events itself.
        loop = self._loop
        if loop is None:
            return  # nobody has ever waited
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            self._wake(review_id)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._wake, review_id)

    def _wake(self, review_id: str) -> None:
        ev = self._events.pop(review_id, None)
        if ev is not None:
            ev.set()
        woken, self._any = self._any, asyncio.Event()
        woken.set()
