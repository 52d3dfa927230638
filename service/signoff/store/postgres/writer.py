"""Group commit for PostgreSQL, across replicas: one asyncio writer task per process, and one
chain lock per database that every write transaction takes first.

Callers submit operations and await a future. The writer takes everything queued (up to
``max_batch``) and runs it in ONE transaction, sent in pipeline mode (psycopg's
``conn.pipeline()``: statements are queued and only a read the code needs waits):

1. ``pg_advisory_xact_lock(chain key)`` -- writers of every replica queue here, so the audit
   chain stays linear: one gap-free seq and one hash chain for the whole database;
2. read the chain head (a fresh statement, so it sees the previous holder's commit: the lock
   is released only after that commit became visible) and the decisions already stored
   under the batch's idempotency keys -- the first round trip;
3. the operations: decisions and appends (bulk operations) add rows that go out with one
   INSERT per table, and a bulk operation that fails (a reused request_id) drops its rows;
   any other operation runs under its own SAVEPOINT, queued like the rest, so that its own
   refusal (a `SignoffError`, a bad value) undoes it alone;
4. COMMIT (``synchronous_commit`` on, the default: the WAL is flushed) and the pipeline's
   sync -- the second round trip -- then the futures resolve.

Before it takes a batch it may linger, as the SQLite writer does (store/linger.py, the same
`WriteQueue`): while other writes are in flight it waits, up to ``store.commit_linger``, for
them to join; a lone write commits at once.

Three round trips per batch with the pool's check of the connection, whatever its size:
five per decision when each operation ran, and waited, statement by statement.

Errors. A statement the database refuses aborts the rest of the pipeline, and which
operation sent it is not known then: the attempt is rolled back (nothing of it commits) and
the batch runs again one statement at a time, each operation under a savepoint
(`_one_by_one`), where a refusal fails its own operation with `FailedPrecondition`. Any
other failure (the connection, the server, COMMIT) rolls the batch back and fails every
operation in it with `Unavailable`; nothing is acknowledged that was not committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool

from signoff.core.audit import AuditEntry
from signoff.errors import FailedPrecondition, SignoffError, Unavailable
from signoff.store.linger import DEFAULT_COMMIT_LINGER, CallLater, Linger, WriteQueue
from signoff.store.postgres import sql
from signoff.store.postgres.tx import Key, Tx
from signoff.store.sealing import Leaf, Sealer, seal
from signoff.store.sqlite.writer import WriterStats

# Keys of the advisory locks, per schema so that databases holding several signoff schemas
# (tests, tenants) do not serialise each other. hashtext() is stable across versions in use.
CHAIN_LOCK = "SELECT pg_advisory_xact_lock(hashtext('signoff.audit.' || current_schema()))"
MIGRATE_LOCK = "SELECT pg_advisory_xact_lock(hashtext('signoff.migrate.' || current_schema()))"

# Errors that belong to one operation's data, not to the database's health.
_OP_ERRORS = (SignoffError, ValueError, pg_errors.IntegrityError, pg_errors.DataError)


def unavailable(exc: BaseException) -> SignoffError:
    """Map a database failure to the error a caller sees (a fresh instance per caller)."""
    if isinstance(exc, Unavailable):
        return Unavailable(exc.message)
    if isinstance(exc, SignoffError):
        return exc
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
        detail = f"database is read-only ({detail})"
    elif isinstance(exc, pg_errors.InsufficientPrivilege):
        detail = f"permission denied ({detail})"
    elif isinstance(exc, pg_errors.DiskFull):
        detail = f"database or disk is full ({detail})"
    return Unavailable(f"audit store unavailable: {detail}")


Apply = Callable[[Tx], Awaitable[Any]]
Maintain = Callable[[sql.Conn], Awaitable[Any]]


@dataclasses.dataclass(slots=True)
class _Op:
    apply: Apply | None
    maintain: Maintain | None
    future: asyncio.Future[Any]
    key: Key | None = None  # the idempotency key of a decision the op may insert
    # A bulk op writes only through the rows Tx holds (insert_decision, insert_review,
    # append, notify), never a statement of its own: in a pipelined batch it needs no
    # savepoint, since dropping what it held undoes it (decisions and appends).
    bulk: bool = False
    leaf: Leaf | None = None  # a receipt to seal with the batch (store/sealing.py)


class _Retry(Exception):
    """The pipelined attempt of a batch failed on one operation; run it carefully."""


class GroupCommitWriter:
    """The writer task of one process; safe alongside the writers of other replicas."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        *,
        max_batch: int,
        linger: float = DEFAULT_COMMIT_LINGER,
        call_later: CallLater | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._pool = pool
        # `call_later` is the linger's clock (the loop's by default; tests move their own).
        # Maintenance (outside any transaction) joins no batch.
        self._linger = Linger(linger, max_batch, call_later=call_later)
        self._queue = WriteQueue[_Op](self._linger, lambda op: op.apply is not None)
        self._task: asyncio.Task[None] | None = None
        self._stats = WriterStats()
        self.on_batch: Callable[[int, float], None] | None = None  # (size, seconds): telemetry
        self.sealer: Sealer | None = None  # signs each batch's receipt leaves once
        # Called with the entries of each committed batch (the Merkle tree's builder).
        self.on_entries: Callable[[list[AuditEntry]], None] | None = None

    @property
    def stats(self) -> WriterStats:
        """Return a snapshot of the counters."""
        linger = self._linger
        return dataclasses.replace(
            self._stats, lingered=linger.waits, linger_timeouts=linger.timeouts
        )

    def start(self) -> None:
        """Start the writer task (in the running loop)."""
        self._queue.accepting = True
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="signoff-pg-writer")

    def submit(
        self, apply: Apply, *, key: Key | None = None, bulk: bool = False, leaf: Leaf | None = None
    ) -> asyncio.Future[Any]:
        """Queue `apply(tx)` for the next batch; the future resolves after its commit.

        `key`: the idempotency key of the decision `apply` may insert (read ahead for the
        batch); `bulk`: `apply` needs no savepoint of its own (see `_Op`); `leaf`: a receipt
        sealed with the batch before `apply` runs."""
        future = asyncio.get_running_loop().create_future()
        return self._put(_Op(apply, None, future, key, bulk, leaf))

    def maintain(self, fn: Maintain) -> asyncio.Future[Any]:
        """Queue `fn(connection)` to run between batches, outside any transaction."""
        return self._put(_Op(None, fn, asyncio.get_running_loop().create_future()))

    def _put(self, op: _Op) -> asyncio.Future[Any]:
        self._queue.put(op)
        return op.future

    async def stop(self) -> None:
        """Refuse new operations, finish the queued ones, end the task."""
        self._queue.close()  # what is queued commits now
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _loop(self) -> None:
        while (taken := await self._queue.take()) is not None:
            batch, maintenance = taken
            try:
                if maintenance is not None:
                    await self._run_maintenance(maintenance)
                else:
                    await self._run_batch(batch)
            finally:
                self._queue.settled(len(batch))

    async def _run_maintenance(self, op: _Op) -> None:
        if op.future.done() or op.maintain is None:
            return
        try:
            async with self._pool.connection() as conn:
                value = await op.maintain(conn)
        except Exception as exc:
            _settle(op.future, exc=unavailable(exc) if isinstance(exc, psycopg.Error) else exc)
        else:
            _settle(op.future, value)

    async def _run_batch(self, batch: list[_Op]) -> None:
        # A caller cancelled before its op started is skipped; once started, it commits.
        live = [op for op in batch if not op.future.done()]
        if not live:
            return
        stats = self._stats
        stats.batches += 1
        stats.ops += len(live)
        stats.largest_batch = max(stats.largest_batch, len(live))
        started = time.perf_counter()
        try:
            # One signature for the batch's receipts, before any operation stores one.
            seal(self.sealer, [op.leaf for op in live if op.leaf is not None])
            sealed: list[AuditEntry] = []
            async with self._pool.connection() as conn:
                try:
                    outcomes = await _pipelined(conn, live, sealed)
                except _Retry:
                    stats.retried_batches += 1
                    sealed.clear()
                    outcomes = await _one_by_one(conn, live, sealed)
        except Exception as exc:
            # Rolled back (or the connection is gone and the pool discards it).
            stats.failed_batches += 1
            for op in live:
                _settle(op.future, exc=unavailable(exc))
            return
        stats.commits += 1
        if self.on_entries is not None and sealed:
            self.on_entries(sealed)
        if self.on_batch is not None:
            self.on_batch(len(live), time.perf_counter() - started)
        for op, (ok, value) in zip(live, outcomes, strict=True):
            _settle(op.future, value if ok else None, exc=None if ok else value)


