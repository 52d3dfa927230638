"""SQLite backend: one file in WAL mode, one writer per process doing group commit.

Durability -- what an acknowledged write means: a write's awaitable returns only after the
transaction holding it committed with ``journal_mode=WAL`` and ``synchronous=FULL``, i.e. after
SQLite fsync'ed the WAL past the commit record. The write then survives a killed process, an
OS crash and a power cut, as long as the disk honours fsync and the file is on a local
filesystem (WAL needs shared memory; NFS/SMB are not supported). Checkpoints copy the WAL into
the main file with fsync as well. A write whose awaitable raised was rolled back; a write whose
caller vanished (cancelled, process killed) may or may not have committed, which is why
decisions are idempotent by request_id: the retry returns the stored decision.

Writes go through `GroupCommitWriter` (writer.py): many operations per transaction, the
commit's fsync on the writer's own thread, a bounded linger under load (linger.py). The chain
head (seq, hash) is read inside each write transaction, under SQLite's write lock, so it
cannot drift from what is committed: not after a failed commit, nor if another process
appended to the same file. Every entry is checked to extend that head before its INSERT
(audit.py's `insert`; no trigger does it since migration 0006). The auditors' indexes are
not written by these transactions (migration 0007): `AuditIndexer` (indexer.py) builds the
side index in bulk between batches, and queries scan what it has not reached yet.

Reads use their own connections (WAL readers never block the writer) on worker threads.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import queue
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from signoff.core.audit import AuditEntry, AuditRecord, format_time
from signoff.core.audit import seal as seal_entry
from signoff.core.witness import Cosignature
from signoff.errors import Unavailable
from signoff.ids import Clock
from signoff.store import grants_sql as gsql
from signoff.store import sealing
from signoff.store.base import (
    AuditQuery,
    Checkpoint,
    DecisionRecord,
    GroupBacklog,
    ReviewQuery,
    ReviewRecord,
    check_decision_audit,
    check_opened_review,
    check_review_update,
)
from signoff.store.grants_sql import GrantRecord
from signoff.store.linger import DEFAULT_COMMIT_BATCH, DEFAULT_COMMIT_LINGER, CallLater
from signoff.store.migrations import migrate_sqlite
from signoff.store.rows import AUDIT_COLUMNS, SQLITE
from signoff.store.sqlite import audit as audit_sql
from signoff.store.sqlite import audit_query
from signoff.store.sqlite import cosign as cosign_sql
from signoff.store.sqlite import decisions as decisions_sql
from signoff.store.sqlite import reviews as reviews_sql
from signoff.store.sqlite import tree as tree_sql
from signoff.store.sqlite.chain import SqliteChain
from signoff.store.sqlite.grants import SqliteGrants
from signoff.store.sqlite.indexer import INDEX_EVERY, INDEX_IDLE, AuditIndexer
from signoff.store.sqlite.notify import SqliteNotify
from signoff.store.sqlite.writer import GroupCommitWriter, WriterStats, unavailable
from signoff.store.tree import TREE_CHUNK, TREE_EVERY, TREE_IDLE, Pending, TreeBuilder

T = TypeVar("T")
log = logging.getLogger("signoff.store")


class _Tx:
    """What an operation sees inside the batch transaction: the connection and chain head."""

    def __init__(self, conn: sqlite3.Connection, on_insert: Callable[[AuditEntry], None]) -> None:
        self.conn, self._on_insert = conn, on_insert
        self.seq, self.hash = audit_sql.read_head(conn)
        self.high_water = audit_sql.high_water(conn)

    def append(self, record: AuditRecord) -> AuditEntry:
        """Chain `record` after the head, insert it, and advance the head."""
        return self.insert(seal_entry(record, seq=self.seq + 1, prev_hash=self.hash))

    def insert(self, entry: AuditEntry) -> AuditEntry:
        """Insert `entry` and advance the head; FailedPrecondition unless it extends it."""
        self.high_water = audit_sql.insert(self.conn, entry, (self.seq, self.hash), self.high_water)
        self.seq, self.hash = entry.seq, entry.hash
        self._on_insert(entry)
        return entry


class SqliteStore(SqliteGrants, SqliteChain, SqliteNotify):
    """The embedded `Store`: a local SQLite file, durable group-committed writes."""

    def __init__(
        self,
        path: Path,
        clock: Clock,
        *,
        max_batch: int = DEFAULT_COMMIT_BATCH,
        commit_linger: float = DEFAULT_COMMIT_LINGER,
        busy_timeout_ms: int = 5000,
        call_later: CallLater | None = None,
        index_every: int = INDEX_EVERY,
        index_idle: float | None = INDEX_IDLE,
        tree_every: int = TREE_EVERY,
        tree_idle: float | None = TREE_IDLE,
        tree_chunk: int = TREE_CHUNK,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._busy_timeout_ms = busy_timeout_ms
        # The auditors' side index, maintained off the write path (sqlite/indexer.py).
        # A step per `index_every` appended entries, or `index_idle` s after the last append
        # (None: only then, or when `index_audit` is called).
        self._indexer = AuditIndexer(self.maintenance, every=index_every, idle=index_idle)
        # The Merkle tree, built the same way (store/tree.py): rows hashed off the writer's
        # thread, written by it between batches.
        self._tree = TreeBuilder(
            self._tree_pending, self._tree_write, every=tree_every, idle=tree_idle, chunk=tree_chunk
        )
        self._writer = GroupCommitWriter(
            self._connect_writer,
            lambda conn: _Tx(conn, self._appended),
            max_batch=max_batch,
            linger=commit_linger,
            call_later=call_later,  # the linger's timer: the loop's unless a test moves time
            lock_file=self.path.with_name(self.path.name + "-writer.lock"),
        )
        self._state = "new"  # new -> open -> closed
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._subscribers: list[Callable[[str], None]] = []

    @property
    def stats(self) -> WriterStats:
        """Return a snapshot of the group-commit counters (transactions vs operations)."""
        return self._writer.stats

    def observe_batches(self, callback: Callable[[int, float], None]) -> None:
        """Call `callback(size, seconds)` after each group commit (maybe from another thread)."""
        self._writer.on_batch = callback

    async def open(self) -> None:
        """Create the file (and parent directories) if needed and migrate the schema."""
        if self._state != "new":
            raise RuntimeError("SqliteStore.open() may be called once")
        self._state = "closed"  # until the writer is up
        await self._writer.start()
        try:
            await self._indexer.start()
        except BaseException:
            await self._writer.stop()
            raise
        self._state = "open"
        self._tree.start()

    async def close(self) -> None:
        """Commit every write queued so far, then close all connections."""
        never_opened = self._state == "new"
        self._state = "closed"
        if never_opened:
            return
        await self._tree.stop()
        await self._indexer.stop()
        await self._writer.stop()
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
        check_decision_audit(rec, audit)
        check_opened_review(rec, review, review_audit)

        leaf = sealing.leaf_of(rec)

        def apply(tx: _Tx) -> tuple[DecisionRecord, bool]:
            existing = decisions_sql.replay_of(tx.conn, rec)
            if existing is not None:
                return existing, True
            stored = sealing.with_receipt(rec, leaf)
            decisions_sql.insert(tx.conn, stored)
            tx.append(audit)
            if review is not None and review_audit is not None:
                reviews_sql.insert(tx.conn, review)
                tx.append(review_audit)
            return stored, False

        stored, replayed = await self._submit(apply, leaf)
        if review is not None and not replayed:
            self._changed(review.review_id)
        return stored, replayed

    async def append(self, records: Sequence[AuditRecord]) -> list[AuditEntry]:
        """Append `records` to the audit log atomically and return them as entries."""
        batch = list(records)
        if not batch:
            return []
        return await self._submit(lambda tx: [tx.append(r) for r in batch])

    async def index_audit(self) -> int:
        """Bring the auditors' side index up to the head now; return its watermark."""
        # Queries are exact at any watermark; this is for a bulk load, a bench, a test.
        return await self._indexer.catch_up()

    def _appended(self, entry: AuditEntry) -> None:
        self._indexer.appended()
        self._tree.appended(entry)

    async def build_tree(self) -> int:
        """Build the audit log's Merkle tree up to the head now; return its size."""
        return await self._tree.catch_up()

    async def tree_size(self) -> int:
        """The number of entries the stored Merkle tree holds."""
        return await self._read(tree_sql.tree_size)

    async def tree_rows(self, keys: Sequence[int]) -> dict[int, bytes]:
        """The stored tree rows with these keys (core/log_tree.py says what they hold)."""
        return await self._read(lambda conn: tree_sql.tree_rows(conn, keys))

    async def _tree_pending(self, limit: int, recent: Mapping[int, AuditEntry]) -> Pending:
        return await self._read(lambda conn: tree_sql.pending(conn, limit, recent))

    async def _tree_write(self, old: int, new: int, rows: list[tuple[int, bytes]]) -> bool:
        return await self.maintenance(lambda conn: tree_sql.write(conn, old, new, rows))

    async def maintenance(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` in the writer thread between batches (pragmas, checkpoints)."""
        return await self._writer.submit_async(fn, in_transaction=False)

    async def find_decision(self, principal_id: str, request_id: str) -> DecisionRecord | None:
        """Return the decision stored for this idempotency key, if any."""
        if not request_id:
            return None

        return await self._read(lambda conn: decisions_sql.find(conn, principal_id, request_id))

    async def read_audit(self, from_seq: int = 1, limit: int = 1000) -> list[AuditEntry]:
        """Return up to `limit` entries with seq >= `from_seq`, in seq order."""
        if limit <= 0:
            return []

        def read(conn: sqlite3.Connection) -> list[AuditEntry]:
            rows = conn.execute(
                f"SELECT {AUDIT_COLUMNS} FROM audit WHERE seq >= ? ORDER BY seq LIMIT ?",
                (max(from_seq, 1), limit),
            )
            return [SQLITE.entry(row) for row in rows]

        return await self._read(read)

    async def audit_head(self) -> tuple[int, str]:
        """Return the last committed (seq, hash), or (0, GENESIS) when the log is empty."""
        return await self._read(audit_sql.read_head)

    async def query_audit(
        self,
        q: AuditQuery,
        *,
        descending: bool = False,
        after_seq: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Return one page of entries matching `q` in seq order, strictly past `after_seq`."""
        return await self._read(
            lambda conn: audit_query.query(
                conn, q, descending=descending, after_seq=after_seq, limit=limit
            )
        )

    async def add_checkpoint(self, cp: Checkpoint) -> None:
        """Store `cp` durably; ValueError unless it follows the last one and signs a stored head."""
        format_time(cp.time)  # a naive time fails here, at the caller, not in the batch
        await self._submit(lambda tx: audit_sql.insert_checkpoint(tx.conn, cp))

    async def checkpoints(self, from_seq: int = 0, to_seq: int = 0) -> list[Checkpoint]:
        """Return the checkpoints with from_seq <= seq <= to_seq (0 = no bound), ascending."""
        return await self._read(lambda conn: audit_sql.checkpoints(conn, from_seq, to_seq))

    async def last_checkpoint(self) -> Checkpoint | None:
        """Return the latest checkpoint, if any."""
        return await self._read(audit_sql.last_checkpoint)

    async def add_cosignature(self, seq: int, cs: Cosignature) -> int:
        """Store a witness's co-signature of the checkpoint at `seq` (see base.Store)."""
        format_time(cs.time)  # a naive time fails here, at the caller, not in the batch
        return await self._submit(lambda tx: cosign_sql.insert(tx.conn, seq, cs))

    async def cosignatures(
        self, from_seq: int = 0, to_seq: int = 0
    ) -> dict[int, list[Cosignature]]:
        """The co-signatures of the checkpoints in [from_seq, to_seq], by checkpoint seq."""
        return await self._read(lambda conn: cosign_sql.select(conn, from_seq, to_seq))

    async def get_review(self, review_id: str) -> ReviewRecord | None:
        """Return the review with this id, if any."""
        return await self._read(lambda conn: reviews_sql.get(conn, review_id))

    async def review_for_decision(self, decision_id: str) -> ReviewRecord | None:
        """Return the review opened by this decision, if any."""
        return await self._read(lambda conn: reviews_sql.for_decision(conn, decision_id))

    async def update_review(
        self,
        new: ReviewRecord,
        expected_version: int,
        audit: Sequence[AuditRecord],
        grant: GrantRecord | None = None,
    ) -> ReviewRecord:
        """Replace the review at `expected_version` by `new`, store `grant` and append `audit`."""
        check_review_update(new, expected_version)
        records = list(audit)

        def apply(tx: _Tx) -> ReviewRecord:
            # The version guard runs in the writer's transaction: of two updates from the
            # same version, in one batch or in two, the second matches no row.
            stored = reviews_sql.update(tx.conn, new, expected_version)
            if grant is not None:  # after the guard: a failed act grants nothing
                tx.conn.execute(gsql.for_sqlite(gsql.INSERT), grant.row(format_time))
            for record in records:
                tx.append(record)
            return stored

        stored = await self._submit(apply)
        self._changed(new.review_id)
        return stored

    def subscribe_reviews(self, callback: Callable[[str], None]) -> None:
        """Call `callback(review_id)` on the event loop after each committed review change."""
        # One process per file, so the feed is the committing call itself. Kept (rather than
        # a no-op) so that both backends keep one contract, checked by one test.
        self._subscribers.append(callback)

    async def try_lead(self, name: str) -> bool:
        """Always true: a SQLite file is served by one process, which leads every job."""
        return True

    def _changed(self, review_id: str) -> None:
        for callback in list(self._subscribers):
            try:
                callback(review_id)
            except Exception:  # one broken subscriber must not fail a committed write
                log.exception("review change subscriber failed")

    async def list_reviews(self, q: ReviewQuery) -> list[ReviewRecord]:
        """Return one page of reviews matching `q`, ordered by (created_at, review_id)."""
        return await self._read(lambda conn: reviews_sql.query(conn, q))

    async def due_reviews(self, now: dt.datetime, limit: int = 100) -> list[ReviewRecord]:
        """Return PENDING reviews whose expires_at <= `now`, oldest deadline first."""
        return await self._read(lambda conn: reviews_sql.due(conn, now, limit))

    async def pending_backlog(self, groups: Sequence[str] = ()) -> list[GroupBacklog]:
        """Return the backlog of each group with PENDING reviews (of `groups`; empty = all)."""
        return await self._read(lambda conn: reviews_sql.backlog(conn, groups))

    async def decided_reviews(
        self, action_name: str, *, exclude_review_id: str = "", limit: int = 100
    ) -> list[ReviewRecord]:
        """Return reviews of `action_name` in DECIDED_STATES, latest resolution first."""
        return await self._read(
            lambda conn: reviews_sql.decided(conn, action_name, exclude_review_id, limit)
        )

    async def opened_reviews(
        self,
        since: dt.datetime,
        until: dt.datetime,
        *,
        after: tuple[dt.datetime, str] | None = None,
        limit: int = 1000,
    ) -> list[ReviewRecord]:
        """Return one page of reviews opened in [since, until), by (created_at, review_id)."""
        return await self._read(lambda conn: reviews_sql.opened(conn, since, until, after, limit))

    # -- the caller side ------------------------------------------------------------------

    def use_sealer(self, sealer: sealing.Sealer) -> None:
        """Seal the receipt leaves of each write batch with `sealer` (store/sealing.py)."""
        self._writer.sealer = sealer

    async def _submit(self, apply: Callable[[_Tx], T], leaf: sealing.Leaf | None = None) -> T:
        # If the caller is cancelled before the writer starts the op, the op is skipped
        # (the cancel reaches the awaited future); once started it commits regardless.
        return await self._writer.submit_async(apply, leaf=leaf)

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
                conn.execute("PRAGMA temp_store = MEMORY")  # sorts of auditor queries
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
            # The loop runs the writer's operations and its thread commits (never at once).
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                timeout=self._busy_timeout_ms / 1000,
                check_same_thread=False,
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
            # Statement journals and temporary B-trees in memory, not in temp files: an
            # audit insert touches a dozen B-trees, and a temp file doubled its cost.
            conn.execute("PRAGMA temp_store = MEMORY")
            migrate_sqlite(conn, self._clock)
        except sqlite3.Error as exc:
            conn.close()
            raise unavailable(exc) from exc
        except BaseException:
            conn.close()
            raise
        return conn
