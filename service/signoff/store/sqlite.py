"""SQLite backend: one file in WAL mode, one writer thread doing group commit.

Durability -- what an acknowledged write means: a write's awaitable returns only after the
transaction holding it committed with ``journal_mode=WAL`` and ``synchronous=FULL``, i.e. after
SQLite fsync'ed the WAL past the commit record. The write then survives a killed process, an
OS crash and a power cut, as long as the disk honours fsync and the file is on a local
filesystem (WAL needs shared memory; NFS/SMB are not supported). Checkpoints copy the WAL into
the main file with fsync as well. A write whose awaitable raised was rolled back; a write whose
caller vanished (cancelled, process killed) may or may not have committed, which is why
decisions are idempotent by request_id: the retry returns the stored decision.

Writes go through `GroupCommitWriter` (sqlite_writer.py): one thread, many operations per
transaction, one SAVEPOINT per operation. The chain head (seq, hash) is read inside each write
transaction, under SQLite's write lock, so it cannot drift from what is committed: not after a
failed commit, nor if another process appended to the same file.

Reads use their own connections (WAL readers never block the writer) on worker threads.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import queue
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from signoff.audit import GENESIS, AuditEntry, AuditRecord, format_time, parse_time
from signoff.audit import seal as seal_entry
from signoff.errors import AlreadyExists, FailedPrecondition, Unavailable
from signoff.ids import Clock
from signoff.store import sqlite_reviews as reviews_sql
from signoff.store.base import (
    DecisionRecord,
    ReviewQuery,
    ReviewRecord,
    check_opened_review,
    check_review_update,
)
from signoff.store.migrations import migrate_sqlite
from signoff.store.sqlite_writer import GroupCommitWriter, WriterStats, unavailable
from signoff_client.canonical import canonical_json

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


class _Tx:
    """What an operation sees inside the batch transaction: the connection and chain head."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.seq, self.hash = _read_head(conn)

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


class SqliteStore:
    """The embedded `Store`: a local SQLite file, durable group-committed writes."""

    def __init__(
        self, path: Path, clock: Clock, *, max_batch: int = 512, busy_timeout_ms: int = 5000
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._busy_timeout_ms = busy_timeout_ms
        self._writer = GroupCommitWriter(self._connect_writer, _Tx, max_batch=max_batch)
        self._state = "new"  # new -> open -> closed
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()

    @property
    def stats(self) -> WriterStats:
        """Return a snapshot of the group-commit counters (transactions vs operations)."""
        return self._writer.stats

    async def open(self) -> None:
        """Create the file (and parent directories) if needed and migrate the schema."""
        if self._state != "new":
            raise RuntimeError("SqliteStore.open() may be called once")
        self._state = "closed"  # until the writer is up
        await asyncio.wrap_future(self._writer.start())
        self._state = "open"

    async def close(self) -> None:
        """Commit every write queued so far, then close all connections."""
        never_opened = self._state == "new"
        self._state = "closed"
        if never_opened:
            return
        await asyncio.wrap_future(self._writer.stop())
        while not self._readers.empty():
            self._readers.get_nowait().close()

    async def record_decision(
        self,
        rec: DecisionRecord,
        audit: AuditRecord,
        review: ReviewRecord | None = None,
        review_audit: AuditRecord | None = None,
    ) -> tuple[DecisionRecord, bool]:
        """Store `rec`, open `review` and append the audit atomically; return (rec, replayed)."""
        if audit.decision_id and audit.decision_id != rec.decision_id:
            raise ValueError("the audit record belongs to another decision")
        check_opened_review(rec, review, review_audit)

        def apply(tx: _Tx) -> tuple[DecisionRecord, bool]:
            if rec.request_id:
                row = tx.conn.execute(_SELECT_DECISION, (rec.principal_id, rec.request_id))
                found = row.fetchone()
                if found is not None:
                    existing = _decision_from_row(found)
                    if existing.request_digest != rec.request_digest:
                        raise AlreadyExists(
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
            if review is not None and review_audit is not None:
                reviews_sql.insert(tx.conn, review)
                tx.append(review_audit)
            return rec, False

        return await self._submit(apply)

    async def append(self, records: Sequence[AuditRecord]) -> list[AuditEntry]:
        """Append `records` to the audit log atomically and return them as entries."""
        batch = list(records)
        if not batch:
            return []
        return await self._submit(lambda tx: [tx.append(r) for r in batch])

    async def maintenance(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` in the writer thread between batches (pragmas, checkpoints)."""
        return await asyncio.wrap_future(self._writer.submit(fn, in_transaction=False))

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

    async def get_review(self, review_id: str) -> ReviewRecord | None:
        """Return the review with this id, if any."""
        return await self._read(lambda conn: reviews_sql.get(conn, review_id))

    async def review_for_decision(self, decision_id: str) -> ReviewRecord | None:
        """Return the review opened by this decision, if any."""
        return await self._read(lambda conn: reviews_sql.for_decision(conn, decision_id))

    async def update_review(
        self, new: ReviewRecord, expected_version: int, audit: Sequence[AuditRecord]
    ) -> ReviewRecord:
        """Replace the review at `expected_version` by `new` and append `audit`, atomically."""
        check_review_update(new, expected_version)
        records = list(audit)

        def apply(tx: _Tx) -> ReviewRecord:
            # The version guard runs in the writer's transaction: of two updates from the
            # same version, in one batch or in two, the second matches no row.
            stored = reviews_sql.update(tx.conn, new, expected_version)
            for record in records:
                tx.append(record)
            return stored

        return await self._submit(apply)

    async def list_reviews(self, q: ReviewQuery) -> list[ReviewRecord]:
        """Return one page of reviews matching `q`, ordered by (created_at, review_id)."""
        return await self._read(lambda conn: reviews_sql.query(conn, q))

    async def due_reviews(self, now: dt.datetime, limit: int = 100) -> list[ReviewRecord]:
        """Return PENDING reviews whose expires_at <= `now`, oldest deadline first."""
        return await self._read(lambda conn: reviews_sql.due(conn, now, limit))

    # -- the caller side ------------------------------------------------------------------

    async def _submit(self, apply: Callable[[_Tx], T]) -> T:
        # If the caller is cancelled before the writer starts the op, the op is skipped
        # (wrap_future cancels the concurrent future); once started it commits regardless.
        return await asyncio.wrap_future(self._writer.submit(apply))

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
            raise unavailable(exc) from exc
        finally:
            if conn is not None:
                if reusable and self._state == "open":
                    self._readers.put(conn)
                else:
                    conn.close()

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
            raise unavailable(exc) from exc
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
            raise unavailable(exc) from exc
        except BaseException:
            conn.close()
            raise
        return conn


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