async def _pipelined(
    conn: sql.Conn, live: list[_Op], sealed: list[AuditEntry]
) -> list[tuple[bool, Any]]:
    """Run `live` in one transaction in pipeline mode: a few round trips for the whole batch.

    Round trips: the lock, the chain head and the stored decisions of the batch's keys come
    back together; then every operation's statements are queued and COMMIT with them, and
    the pipeline's sync waits once (operations that read a result, such as a review's
    conditional update, wait for that read). A statement the database refuses abandons the
    attempt (rolled back: nothing of it commits) with `_Retry`, and the batch runs again in
    `_one_by_one`; any other database failure propagates.
    """
    outcomes: list[tuple[bool, Any]] = []
    keys = list(dict.fromkeys(op.key for op in live if op.key is not None))
    try:
        # BEGIN, COMMIT and savepoints are plain statements here: psycopg's transaction()
        # syncs the pipeline as it enters and leaves a block, a round trip each.
        async with conn.pipeline():
            await conn.execute("BEGIN")
            await conn.execute(CHAIN_LOCK)
            head = await conn.execute(sql.HEAD)
            found = await sql.send_select_decisions(conn, keys) if keys else None
            stored = await sql.fetch_decisions(found) if found is not None else {}
            tx = Tx(conn, *await sql.fetch_head(head), stored=stored, sealed=sealed)
            for op in live:
                outcomes.append(await _pipelined_op(conn, tx, op))
            await tx.flush()
            await conn.execute("COMMIT")
        # Leaving the pipeline synced it: a refused statement raised there, COMMIT skipped.
    except _OP_ERRORS as exc:  # a statement refused: which op's is not known here
        await _end_failed(conn)
        raise _Retry from exc
    except BaseException:
        with contextlib.suppress(psycopg.Error):  # the first failure is the one to report
            await _end_failed(conn)
        raise
    return outcomes


