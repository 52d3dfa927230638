"""The storage Protocol every backend (SQLite, PostgreSQL) implements, and its records.

Contract shared by all backends (and checked by the one behavioural suite in tests/store):

* A write is acknowledged (its awaitable returns) only after its transaction committed
  durably; a decision row and its audit entry commit together or not at all.
* Audit entries get gap-free ``seq`` numbers 1, 2, 3... in commit order and are hash-chained
  (`signoff.audit`); no code path updates or deletes them.
* Database failures raise `signoff.errors.Unavailable` ("audit store unavailable: ...");
  nothing that raised was stored, so the call may be retried (idempotently, by request_id).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from signoff.audit import AuditEntry, AuditRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionRecord:
    """A stored decision, keyed for idempotency by (principal_id, request_id)."""

    decision_id: str
    principal_id: str
    request_id: str  # "" = no idempotency key
    request_digest: str  # hex sha256 of the request's deterministic serialization
    action_name: str
    outcome: str
    created_at: dt.datetime
    decision: bytes  # serialized signoff.v1.Decision; opaque to the store


@runtime_checkable
class Store(Protocol):
    """Durable storage for decisions and the audit log (async; safe to share across tasks)."""

    async def open(self) -> None:
        """Create the database if needed and bring its schema up to date."""
        ...

    async def close(self) -> None:
        """Finish pending writes, then release the database."""
        ...

    async def record_decision(
        self, rec: DecisionRecord, audit: AuditRecord
    ) -> tuple[DecisionRecord, bool]:
        """Store `rec` and append `audit` atomically; return (stored record, replayed)."""
        ...

    async def append(self, records: Sequence[AuditRecord]) -> list[AuditEntry]:
        """Append `records` to the audit log atomically and return them as entries."""
        ...

    async def find_decision(self, principal_id: str, request_id: str) -> DecisionRecord | None:
        """Return the decision stored for this idempotency key, if any."""
        ...

    async def read_audit(self, from_seq: int = 1, limit: int = 1000) -> list[AuditEntry]:
        """Return up to `limit` entries with seq >= `from_seq`, in seq order."""
        ...

    async def audit_head(self) -> tuple[int, str]:
        """Return the last committed (seq, hash), or (0, GENESIS) when the log is empty."""
        ...
