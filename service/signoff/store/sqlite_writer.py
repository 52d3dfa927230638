"""Group commit for SQLite: one thread owns the write connection and batches transactions.

Callers submit operations and get a future (`submit_async`: an asyncio future of the caller's
loop; `submit`: a `concurrent.futures.Future`). The writer takes everything
queued (up to ``max_batch``), runs it in ONE ``BEGIN IMMEDIATE ... COMMIT`` -- one fsync for
the whole batch -- and only then resolves the futures, so nothing is acknowledged before it
is durable. Each operation runs under its own SAVEPOINT: a semantic failure (a
`SignoffError`, a constraint violation, a bad value) undoes that operation alone; an SQL
failure of the transaction (read-only file, disk full, I/O error) rolls the batch back and
fails every operation in it with `Unavailable`.

Several processes may write one file (`serve --workers N`): each writer takes an exclusive
flock on a lock file beside the database for each transaction. SQLite's own wait for a
write lock polls with sleeps of up to 100 ms, which under two busy writers put the p99 of a
decision near a second; a flock waiter is woken by the kernel the moment the lock is free.

The asyncio futures of one batch are settled with ONE wake-up of their event loop: at 64
concurrent decisions, a wake-up (self-pipe write and read, a lock, a callback) per operation
cost the event loop, which is the server's bottleneck, more than the commit itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import dataclasses
import fcntl
import os
import queue
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signoff.errors import FailedPrecondition, SignoffError, Unavailable

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

_STOP = object()


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


class _Op:
    __slots__ = ("apply", "future", "in_transaction", "loop")

    def __init__(
        self,
        apply: Callable[[Any], Any],
        in_transaction: bool,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.apply = apply
        self.in_transaction = in_transaction
        self.loop = loop
        # An asyncio future is only ever touched in its loop (see _settle), except for the
        # read of cancelled() in start(): a cancel racing it makes the op commit unanswered,
        # which is what a cancel after the op started means anyway.
        self.future: Any = loop.create_future() if loop is not None else concurrent.futures.Future()

    def start(self) -> bool:
        """Mark the op running; False when its caller cancelled it first (skip it)."""
        if self.loop is not None:
            return not self.future.cancelled()
        return bool(self.future.set_running_or_notify_cancel())


def _name_os_thread(name: str) -> None:
    """Show this thread as `name` in top -H, ps -L and /proc (Linux; elsewhere nothing)."""
    if sys.platform == "linux":
        with suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # 15: PR_SET_NAME


def _settle(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """Resolve asyncio futures in their own loop (a caller may have cancelled meanwhile)."""
    for future, ok, value in results:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _resolve(ops: list[_Op], outcomes: list[tuple[bool, Any]]) -> None:
    """Hand each op its outcome: concurrent futures at once, asyncio ones per loop, in one
    call_soon_threadsafe each."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for op, (ok, value) in zip(ops, outcomes, strict=True):
        if op.loop is not None:
            by_loop.setdefault(op.loop, []).append((op.future, ok, value))
        elif ok:
            op.future.set_result(value)
        else:
            op.future.set_exception(value)
    for loop, results in by_loop.items():
        with suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(_settle, results)


