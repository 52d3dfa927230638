"""What replicas tell each other through PostgreSQL: review changes (LISTEN/NOTIFY) and who
leads singleton jobs such as the expiry sweeper (session advisory locks).

Both hold one dedicated connection each, outside the pool: a LISTEN and a session lock live
exactly as long as their connection, so neither may be handed to another caller.

Guarantees, and their limits:

* A change feed notification is sent by ``pg_notify`` inside the writing transaction, so it
  is delivered on commit and never for a rolled-back write. Notifications sent while the
  listener is reconnecting are lost; watchers re-read periodically (`ReviewDesk.recheck_s`),
  so a lost notification delays a wake-up, never loses a change.
* A lease is held while its connection lives. When the holder dies (process killed, network
  cut, connection terminated), PostgreSQL releases the lock and another replica takes it at
  its next `try_lead`. A holder whose connection broke learns so only at its next try, so
  for a moment two replicas may both act as leader; the sweeper tolerates that because
  review updates are conditional (``WHERE version = expected``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql as pgsql

from signoff.logs import event

log = logging.getLogger("signoff.store")

ReviewCallback = Callable[[str], None]
NOTIFY = "SELECT pg_notify(%s, %s)"
# Many at once, in the order given (channels, payloads): a pipelined batch's notifications.
NOTIFY_MANY = "SELECT pg_notify(c, p) FROM unnest(%s::text[], %s::text[]) AS n(c, p)"
# PostgreSQL truncates identifiers at 63 bytes; pg_notify refuses longer channel names.
_MAX_CHANNEL = 63


def channel_for(schema: str) -> str:
    """The NOTIFY channel of review changes in `schema` (so schemas do not cross-talk)."""
    name = f"signoff_reviews.{schema}"
    if len(name.encode()) <= _MAX_CHANNEL:
        return name
    return "signoff_reviews." + hashlib.sha256(schema.encode()).hexdigest()[:40]


async def connect(url: str, connect_timeout: float) -> psycopg.AsyncConnection[Any]:
    """A dedicated autocommit connection (not pooled: its session state is the point)."""
    return await psycopg.AsyncConnection.connect(
        url, autocommit=True, connect_timeout=max(int(connect_timeout), 2)
    )


class ReviewFeed:
    """Listens on the review channel and calls every subscriber with the changed review_id."""

    def __init__(self, url: str, *, connect_timeout: float, max_backoff: float = 5.0) -> None:
        self._url, self._timeout, self._max_backoff = url, connect_timeout, max_backoff
        self._callbacks: list[ReviewCallback] = []
        self._task: asyncio.Task[None] | None = None
        self.channel = ""
        # Set whenever LISTEN is in effect (tests wait for it; nothing is heard before).
        self.listening = asyncio.Event()

    def subscribe(self, callback: ReviewCallback) -> None:
        """Call `callback(review_id)` on the event loop after each committed review change."""
        self._callbacks.append(callback)

    def start(self, channel: str) -> None:
        """Start listening on `channel` (in the running loop); reconnects until stopped."""
        self.channel = channel
        self._task = asyncio.get_running_loop().create_task(self._run(), name="signoff-pg-listen")

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                async with await connect(self._url, self._timeout) as conn:
                    listen = pgsql.SQL("LISTEN {}").format(pgsql.Identifier(self.channel))
                    await conn.execute(listen)
                    self.listening.set()
                    backoff = 0.1
                    event(log, "store.listening", channel=self.channel)
                    async for note in conn.notifies():
                        self._deliver(note.payload)
            except (psycopg.Error, OSError) as exc:
                self.listening.clear()
                event(log, "store.listen_lost", channel=self.channel, error=str(exc).strip())
            # notifies() ends only when the connection does; either way, reconnect.
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    def _deliver(self, review_id: str) -> None:
        for callback in list(self._callbacks):
            try:
                callback(review_id)
            except Exception:  # one broken subscriber must not deafen the others
                log.exception("review change subscriber failed")


class Leases:
    """Session advisory locks on one dedicated connection: one leader per name per schema."""

    def __init__(self, url: str, *, connect_timeout: float) -> None:
        self._url, self._timeout = url, connect_timeout
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._held: set[str] = set()
        self._lock = asyncio.Lock()

    async def try_lead(self, name: str) -> bool:
        """True if this process holds (or just took) the lease `name`; never blocks on it."""
        async with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._held.clear()  # a new session holds nothing
                    self._conn = await connect(self._url, self._timeout)
                if name in self._held:
                    # Re-taking would stack the session lock; a live connection still holds it.
                    await self._conn.execute("SELECT 1")
                    return True
                cur = await self._conn.execute(
                    "SELECT pg_try_advisory_lock(hashtext(current_schema() || '.' || %s))",
                    (f"signoff.lease.{name}",),
                )
                row = await cur.fetchone()
            except (psycopg.Error, OSError) as exc:
                # The session (and with it every lease) is gone or unreachable: not leading.
                event(log, "store.lease_lost", lease=name, error=str(exc).strip())
                await self._drop()
                return False
            if row is not None and row[0]:
                self._held.add(name)
                return True
            return False

    async def close(self) -> None:
        """Release every lease (by closing the session)."""
        async with self._lock:
            await self._drop()

    async def _drop(self) -> None:
        self._held.clear()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            # Release explicitly: the server ends a closed session asynchronously, so a
            # follower asking right after close() could still find the lock held.
            with contextlib.suppress(psycopg.Error, OSError):
                if not conn.closed:
                    await conn.execute("SELECT pg_advisory_unlock_all()")
            await conn.close()
