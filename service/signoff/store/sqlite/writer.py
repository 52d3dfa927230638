"""Group commit for SQLite: one writer per store batches transactions, one fsync per batch.

Callers submit operations and await an asyncio future. The writer takes everything queued
(up to ``max_batch``), runs it in ONE ``BEGIN IMMEDIATE ... COMMIT`` -- one fsync for the
whole batch -- and only then resolves the futures, so nothing is acknowledged before it is
durable. Before it takes a batch it may linger (store/linger.py): while other writers are in
flight it waits, a bounded time, for them to join; a lone write commits at once.

A semantic failure of an operation (a `SignoffError`, a constraint violation, a bad value)
undoes that operation alone (the batch runs again with a SAVEPOINT per operation); an SQL
failure of the transaction (read-only file, disk full, I/O error) rolls the batch back and
fails every operation in it with `Unavailable`.

Where it runs, and why: the operations (a few inserts and a hash each, microseconds) run on
the event loop; only what waits on the disk -- COMMIT, maintenance, opening -- runs on the
writer's own thread. A writer thread that ran the operations too competed with the event
loop for the GIL at every SQLite call: measured in the server, each decision's write then
cost about twice its CPU time alone, and the two threads' hand-offs capped throughput. While
one batch commits on the thread, the loop serves requests and the next batch queues. Measured
again with the linger's batches of 9-12 decisions (the batch's SQL and its COMMIT in one
hand-off to the thread, commit 97c670a): no gain at 8 or 64 in flight, a loss at 1
(docs/benchmarks.md, "Where the gap is now"), so the SQL stays on the loop.

Several processes may write one file (`serve --workers N`): each writer takes an exclusive
flock on a lock file beside the database for each transaction. SQLite's own wait for a
write lock polls with sleeps of up to 100 ms, which under two busy writers put the p99 of a
decision near a second; a flock waiter is woken by the kernel the moment the lock is free.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import dataclasses
import fcntl
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signoff.errors import FailedPrecondition, SignoffError, Unavailable
from signoff.store.linger import DEFAULT_COMMIT_LINGER, CallLater, Linger, WriteQueue
from signoff.store.sealing import Leaf, Sealer, seal

log = logging.getLogger("signoff.store")

# Why a database call failed, in words an operator can act on (keyed by primary result code).
_REASONS = {
    sqlite3.SQLITE_READONLY: "database is read-only",
    sqlite3.SQLITE_FULL: "database or disk is full",
    sqlite3.SQLITE_BUSY: "database is locked by another process",
    sqlite3.SQLITE_LOCKED: "database table is locked",
    sqlite3.SQLITE_IOERR: "disk I/O error",
    sqlite3.SQLITE_CORRUPT: "database file is corrupt",
    sqlite3.SQLITE_NOTADB: "file is not a database",
    sqlite3.SQLITE_CANTOPEN: "cannot open the database file",
    sqlite3.SQLITE_PERM: "permission denied",
}


def unavailable(exc: BaseException) -> SignoffError:
    """Map a database failure to the error a caller sees (a fresh instance per caller)."""
    if isinstance(exc, Unavailable):
        return Unavailable(exc.message)
    if isinstance(exc, SignoffError):
        return exc
    code = getattr(exc, "sqlite_errorcode", None)
    reason = _REASONS.get(code & 0xFF) if isinstance(code, int) else None
    detail = f"{reason} ({exc})" if reason and str(exc) != reason else (reason or str(exc))
    return Unavailable(f"audit store unavailable: {detail}")


@dataclass
class WriterStats:
    """Counters of the group-commit writer (observability)."""

    ops: int = 0  # operations executed in write transactions (committed or failed)
    batches: int = 0  # write transactions attempted
    commits: int = 0  # write transactions committed
    failed_batches: int = 0  # write transactions rolled back by an SQL failure
    largest_batch: int = 0
    retried_batches: int = 0  # batches run again op by op because one operation failed
    lingered: int = 0  # batches that waited for more writes to join (store/linger.py)
    linger_timeouts: int = 0  # ...of which the bound (commit_linger) ended the wait


@dataclass(slots=True)
class _Op:
    apply: Callable[[Any], Any]
    in_transaction: bool
    future: asyncio.Future[Any]
    leaf: Leaf | None = None  # a receipt to seal with the batch (store/sealing.py)


class GroupCommitWriter:
    """The single writer of one SQLite database, for the event loop that opened it."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        begin: Callable[[sqlite3.Connection], Any],
        *,
        max_batch: int,
        linger: float = DEFAULT_COMMIT_LINGER,
        call_later: CallLater | None = None,
        name: str = "signoff-writer",
        lock_file: Path | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        # `connect()` must return a connection usable from any thread (check_same_thread
        # off): the loop runs the operations and the writer thread commits, never at once.
        # `begin(conn)` builds what operations receive, from the open transaction's state; it
        # is called again after an operation fails, because its savepoint rollback undid
        # whatever that operation had changed.
        self._connect, self._begin = connect, begin
        self._name, self._lock_file = name, lock_file
        self._lock_fd = -1
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._stats = WriterStats()
        # `call_later` is the linger's clock (the loop's by default; tests move their own).
        # Maintenance (outside any transaction) joins no batch.
        self._linger = Linger(linger, max_batch, call_later=call_later)
        self._queue = WriteQueue[_Op](self._linger, lambda op: op.in_transaction)
        self.on_batch: Callable[[int, float], None] | None = None  # (size, seconds): telemetry
        self.sealer: Sealer | None = None  # signs each batch's receipt leaves once

    @property
    def stats(self) -> WriterStats:
        """Return a snapshot of the counters."""
        linger = self._linger
        return dataclasses.replace(
            self._stats, lingered=linger.waits, linger_timeouts=linger.timeouts
        )

    async def start(self) -> None:
        """Connect (on the writer thread) and start taking operations; raise why not."""
        self._thread = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix=self._name, initializer=_name_os_thread, initargs=(self._name,)
        )
        try:
            self._conn = await self._on_thread(self._open)
        except BaseException:
            self._thread.shutdown(wait=False)
            raise
        self._queue.accepting = True
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    def submit_async(
        self, apply: Callable[[Any], Any], *, in_transaction: bool = True, leaf: Leaf | None = None
    ) -> asyncio.Future[Any]:
        """Queue `apply(tx)` (or `apply(connection)` on the writer thread, outside any
        transaction: maintenance) and return the future of its result. `leaf` is sealed
        with the batch before `apply` runs."""
        op = _Op(apply, in_transaction, asyncio.get_running_loop().create_future(), leaf)
        self._queue.put(op)
        return op.future

    async def stop(self) -> None:
        """Refuse new operations, finish the queued ones, close the connection."""
        self._queue.close()  # what is queued commits now
        if self._task is not None:
            await asyncio.shield(self._task)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self._on_thread(self._close, conn)
        if self._thread is not None:
            self._thread.shutdown(wait=False)

    async def _on_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        assert self._thread is not None
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _open(self) -> sqlite3.Connection:
        conn = self._connect()  # creates the database's directory if needed
        if self._lock_file is not None:
            try:
                self._lock_fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                conn.close()
                raise
        return conn

    def _close(self, conn: sqlite3.Connection) -> None:
        conn.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    async def _run(self) -> None:
        while (taken := await self._queue.take()) is not None:
            batch, maintenance = taken
            try:
                if maintenance is not None:
                    await self._run_maintenance(maintenance)
                else:
                    await self._run_batch(batch)
            except Exception as exc:  # a bug here must not leave callers waiting forever
                log.exception("audit writer failed")
                for op in batch:
                    _settle(op, False, unavailable(exc))
            finally:
                self._queue.settled(len(batch))

    async def _run_maintenance(self, op: _Op) -> None:
        if op.future.cancelled():
            return
        try:
            await self._lock()
            try:
                value = await self._on_thread(op.apply, self._conn)
            finally:
                self._unlock()
        except Exception as exc:
            _settle(op, False, unavailable(exc) if isinstance(exc, sqlite3.Error) else exc)
            return
        _settle(op, True, value)

    async def _run_batch(self, batch: list[_Op]) -> None:
        # A caller cancelled before its op started is skipped; once started, it commits.
        live = [op for op in batch if not op.future.cancelled()]
        if not live:
            return
        conn = self._conn
        assert conn is not None
        stats = self._stats
        stats.batches += 1
        stats.ops += len(live)
        stats.largest_batch = max(stats.largest_batch, len(live))
        outcomes: list[tuple[bool, Any]] = []
        started = time.perf_counter()
        try:
            # One signature for the batch's receipts, before any operation stores one.
            seal(self.sealer, [op.leaf for op in live if op.leaf is not None])
            await self._lock()
            try:
                self._transaction(conn, live, outcomes)
                await self._on_thread(conn.execute, "COMMIT")  # the fsync, off the loop
            finally:
                self._unlock()
        except Exception as exc:
            # SQLite may already have rolled back (disk full, I/O error); never leave a
            # transaction open, or every later batch would fail on BEGIN.
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            stats.failed_batches += 1
            for op in live:
                _settle(op, False, unavailable(exc))
            return
        stats.commits += 1
        if self.on_batch is not None:
            self.on_batch(len(live), time.perf_counter() - started)
        for op, (ok, value) in zip(live, outcomes, strict=True):
            _settle(op, ok, value)

    def _transaction(
        self, conn: sqlite3.Connection, live: list[_Op], outcomes: list[tuple[bool, Any]]
    ) -> None:
        """Run `live` in one open transaction; fill `outcomes`.

        Optimistically first, without savepoints: an operation that fails is rare (a reused
        request_id, a review acted on twice), and two statements per operation are about a
        tenth of a decision's write. When one fails, the batch starts over with a savepoint
        per operation, so that only the failed one is undone.

        BEGIN IMMEDIATE does not wait here: this process holds the lock file, which every
        Signoff writer takes first. Only a foreign writer (the sqlite3 shell) could make it
        wait, up to the busy timeout.
        """
        conn.execute("BEGIN IMMEDIATE")
        tx = self._begin(conn)
        try:
            values = [op.apply(tx) for op in live]
        except (SignoffError, sqlite3.IntegrityError, ValueError):
            conn.execute("ROLLBACK")
            self._stats.retried_batches += 1
            conn.execute("BEGIN IMMEDIATE")
            self._one_by_one(conn, live, outcomes)
            return
        outcomes.extend((True, value) for value in values)

    def _one_by_one(
        self, conn: sqlite3.Connection, live: list[_Op], outcomes: list[tuple[bool, Any]]
    ) -> None:
        """Run `live` in the open transaction, each under a savepoint; fill `outcomes`."""
        tx = self._begin(conn)
        for op in live:
            conn.execute("SAVEPOINT op")
            try:
                value = op.apply(tx)
            except (SignoffError, sqlite3.IntegrityError, ValueError) as exc:
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                tx = self._begin(conn)
                if isinstance(exc, sqlite3.IntegrityError):
                    exc = FailedPrecondition(f"rejected by the database: {exc}")
                outcomes.append((False, exc))
                continue
            conn.execute("RELEASE op")
            outcomes.append((True, value))

    async def _lock(self) -> None:
        """Take the lock file: at once when free, else waiting on the writer thread."""
        if self._lock_fd < 0:
            return
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another worker process is writing
            await self._on_thread(fcntl.flock, self._lock_fd, fcntl.LOCK_EX)

    def _unlock(self) -> None:
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)


def _settle(op: _Op, ok: bool, value: Any) -> None:
    """Resolve `op`'s future unless its caller already gave up on it."""
    if op.future.done():
        return
    if ok:
        op.future.set_result(value)
    else:
        op.future.set_exception(value)


def _name_os_thread(name: str) -> None:
    """Show this thread as `name` in top -H, ps -L and /proc (Linux; elsewhere nothing)."""
    if sys.platform == "linux":
        with suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # 15: PR_SET_NAME
