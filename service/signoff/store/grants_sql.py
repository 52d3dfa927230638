"""Standing approvals in either backend: the record, and SQL written once for both.

The statements use psycopg's `%s`; `for_sqlite` turns them into SQLite's `?`. Times are
passed through a backend's `to_db` (RFC 3339 text for SQLite, timestamptz for PostgreSQL),
which both compare in time order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

COLUMNS = (
    "grant_id, reviewer_group, action_name, policy, rule, principal_id, max_uses, uses, "
    "created_by, created_at, expires_at, revoked_at, revoked_by, grant_pb"
)
INSERT = f"INSERT INTO grants ({COLUMNS}) VALUES ({', '.join(['%s'] * 14)})"
SELECT_ONE = f"SELECT {COLUMNS} FROM grants WHERE grant_id = %s"
# The decision path: active grants for one (action, group, policy, rule), newest first.
SELECT_ACTIVE = (
    f"SELECT {COLUMNS} FROM grants WHERE action_name = %s AND reviewer_group = %s "
    "AND policy = %s AND rule = %s AND revoked_at IS NULL AND expires_at > %s "
    "AND uses < max_uses ORDER BY created_at DESC, grant_id LIMIT 100"
)
SELECT_GROUP = (
    f"SELECT {COLUMNS} FROM grants WHERE reviewer_group = %s "
    "ORDER BY created_at DESC, grant_id LIMIT %s"
)
ACTIVE_FILTER = " AND revoked_at IS NULL AND expires_at > %s AND uses < max_uses"
# One use, only while the grant is active: of concurrent uses past max_uses, the late ones
# match no row (the row lock orders them, also across PostgreSQL replicas).
USE = (
    "UPDATE grants SET uses = uses + 1 WHERE grant_id = %s AND uses < max_uses "
    "AND revoked_at IS NULL AND expires_at > %s"
)
REVOKE = (
    "UPDATE grants SET revoked_at = %s, revoked_by = %s WHERE grant_id = %s AND revoked_at IS NULL"
)
LIST_LIMIT = 1000


def for_sqlite(statement: str) -> str:
    """The statement with SQLite's placeholders."""
    return statement.replace("%s", "?")


def select_group(active_only: bool) -> str:
    """ListGrants: one group's grants, newest first (active ones only, or all)."""
    if not active_only:
        return SELECT_GROUP
    where, order = SELECT_GROUP.split(" ORDER BY ")
    return f"{where}{ACTIVE_FILTER} ORDER BY {order}"


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantRecord:
    """A stored standing approval; `grant` is the serialized signoff.v1.Grant (its scope).

    The columns are the truth for what changes (uses, revocation); the message keeps what
    the reviewer granted.
    """

    grant_id: str
    reviewer_group: str
    action_name: str
    policy: str
    rule: str
    principal_id: str  # '' = any principal
    max_uses: int
    uses: int
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    revoked_by: str
    grant: bytes

    def row(self, to_db: Callable[[dt.datetime], Any]) -> tuple[Any, ...]:
        """The values for INSERT, times through `to_db`."""
        return (
            *(self.grant_id, self.reviewer_group, self.action_name, self.policy, self.rule),
            *(self.principal_id, self.max_uses, self.uses, self.created_by),
            *(to_db(self.created_at), to_db(self.expires_at)),
            None if self.revoked_at is None else to_db(self.revoked_at),
            *(self.revoked_by, self.grant),
        )