async def _pipelined_op(conn: sql.Conn, tx: Tx, op: _Op) -> tuple[bool, Any]:
    """Queue one operation of a pipelined batch; return its outcome."""
    assert op.apply is not None
    if op.bulk:
        mark = tx.mark()
        try:
            return True, await op.apply(tx)
        except (SignoffError, ValueError) as exc:  # e.g. a request_id reused: nothing sent
            tx.undo(mark)
            return False, exc
    await tx.flush()  # what came before, outside this op's savepoint; it may read them
    mark = tx.mark()
    await conn.execute("SAVEPOINT op")
    try:
        value = await op.apply(tx)
        await tx.flush()
    except (SignoffError, ValueError) as exc:
        # Raised by the op's own code (a psycopg error propagates: the pipeline is aborted
        # and the error may be an earlier op's). Nothing waits for the rollback either.
        await conn.execute("ROLLBACK TO SAVEPOINT op")
        await conn.execute("RELEASE SAVEPOINT op")
        tx.undo(mark)
        return False, exc
    await conn.execute("RELEASE SAVEPOINT op")
    return True, value


async def _one_by_one(
    conn: sql.Conn, live: list[_Op], sealed: list[AuditEntry]
) -> list[tuple[bool, Any]]:
    """Run `live` in one transaction, a statement at a time, each op under a SAVEPOINT."""
    outcomes: list[tuple[bool, Any]] = []
    async with conn.transaction():
        await conn.execute(CHAIN_LOCK)
        tx = Tx(conn, *await sql.read_head(conn), sealed=sealed)
        for op in live:
            mark = tx.mark()
            try:
                async with conn.transaction():  # a SAVEPOINT
                    value = await op.apply(tx)  # type: ignore[misc]
            except _OP_ERRORS as exc:
                tx.undo(mark)  # the savepoint undid this op's entries
                if isinstance(exc, psycopg.Error):
                    exc = FailedPrecondition(f"rejected by the database: {_first(exc)}")
                outcomes.append((False, exc))
                continue
            outcomes.append((True, value))
    return outcomes


async def _end_failed(conn: sql.Conn) -> None:
    """Leave no failed transaction open on `conn` after an abandoned pipeline."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE and not conn.closed:
        await conn.rollback()


def _settle(
    fut: asyncio.Future[Any], value: Any = None, *, exc: BaseException | None = None
) -> None:
    if fut.done():  # the caller went away after the op started; the commit stands
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
