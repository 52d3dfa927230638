"""Rows -> records: one decoder per record type, shared by the SQLite and PostgreSQL stores.

The backends' rows differ only in how two kinds of column read back, so a `Rows` adapter
names those two and the decoders are written once:

* times: SQLite stores fixed-width RFC 3339 UTC text (`signoff.core.audit.format_time`), read by
  `parse_time`; PostgreSQL returns a timestamptz as an aware datetime in the session's zone,
  which `utc` converts (records hold UTC, so both backends give equal records).
* string lists (an entry's matched rules): JSON text in SQLite, a text[] in PostgreSQL.

Each decoder takes a row selected in its *_FIELDS order (grants: grants_sql.COLUMNS); the
SQL modules of both backends select these names, so the order is written once, here.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from signoff.core.audit import AuditEntry, parse_time
from signoff.errors import FailedPrecondition
from signoff.store.base import Checkpoint, DecisionRecord, GroupBacklog, ReviewRecord
from signoff.store.grants_sql import GrantRecord

DECISION_FIELDS = (
    *("decision_id", "principal_id", "request_id", "request_digest", "action_name"),
    *("outcome", "created_at", "decision"),
)
REVIEW_FIELDS = (
    *("review_id", "decision_id", "principal_id", "on_behalf_of", "action_name"),
    *("reviewer_group", "state", "version", "created_at", "updated_at", "expires_at", "review"),
)
# Column names equal AuditEntry field names (`payload` holds canonical JSON text).
AUDIT_FIELDS = (
    *("seq", "time", "type", "actor", "request_id", "decision_id", "review_id", "action_name"),
    *("outcome", "principal", "reviewer", "reviewer_group", "review_state", "rules"),
    *("policy_version", "payload", "prev_hash", "hash"),
)
CHECKPOINT_FIELDS = ("seq", "head_hash", "time", "key_id", "signature", "tree_size", "root_hash")
DECISION_COLUMNS = ", ".join(DECISION_FIELDS)
REVIEW_COLUMNS = ", ".join(REVIEW_FIELDS)
AUDIT_COLUMNS = ", ".join(AUDIT_FIELDS)
CHECKPOINT_COLUMNS = ", ".join(CHECKPOINT_FIELDS)
# A group backlog is an aggregate, not a table row: the statements select
# reviewer_group, count(*), min(created_at), min(expires_at).


def utc(t: dt.datetime) -> dt.datetime:
    """Return a timestamptz read back from PostgreSQL in UTC, as the records hold it."""
    return t.astimezone(dt.UTC)


@dataclass(frozen=True, slots=True)
class Rows:
    """The row decoders of one backend, given how its time and string-list columns read."""

    time: Callable[[Any], dt.datetime]
    strings: Callable[[Any], Iterable[str]]

    def decision(self, row: Sequence[Any]) -> DecisionRecord:
        """A decision from a row in DECISION_FIELDS order."""
        return DecisionRecord(
            decision_id=row[0],
            principal_id=row[1],
            request_id=row[2],
            request_digest=row[3],
            action_name=row[4],
            outcome=row[5],
            created_at=self.time(row[6]),
            decision=bytes(row[7]),
        )

    def review(self, row: Sequence[Any]) -> ReviewRecord:
        """A review from a row in REVIEW_FIELDS order."""
        return ReviewRecord(
            review_id=row[0],
            decision_id=row[1],
            principal_id=row[2],
            on_behalf_of=row[3],
            action_name=row[4],
            reviewer_group=row[5],
            state=row[6],
            version=int(row[7]),
            created_at=self.time(row[8]),
            updated_at=self.time(row[9]),
            expires_at=self._maybe_time(row[10]),
            review=bytes(row[11]),
        )

    def grant(self, row: Sequence[Any]) -> GrantRecord:
        """A grant from a row in grants_sql.COLUMNS order."""
        return GrantRecord(
            grant_id=row[0],
            reviewer_group=row[1],
            action_name=row[2],
            policy=row[3],
            rule=row[4],
            principal_id=row[5],
            max_uses=int(row[6]),
            uses=int(row[7]),
            created_by=row[8],
            created_at=self.time(row[9]),
            expires_at=self.time(row[10]),
            revoked_at=self._maybe_time(row[11]),
            revoked_by=row[12],
            grant=bytes(row[13]),
        )

    def entry(self, row: Sequence[Any]) -> AuditEntry:
        """An audit entry from a row in AUDIT_FIELDS order; FailedPrecondition if corrupt."""
        fields = dict(zip(AUDIT_FIELDS, row, strict=True))
        try:
            fields["time"] = self.time(fields["time"])
            fields["rules"] = tuple(self.strings(fields["rules"]))
            fields["payload"] = json.loads(fields["payload"])
            return AuditEntry(**fields)
        except (ValueError, TypeError) as exc:
            raise _corrupt(f"audit entry seq {fields['seq']}", exc) from exc

    def checkpoint(self, row: Sequence[Any]) -> Checkpoint:
        """A checkpoint from a row in CHECKPOINT_FIELDS order; FailedPrecondition if corrupt."""
        try:
            time = self.time(row[2])
        except (ValueError, TypeError) as exc:
            raise _corrupt(f"checkpoint seq {row[0]}", exc) from exc
        return Checkpoint(
            seq=int(row[0]),
            head_hash=str(row[1]),
            time=time,
            key_id=str(row[3]),
            signature=str(row[4]),
            tree_size=int(row[5]),
            root_hash=str(row[6]),
        )

    def backlog(self, row: Sequence[Any]) -> GroupBacklog:
        """A group backlog from (reviewer_group, count, oldest created_at, next expires_at)."""
        return GroupBacklog(
            reviewer_group=row[0],
            pending=int(row[1]),
            oldest_created_at=self.time(row[2]),
            next_expires_at=self._maybe_time(row[3]),
        )

    def _maybe_time(self, value: Any) -> dt.datetime | None:
        return None if value is None else self.time(value)


def _corrupt(what: str, exc: Exception) -> FailedPrecondition:
    # Only a write that bypassed signoff can store an undecodable row.
    return FailedPrecondition(
        f"{what} cannot be decoded ({exc}): the database was modified outside signoff",
        current_state="corrupt",
    )


SQLITE = Rows(time=parse_time, strings=json.loads)
POSTGRES = Rows(time=utc, strings=tuple)
