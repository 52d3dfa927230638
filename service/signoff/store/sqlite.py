"""SQLite backend: one file in WAL mode, one writer thread doing group commit.

Durability -- what an acknowledged write means: a write's awaitable returns only after the
transaction holding it committed with ``journal_mode=WAL`` and ``synchronous=FULL``, i.e. after
SQLite fsync'ed the WAL past the commit record. The write then survives a killed process, an
OS crash and a power cut, as long as the disk honours fsync and the file is on a local
filesystem (WAL needs shared memory; NFS/SMB are not supported). Checkpoints copy the WAL into
the main file with fsync as well. A write whose awaitable raised was rolled back; a write whose
caller vanished (cancelled, process killed) may or may not have committed, which is why
decisions are idempotent by request_id: the retry returns the stored decision.

Group commit: callers enqueue operations; the writer thread takes everything queued (up to
``max_batch``), runs it in ONE ``BEGIN IMMEDIATE ... COMMIT`` (one fsync for the batch), then
resolves every caller's future. Each operation runs under its own SAVEPOINT, so a semantic
failure (an idempotency conflict) fails that operation alone; an SQL failure (read-only file,
disk full, I/O error) fails the whole batch with `Unavailable`. The chain head (seq, hash) is
read inside each write transaction, under SQLite's write lock, so it can never drift from
what is committed: not after a failed commit, nor when another process appended.

Reads use their own connections (WAL readers never block the writer) on worker threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from signoff.audit import GENESIS, AuditEntry, AuditRecord, canonical_json, format_time, parse_time
from signoff.audit import seal as seal_entry
from signoff.errors import FailedPrecondition, SignoffError, Unavailable
from signoff.ids import Clock
from signoff.store.base import DecisionRecord
from signoff.store.migrations import migrate_sqlite

T = TypeVar("T")

# Column names equal AuditEntry field names (`payload` holds canonical JSON text).
_AUDIT_FIELDS = (
    *("seq", "time", "type", "actor", "request_id", "decision_id", "review_id", "action_name"),
    *("outcome", "principal", "reviewer", "reviewer_group", "review_state", "rules"),
    *("policy_version", "payload", "prev_hash", "hash"),
)
_AUDIT_COLUMNS = ", ".join(_AUDIT_FIELDS)
_INSERT_AUDIT = f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES ({', '.join('?' * 18)})"
_DECISION_COLUMNS = (
    "decision_id, principal_id, request_id, request_digest, action_name, outcome, "
    "created_at, decision"
)
# `request_id <> ''` lets SQLite use the partial unique index decisions_idempotency.
_SELECT_DECISION = (
    f"SELECT {_DECISION_COLUMNS} FROM decisions "
    "WHERE principal_id = ? AND request_id = ? AND request_id <> ''"
)

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


@dataclass
class WriterStats:
    """Counters of the group-commit writer (observability; a snapshot is returned)."""

    ops: int = 0  # operations executed (committed or failed)
    batches: int = 0  # write transactions attempted
    commits: int = 0  # write transactions committed
    failed_batches: int = 0  # write transactions rolled back by an SQL failure
    largest_batch: int = 0


class _Tx:
    """What an operation sees inside the batch transaction: the connection and chain head."""

    def __init__(self, conn: sqlite3.Connection, seq: int, head_hash: str) -> None:
        self.conn, self.seq, self.hash = conn, seq, head_hash

    def append(self, record: AuditRecord) -> AuditEntry:
        """Chain `record` after the head, insert it, and advance the head."""
        entry = seal_entry(record, seq=self.seq + 1, prev_hash=self.hash)
        self.conn.execute(_INSERT_AUDIT, _audit_row(entry))
        if entry.rules:
            self.conn.executemany(
                "INSERT OR IGNORE INTO audit_rules (rule, seq) VALUES (?, ?)",
                [(rule, entry.seq) for rule in entry.rules],
            )
        self.seq, self.hash = entry.seq, entry.hash
        return entry


class _Op:
    """One queued write; `apply` runs in the writer thread (inside the batch transaction)."""

    def __init__(self, apply: Callable[[Any], Any], *, in_transaction: bool = True) -> None:
        self.apply = apply
        self.in_transaction = in_transaction
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()


_STOP = object()


class SqliteStore:
    """The embedded `Store`: a local SQLite file, durable group-committed writes."""

    def __init__(
        self, path: Path, clock: Clock, *, max_batch: int = 512, busy_timeout_ms: int = 5000
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.path = Path(path)
        self._clock = clock
        self._max_batch = max_batch
        self._busy_timeout_ms = busy_timeout_ms
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._state = "new"  # new -> open -> closed
        self._thread: threading.Thread | None = None
        self._stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._stats = WriterStats()

    @property
    def stats(self) -> WriterStats:
        """Return a snapshot of the writer's counters."""
        return dataclasses.replace(self._stats)

    async def open(self) -> None:
        """Create the file (and parent directories) if needed and migrate the schema."""
        if self._state != "new":
            raise RuntimeError("SqliteStore.open() may be called once")
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._writer_main, args=(ready,), name="signoff-sqlite-writer", daemon=True
        )
        self._thread.start()
        try:
            await asyncio.wrap_future(ready)
        except BaseException:
            self._state = "closed"
            raise
        self._state = "open"

    async def close(self) -> None:
        """Commit every write queued so far, then close all connections."""
        with self._lock:
            if self._state != "open":
                self._state = "closed"
                return
            self._state = "closed"
            self._queue.put(_STOP)
        await asyncio.wrap_future(self._stopped)
        while not self._readers.empty():
            self._readers.get_nowait().close()

    async def record_decision(
        self, rec: DecisionRecord, audit: AuditRecord
    ) -> tuple[DecisionRecord, bool]:
        """Store `rec` and append `audit` atomically; return (stored record, replayed)."""
        if audit.decision_id and audit.decision_id != rec.decision_id:
            raise ValueError("the audit record belongs to another decision")

        def apply(tx: _Tx) -> tuple[DecisionRecord, bool]:
            if rec.request_id:
                row = tx.conn.execute(_SELECT_DECISION, (rec.principal_id, rec.request_id))
                found = row.fetchone()
                if found is not None:
                    existing = _decision_from_row(found)
                    if existing.request_digest != rec.request_digest:
                        raise FailedPrecondition(
                            f"request_id {rec.request_id!r} was used for a different request "
                            f"by principal {rec.principal_id!r}; use a new request_id"
                        )
                    return existing, True
            tx.conn.execute(
                f"INSERT INTO decisions ({_DECISION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    *(rec.decision_id, rec.principal_id, rec.request_id, rec.request_digest),
                    *(rec.action_name, rec.outcome, format_time(rec.created_at), rec.decision),
                ),
            )
            tx.append(audit)
            return rec, False

        return await self._submit(_Op(apply))

    async def append(self, records: Sequence[AuditRecord]) -> list[AuditEntry]:
        """Append `records` to the audit log atomically and return them as entries."""
        batch = list(records)
        if not batch:
            return []
        return await self._submit(_Op(lambda tx: [tx.append(r) for r in batch]))

    async def maintenance(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` in the writer thread between batches (pragmas, checkpoints)."""
        return await self._submit(_Op(fn, in_transaction=False))

    async def find_decision(self, principal_id: str, request_id: str) -> DecisionRecord | None:
        """Return the decision stored for this idempotency key, if any."""
        if not request_id:
            return None

        def read(conn: sqlite3.Connection) -> DecisionRecord | None:
            row = conn.execute(_SELECT_DECISION, (principal_id, request_id)).fetchone()
            return None if row is None else _decision_from_row(row)

        return await self._read(read)

    async def read_audit(self, from_seq: int = 1, limit: int = 1000) -> list[AuditEntry]:
        """Return up to `limit` entries with seq >= `from_seq`, in seq order."""
        if limit <= 0:
            return []

        def read(conn: sqlite3.Connection) -> list[AuditEntry]:
            rows = conn.execute(
                f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE seq >= ? ORDER BY seq LIMIT ?",
                (max(from_seq, 1), limit),
            )
            return [_entry_from_row(row) for row in rows]

        return await self._read(read)

    async def audit_head(self) -> tuple[int, str]:
        """Return the last committed (seq, hash), or (0, GENESIS) when the log is empty."""
        return await self._read(_read_head)

    # -- the caller side ------------------------------------------------------------------

    async def _submit(self, op: _Op) -> Any:
        with self._lock:
            if self._state != "open":
                raise Unavailable("audit store unavailable: the store is not open")
            self._queue.put(op)
        # If the caller is cancelled before the writer starts the op, the op is skipped
        # (wrap_future cancels the concurrent future); once started it commits regardless.
        return await asyncio.wrap_future(op.future)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._state != "open":
            raise Unavailable("audit store unavailable: the store is not open")
        return await asyncio.to_thread(self._with_reader, fn)

    def _with_reader(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            conn: sqlite3.Connection | None = self._readers.get_nowait()
        except queue.Empty:
            conn = None
        reusable = False
        try:
            if conn is None:
                conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=5.0
                )
                # Readers can never write: the append-only guarantee does not rest on them.
                conn.execute("PRAGMA query_only = ON")
            result = fn(conn)
            reusable = True
            return result
        except sqlite3.Error as exc:
            raise _unavailable(exc) from exc
        finally:
            if conn is not None:
                if reusable and self._state == "open":
                    self._readers.put(conn)
                else:
                    conn.close()

    # -- the writer thread ----------------------------------------------------------------

    def _writer_main(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            conn = self._connect_writer()
        except BaseException as exc:
            ready.set_exception(exc)
            self._stopped.set_result(None)
            return
        ready.set_result(None)
        try:
            self._writer_loop(conn)
        finally:
            conn.close()
            self._stopped.set_result(None)

    def _connect_writer(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"audit store unavailable: cannot create {self.path.parent}: {exc}"
            raise Unavailable(msg) from exc
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=self._busy_timeout_ms / 1000
            )
        except sqlite3.Error as exc:
            raise _unavailable(exc) from exc
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise Unavailable(f"audit store unavailable: cannot enable WAL (mode {mode})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate_sqlite(conn, self._clock)
        except sqlite3.Error as exc:
            conn.close()
            raise _unavailable(exc) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _writer_loop(self, conn: sqlite3.Connection) -> None:
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
        if not op.future.set_running_or_notify_cancel():
            return
        try:
            op.future.set_result(op.apply(conn))
        except sqlite3.Error as exc:
            op.future.set_exception(_unavailable(exc))
        except Exception as exc:
            op.future.set_exception(exc)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        live = [op for op in batch if op.future.set_running_or_notify_cancel()]
        if not live:
            return
        stats = self._stats
        stats.batches += 1
        stats.ops += len(live)
        stats.largest_batch = max(stats.largest_batch, len(live))
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            tx = _Tx(conn, *_read_head(conn))
            outcomes = [_apply_isolated(tx, op) for op in live]
            conn.execute("COMMIT")
        except Exception as exc:
            # SQLite may already have rolled back (disk full, I/O error); never leave a
            # transaction open, or the next batch would fail on BEGIN.
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            stats.failed_batches += 1
            for op in live:
                op.future.set_exception(_unavailable(exc))
            return
        stats.commits += 1
        for op, (ok, value) in zip(live, outcomes, strict=True):
            if ok:
                op.future.set_result(value)
            else:
                op.future.set_exception(value)


def _apply_isolated(tx: _Tx, op: _Op) -> tuple[bool, Any]:
    """Run `op` under a savepoint: its own failure undoes only its writes."""
    tx.conn.execute("SAVEPOINT op")
    seq, head_hash = tx.seq, tx.hash
    try:
        value = op.apply(tx)
    except (SignoffError, sqlite3.IntegrityError, ValueError) as exc:
        tx.conn.execute("ROLLBACK TO op")
        tx.conn.execute("RELEASE op")
        tx.seq, tx.hash = seq, head_hash
        if isinstance(exc, sqlite3.IntegrityError):
            exc = FailedPrecondition(f"rejected by the database: {exc}")
        return False, exc
    tx.conn.execute("RELEASE op")
    return True, value


def _unavailable(exc: BaseException) -> SignoffError:
    """Map a failure to the error callers see (a fresh instance per caller)."""
    if isinstance(exc, SignoffError):
        return type(exc)(exc.message) if isinstance(exc, Unavailable) else exc
    code = getattr(exc, "sqlite_errorcode", None)
    reason = _REASONS.get(code & 0xFF) if isinstance(code, int) else None
    detail = f"{reason} ({exc})" if reason and str(exc) != reason else (reason or str(exc))
    return Unavailable(f"audit store unavailable: {detail}")


def _read_head(conn: sqlite3.Connection) -> tuple[int, str]:
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))


def _audit_row(e: AuditEntry) -> tuple[Any, ...]:
    return (
        *(e.seq, format_time(e.time), e.type, e.actor, e.request_id, e.decision_id),
        *(e.review_id, e.action_name, e.outcome, e.principal, e.reviewer, e.reviewer_group),
        *(e.review_state, canonical_json(list(e.rules)), e.policy_version, e.payload_json),
        *(e.prev_hash, e.hash),
    )


def _entry_from_row(row: Sequence[Any]) -> AuditEntry:
    fields = dict(zip(_AUDIT_FIELDS, row, strict=True))
    try:
        fields["time"] = parse_time(fields["time"])
        fields["rules"] = tuple(json.loads(fields["rules"]))
        fields["payload"] = json.loads(fields["payload"])
        return AuditEntry(**fields)
    except (ValueError, TypeError) as exc:
        # Only a write that bypassed signoff can store an undecodable row.
        raise FailedPrecondition(
            f"audit entry seq {fields['seq']} cannot be decoded ({exc}): the database was "
            "modified outside signoff",
            current_state="corrupt",
        ) from exc


def _decision_from_row(row: Sequence[Any]) -> DecisionRecord:
    return DecisionRecord(
        decision_id=row[0],
        principal_id=row[1],
        request_id=row[2],
        request_digest=row[3],
        action_name=row[4],
        outcome=row[5],
        created_at=parse_time(row[6]),
        decision=bytes(row[7]),
    )