class GroupCommitWriter:
    """The single writer of one SQLite database."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        begin: Callable[[sqlite3.Connection], Any],
        *,
        max_batch: int,
        name: str = "signoff-sqlite-writer",
        lock_file: Path | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        # `begin(conn)` builds what operations receive, from the open transaction's state; it
        # is called again after an operation fails, because its savepoint rollback undid
        # whatever that operation had changed.
        self._connect, self._begin, self._max_batch = connect, begin, max_batch
        self._lock_file = lock_file
        self._lock_fd = -1
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._accepting = False
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._stats = WriterStats()
        self.on_batch: Callable[[int, float], None] | None = None  # (size, seconds): telemetry

    @property
    def stats(self) -> WriterStats:
        """Return a snapshot of the counters."""
        return dataclasses.replace(self._stats)

    def start(self) -> concurrent.futures.Future[None]:
        """Start the thread; the future resolves once connected (or fails with why not)."""
        self._thread.start()
        return self._ready

    def submit(
        self, apply: Callable[[Any], Any], *, in_transaction: bool = True
    ) -> concurrent.futures.Future[Any]:
        """Queue `apply(tx)` (or `apply(connection)` outside any transaction) for the writer."""
        op = _Op(apply, in_transaction)
        self._put(op)
        return op.future  # type: ignore[no-any-return]

    def submit_async(
        self, apply: Callable[[Any], Any], *, in_transaction: bool = True
    ) -> asyncio.Future[Any]:
        """Like `submit`, for the running event loop: an asyncio future, settled per batch."""
        op = _Op(apply, in_transaction, asyncio.get_running_loop())
        self._put(op)
        return op.future  # type: ignore[no-any-return]

    def _put(self, op: _Op) -> None:
        with self._lock:
            if not self._accepting:
                raise Unavailable("audit store unavailable: the store is not open")
            self._queue.put(op)

    def stop(self) -> concurrent.futures.Future[None]:
        """Refuse new operations, finish the queued ones, close the connection."""
        with self._lock:
            if self._accepting:
                self._accepting = False
                self._queue.put(_STOP)
        return self._stopped

    def _main(self) -> None:
        _name_os_thread("signoff-writer")
        try:
            conn = self._connect()  # creates the database's directory if needed
            if self._lock_file is not None:
                try:
                    self._lock_fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT, 0o600)
                except OSError:
                    conn.close()
                    raise
        except BaseException as exc:
            self._ready.set_exception(exc)
            self._stopped.set_result(None)
            return
        self._accepting = True
        self._ready.set_result(None)
        try:
            self._loop(conn)
        finally:
            conn.close()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
            self._stopped.set_result(None)

    def _loop(self, conn: sqlite3.Connection) -> None:
        while True:
            batch: list[_Op] = []
            item = self._queue.get()
            while item is not _STOP:
                if item.in_transaction:
                    batch.append(item)
                else:  # maintenance keeps its place in the queue order
                    self._run_batch(conn, batch)
                    batch = []
                    self._run_maintenance(conn, item)
                if len(batch) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._run_batch(conn, batch)
            if item is _STOP:
                return

    def _run_maintenance(self, conn: sqlite3.Connection, op: _Op) -> None:
        if not op.start():
            return
        try:
            with self._exclusive():
                outcome: tuple[bool, Any] = (True, op.apply(conn))
        except Exception as exc:
            outcome = (False, unavailable(exc) if isinstance(exc, sqlite3.Error) else exc)
        _resolve([op], [outcome])

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the lock file (if any) across one transaction of this process's writer."""
        if self._lock_fd < 0:
            yield
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        # A caller cancelled before its op started is skipped; once started, it commits.
        live = [op for op in batch if op.start()]
        if not live:
            return
        stats = self._stats
        stats.batches += 1
        stats.ops += len(live)
        stats.largest_batch = max(stats.largest_batch, len(live))
        outcomes: list[tuple[bool, Any]] = []
        started = time.perf_counter()
        try:
            with self._exclusive():
                self._transaction(conn, live, outcomes)
        except Exception as exc:
            # SQLite may already have rolled back (disk full, I/O error); never leave a
            # transaction open, or every later batch would fail on BEGIN.
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            stats.failed_batches += 1
            _resolve(live, [(False, unavailable(exc)) for _ in live])
            return
        stats.commits += 1
        if self.on_batch is not None:
            self.on_batch(len(live), time.perf_counter() - started)
        _resolve(live, outcomes)

    def _transaction(
        self, conn: sqlite3.Connection, live: list[_Op], outcomes: list[tuple[bool, Any]]
    ) -> None:
        """Run `live` in one transaction, each under a savepoint; fill `outcomes`."""
        conn.execute("BEGIN IMMEDIATE")
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
        conn.execute("COMMIT")
