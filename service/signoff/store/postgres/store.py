"""PostgreSQL backend: many `signoff serve` replicas on one database.

Durability -- what an acknowledged write means: a write's awaitable returns only after the
transaction holding it committed with ``synchronous_commit`` on (PostgreSQL's default), i.e.
after the server flushed its WAL past the commit record. With synchronous replication
configured, "committed" also means on the standbys ``synchronous_standby_names`` names. A
write whose awaitable raised `Unavailable` was rolled back -- or, when the connection broke
during COMMIT, its outcome is unknown to the client -- which is why decisions are idempotent
by request_id: the retry returns the stored decision.

Writes go through `GroupCommitWriter` (writer.py): one asyncio task per process, many
operations per transaction sent in pipeline mode (a few round trips per batch), and a
per-database advisory lock that makes the audit chain one linear sequence across all
replicas. Reads use pooled
connections (psycopg_pool) in autocommit mode: each read is one statement, one snapshot.

Replicas learn of each other's review changes through LISTEN/NOTIFY and elect one leader
for singleton jobs (the expiry sweeper) with session advisory locks: postgres_feed.py.

Schema migrations (migrations/postgres/) run on open() in one transaction under an advisory
lock, so replicas starting together apply them once; a newer schema is refused.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from signoff.core.audit import AuditEntry, AuditRecord, format_time
from signoff.core.witness import Cosignature
from signoff.errors import Unavailable
from signoff.ids import Clock
from signoff.store import grants_sql as gsql
from signoff.store import migrations, sealing
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
from signoff.store.postgres import cosign as cosign_sql
from signoff.store.postgres import query, sql
from signoff.store.postgres import tree as tree_sql
from signoff.store.postgres.chain import PostgresChain
from signoff.store.postgres.feed import Leases, ReviewCallback, ReviewFeed, channel_for
from signoff.store.postgres.grants import PostgresGrants
from signoff.store.postgres.notify import PostgresNotify
from signoff.store.postgres.tx import Key, Tx, key_of
from signoff.store.postgres.writer import MIGRATE_LOCK, GroupCommitWriter, unavailable
from signoff.store.rows import POSTGRES
from signoff.store.sqlite.writer import WriterStats
from signoff.store.tree import TREE_IDLE, Pending, TreeBuilder

T = TypeVar("T")


class PostgresStore(PostgresGrants, PostgresChain, PostgresNotify):
    """The scale-out `Store`: one PostgreSQL database shared by every replica."""

    def __init__(
        self,
        url: str,
        clock: Clock,
        *,
        max_batch: int = DEFAULT_COMMIT_BATCH,
        commit_linger: float = DEFAULT_COMMIT_LINGER,
        pool_size: int = 8,
        connect_timeout: float = 5.0,
        call_later: CallLater | None = None,
        tree_idle: float | None = TREE_IDLE,
    ) -> None:
        self.url = url
        # The Merkle tree (store/tree.py), built behind the head by the replica holding the
        # "audit-tree" lease, every `tree_idle` seconds (other replicas append too); any
        # replica's checkpoint task steps it too: the step that moves the watermark first
        # commits, a racing one changes nothing.
        self._tree = TreeBuilder(
            self._tree_pending,
            self._tree_write,
            idle=tree_idle,
            lead=lambda: self.try_lead("audit-tree"),
        )
        self._clock = clock
        self._connect_timeout = connect_timeout
        # Autocommit: reads are single statements; the writer opens its transactions itself.
        # The pool waits `connect_timeout` for a connection, so while the server is down
        # callers get Unavailable after that long instead of hanging. Each checkout is
        # checked (one round trip) so that connections broken by a server restart are
        # replaced instead of failing one request each.
        self._pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max(pool_size, 2),
            kwargs={"autocommit": True, "connect_timeout": max(int(connect_timeout), 2)},
            timeout=connect_timeout,
            check=AsyncConnectionPool.check_connection,
            open=False,
            name="signoff",
        )
        self._writer = GroupCommitWriter(
            self._pool,
            max_batch=max_batch,
            linger=commit_linger,
            call_later=call_later,  # the linger's timer: the loop's unless a test moves time
        )
        self._writer.on_entries = self._committed  # the tree takes them (store/tree.py)
        self.feed = ReviewFeed(url, connect_timeout=connect_timeout)
        self._leases = Leases(url, connect_timeout=connect_timeout)
        self._channel = ""  # known after open(): it names the schema
        self._state = "new"  # new -> open -> closed

    @property
    def stats(self) -> WriterStats:
        """Return a snapshot of the group-commit counters (transactions vs operations)."""
        return self._writer.stats

    def observe_batches(self, callback: Callable[[int, float], None]) -> None:
        """Call `callback(size, seconds)` after each group commit (maybe from another thread)."""
        self._writer.on_batch = callback

    async def open(self) -> None:
        """Connect, bring the schema up to date (once across replicas), start the writer."""
        if self._state != "new":
            raise RuntimeError("PostgresStore.open() may be called once")
        self._state = "closed"  # until the writer is up
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=max(int(self._connect_timeout), 2)
            )
        except psycopg.Error as exc:
            raise unavailable(exc) from exc
        try:
            await migrate(conn, self._clock)
            cur = await conn.execute("SELECT current_schema()")
            self._channel = channel_for(str((await cur.fetchone() or ("public",))[0]))
        except psycopg.Error as exc:
            raise unavailable(exc) from exc
        finally:
            await conn.close()
        try:
            await self._pool.open(wait=False)
        except psycopg.Error as exc:
            raise unavailable(exc) from exc
        self._writer.start()
        self.feed.start(self._channel)
        self._state = "open"
        self._tree.start()

    async def close(self) -> None:
        """Commit every write queued so far, then close the pool."""
        never_opened = self._state == "new"
        self._state = "closed"
        if never_opened:
            return
        await self._tree.stop()
        await self.feed.stop()
        await self._writer.stop()
        await self._leases.close()
        await self._pool.close()

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

        async def apply(tx: Tx) -> tuple[DecisionRecord, bool]:
            stored = sealing.with_receipt(rec, leaf)
            existing = await tx.insert_decision(stored)
            if existing is not None:
                return existing, True
            if review is not None and review_audit is not None:
                await tx.insert_review(review)
                await tx.notify(self._channel, review.review_id)
                await tx.append([audit, review_audit])
            else:
                await tx.append([audit])
            return stored, False

        return await self._submit(apply, key=key_of(rec), bulk=True, leaf=leaf)

    async def append(self, records: Sequence[AuditRecord]) -> list[AuditEntry]:
        """Append `records` to the audit log atomically and return them as entries."""
        batch = list(records)
        if not batch:
            return []
        return await self._submit(lambda tx: tx.append(batch), bulk=True)

    def use_sealer(self, sealer: sealing.Sealer) -> None:
        """Seal the receipt leaves of each write batch with `sealer` (store/sealing.py)."""
        self._writer.sealer = sealer

    async def maintenance(self, fn: Callable[[sql.Conn], Awaitable[T]]) -> T:
        """Run `fn(connection)` in the writer task between batches (tests, operations)."""
        return await self._writer.maintain(fn)  # type: ignore[no-any-return]

    def _committed(self, entries: list[AuditEntry]) -> None:
        for entry in entries:
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
        # `recent` holds this replica's committed entries; other replicas' are decoded.
        return await self._read(lambda conn: tree_sql.pending(conn, limit, recent))

    async def _tree_write(self, old: int, new: int, rows: list[tuple[int, bytes]]) -> bool:
        return await self._read(lambda conn: tree_sql.write(conn, old, new, rows))

    async def find_decision(self, principal_id: str, request_id: str) -> DecisionRecord | None:
        """Return the decision stored for this idempotency key, if any."""
        if not request_id:
            return None

        async def read(conn: sql.Conn) -> DecisionRecord | None:
            cur = await conn.execute(sql.SELECT_DECISION, (principal_id, request_id))
            row = await cur.fetchone()
            return None if row is None else POSTGRES.decision(row)

        return await self._read(read)

    async def read_audit(self, from_seq: int = 1, limit: int = 1000) -> list[AuditEntry]:
        """Return up to `limit` entries with seq >= `from_seq`, in seq order."""
        if limit <= 0:
            return []
        return await self._read(lambda conn: sql.read_entries(conn, from_seq, limit))

    async def audit_head(self) -> tuple[int, str]:
        """Return the last committed (seq, hash), or (0, GENESIS) when the log is empty."""
        return await self._read(sql.read_head)

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
            lambda conn: query.query_audit(
                conn, q, descending=descending, after_seq=after_seq, limit=limit
            )
        )

    async def add_checkpoint(self, cp: Checkpoint) -> None:
        """Store `cp` durably; ValueError unless it follows the last one and signs a stored head."""
        format_time(cp.time)  # a naive time fails here, at the caller, not in the batch
        await self._submit(lambda tx: sql.insert_checkpoint(tx.conn, cp))

    async def checkpoints(self, from_seq: int = 0, to_seq: int = 0) -> list[Checkpoint]:
        """Return the checkpoints with from_seq <= seq <= to_seq (0 = no bound), ascending."""
        return await self._read(lambda conn: sql.checkpoints(conn, from_seq, to_seq))

    async def last_checkpoint(self) -> Checkpoint | None:
        """Return the latest checkpoint, if any."""
        return await self._read(sql.last_checkpoint)

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
        return await self._read(lambda conn: sql.review_where(conn, "review_id", review_id))

    async def review_for_decision(self, decision_id: str) -> ReviewRecord | None:
        """Return the review opened by this decision, if any."""
        return await self._read(lambda conn: sql.review_where(conn, "decision_id", decision_id))

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

        async def apply(tx: Tx) -> ReviewRecord:
            # The version guard runs in a transaction holding the chain lock: of two updates
            # from the same version, in one batch, two batches or two replicas, the second
            # matches no row.
            stored = await sql.update_review(tx.conn, new, expected_version)
            if grant is not None:  # after the guard: a failed act grants nothing
                await tx.conn.execute(gsql.INSERT, grant.row(sql.aware))
            # Delivered to every replica's listener on commit, and never if rolled back.
            await tx.notify(self._channel, new.review_id)
            await tx.append(records)
            return stored

        return await self._submit(apply)

    def subscribe_reviews(self, callback: ReviewCallback) -> None:
        """Call `callback(review_id)` on the event loop after a review committed, on any replica."""
        self.feed.subscribe(callback)

    async def try_lead(self, name: str) -> bool:
        """True while this replica holds the database-wide lease `name` (advisory lock)."""
        if self._state != "open":
            return False
        return await self._leases.try_lead(name)

    async def list_reviews(self, q: ReviewQuery) -> list[ReviewRecord]:
        """Return one page of reviews matching `q`, ordered by (created_at, review_id)."""
        return await self._read(lambda conn: query.list_reviews(conn, q))

    async def due_reviews(self, now: dt.datetime, limit: int = 100) -> list[ReviewRecord]:
        """Return PENDING reviews whose expires_at <= `now`, oldest deadline first."""
        return await self._read(lambda conn: query.due_reviews(conn, now, limit))

    async def pending_backlog(self, groups: Sequence[str] = ()) -> list[GroupBacklog]:
        """Return the backlog of each group with PENDING reviews (of `groups`; empty = all)."""
        return await self._read(lambda conn: query.pending_backlog(conn, groups))

    async def decided_reviews(
        self, action_name: str, *, exclude_review_id: str = "", limit: int = 100
    ) -> list[ReviewRecord]:
        """Return reviews of `action_name` in DECIDED_STATES, latest resolution first."""
        return await self._read(
            lambda conn: query.decided_reviews(conn, action_name, exclude_review_id, limit)
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
        return await self._read(lambda conn: query.opened_reviews(conn, since, until, after, limit))

    # -- the caller side ------------------------------------------------------------------

    async def _submit(
        self,
        apply: Callable[[Tx], Awaitable[T]],
        *,
        key: Key | None = None,
        bulk: bool = False,
        leaf: sealing.Leaf | None = None,
    ) -> T:
        # Enqueued before the first await, so calls keep their order; if the caller is
        # cancelled before the writer starts the op, the op is skipped.
        if self._state != "open":
            raise Unavailable("audit store unavailable: the store is not open")
        return await self._writer.submit(apply, key=key, bulk=bulk, leaf=leaf)  # type: ignore[no-any-return]

    async def _read(self, fn: Callable[[sql.Conn], Awaitable[T]]) -> T:
        if self._state != "open":
            raise Unavailable("audit store unavailable: the store is not open")
        task = asyncio.current_task()
        cancels = task.cancelling() if task is not None else 0
        try:
            async with self._pool.connection() as conn:
                raise_swallowed_cancel(task, cancels)
                return await fn(conn)
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            raise unavailable(exc) from exc


def raise_swallowed_cancel(task: asyncio.Task[Any] | None, cancels: int) -> None:
    """Raise CancelledError if `task` was cancelled since it had `cancels` requests pending
    and yet is still running: a cancellation that an await returned through instead of raising.

    psycopg_pool waits for a connection with asyncio.wait_for, which on Python 3.11 returns the
    result when the cancellation and the connection arrive together (CPython gh-86296, fixed
    in 3.12). A loop whose cancellation is lost that way -- the expiry sweeper cancelled by
    `Running.stop` as the pool opened -- runs on, and whoever awaits it waits forever.
    """
    if task is not None and task.cancelling() > cancels:
        raise asyncio.CancelledError("cancelled while waiting for a pooled connection")


async def migrate(conn: sql.Conn, clock: Clock) -> int:
    """Apply pending PostgreSQL migrations in one transaction; return the schema version."""
    known = migrations.load("postgres")
    async with conn.transaction():
        # Replicas starting together queue here; the next one then sees the applied rows.
        await conn.execute(MIGRATE_LOCK)
        # Look before creating: CREATE ... IF NOT EXISTS needs the CREATE privilege even when
        # the table exists, and the service role of a locked-down deployment has none.
        cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not (await cur.fetchone() or (False,))[0]:
            await conn.execute(
                "CREATE TABLE schema_migrations ("
                "version integer PRIMARY KEY, name text NOT NULL, applied_at text NOT NULL)"
            )
        cur = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        row = await cur.fetchone()
        version = int(row[0]) if row else 0
        migrations.check_version(version, len(known))
        for number, name, text in known[version:]:
            await conn.execute(text.encode())  # no parameters: the simple protocol, many statements
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                (number, name, format_time(clock.now())),
            )
    return len(known)
