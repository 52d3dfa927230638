"""What an operation sees inside a PostgreSQL group commit: the connection, the chain head and
the decisions already stored under the batch's idempotency keys.

A batch runs in one of two modes (writer.py says when):

- pipelined: statements are queued on a connection in pipeline mode and nothing waits for a
  result unless an operation asks for one. The writer read, under the chain lock, the stored
  decisions of every idempotency key in the batch, so a replay is answered from memory; new
  decisions, reviews and audit entries are held and inserted by `flush` with one statement
  per table (without ON CONFLICT: a conflict means the read missed something, and the batch
  then fails and runs again carefully);
- careful: one statement at a time, each operation under its own SAVEPOINT, a decision
  inserted with ON CONFLICT and its outcome read back -- the mode that can attribute a
  database error to the operation that caused it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from signoff.core.audit import AuditEntry, AuditRecord
from signoff.core.audit import seal as seal_entry
from signoff.store.base import DecisionRecord, ReviewRecord, check_replay
from signoff.store.postgres import sql
from signoff.store.postgres.feed import NOTIFY, NOTIFY_MANY

Key = tuple[str, str]  # (principal_id, request_id): a decision's idempotency key
# (seq, hash, keys added, rows held per kind): what `Tx.undo` returns to.
Mark = tuple[int, str, int, tuple[int, int, int, int]]


def key_of(rec: DecisionRecord) -> Key | None:
    """The idempotency key of `rec`, or None when it has none (an empty request_id)."""
    return (rec.principal_id, rec.request_id) if rec.request_id else None


class Tx:
    """The batch transaction as operations see it; `mark`/`undo` bracket one operation."""

    def __init__(
        self,
        conn: sql.Conn,
        seq: int,
        hash_: str,
        *,
        stored: dict[Key, DecisionRecord] | None = None,
        sealed: list[AuditEntry] | None = None,
    ) -> None:
        self.conn, self.seq, self.hash = conn, seq, hash_
        # Every entry sealed here, kept for the Merkle tree's builder once the batch has
        # committed (it checks each against the committed row's hash: an undone one fails).
        self._sealed = sealed if sealed is not None else []
        # None in careful mode: the database answers each lookup.
        self._stored = stored
        self._added: list[Key] = []  # keys this batch inserted, in order, for undo()
        # Rows held for `flush` (pipelined mode).
        self._decisions: list[dict[str, Any]] = []
        self._reviews: list[dict[str, Any]] = []
        self._entries: list[AuditEntry] = []
        self._notices: list[tuple[str, str]] = []

    @property
    def pipelined(self) -> bool:
        """True when statements are queued in pipeline mode (see the module docstring)."""
        return self._stored is not None

    def mark(self) -> Mark:
        """The state to return to if the next operation fails."""
        held = (len(self._decisions), len(self._reviews), len(self._entries), len(self._notices))
        return self.seq, self.hash, len(self._added), held

    def undo(self, mark: Mark) -> None:
        """Forget what the operation since `mark` did: the rows it held, and what its savepoint
        undid in the database."""
        self.seq, self.hash, added, held = mark
        if self._stored is not None:
            for key in self._added[added:]:
                del self._stored[key]
        del self._added[added:]
        del self._decisions[held[0] :]
        del self._reviews[held[1] :]
        del self._entries[held[2] :]
        del self._notices[held[3] :]

    async def flush(self) -> None:
        """Send the rows and notifications held so far (pipelined mode; queued, nothing waits
        for them)."""
        if self._decisions or self._reviews or self._entries:
            await sql.insert_bulk(self.conn, self._decisions, self._reviews, self._entries)
            self._decisions, self._reviews, self._entries = [], [], []
        if self._notices:
            channels, payloads = zip(*self._notices, strict=True)
            await self.conn.execute(NOTIFY_MANY, (list(channels), list(payloads)))
            self._notices = []

    async def notify(self, channel: str, payload: str) -> None:
        """NOTIFY `channel` with `payload`, delivered if and when the batch commits."""
        if self._stored is not None:
            self._notices.append((channel, payload))
        else:
            await self.conn.execute(NOTIFY, (channel, payload))

    async def stored_decision(self, rec: DecisionRecord) -> DecisionRecord | None:
        """The decision stored under `rec`'s idempotency key (checked to match `rec`), if any."""
        key = key_of(rec)
        if key is None:
            return None
        if self._stored is not None:
            found = self._stored.get(key)
        else:
            found = await sql.select_decision(self.conn, *key)
        return None if found is None else check_replay(found, rec)

    async def insert_decision(self, rec: DecisionRecord) -> DecisionRecord | None:
        """Insert `rec`; on an idempotency-key hit return the stored decision instead."""
        if self._stored is None:
            return await sql.insert_decision(self.conn, rec)
        found = await self.stored_decision(rec)
        if found is not None:
            return found
        self._decisions.append(sql.decision_json(rec))
        if key := key_of(rec):
            self._stored[key] = rec
            self._added.append(key)
        return None

    async def append(self, records: Sequence[AuditRecord]) -> list[AuditEntry]:
        """Chain `records` after the head, insert them, and advance the head."""
        entries = []
        for record in records:
            entry = seal_entry(record, seq=self.seq + 1, prev_hash=self.hash)
            entries.append(entry)
            self.seq, self.hash = entry.seq, entry.hash
        self._sealed += entries
        if self._stored is not None:
            self._entries += entries
        elif entries:
            await sql.insert_entries(self.conn, entries)
        return entries

    async def insert_review(self, rec: ReviewRecord) -> None:
        """Insert a newly opened review (after its decision)."""
        if self._stored is not None:
            self._reviews.append(sql.review_json(rec))
        else:
            await sql.insert_review(self.conn, rec)
