"""SQLite: standing approvals -- using one with a decision, reading and revoking them
(granting is part of the review update, in sqlite.py)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from signoff.core.audit import AuditRecord, format_time
from signoff.store import grants_sql as gsql
from signoff.store import sealing
from signoff.store.base import DecisionRecord, check_decision_audit
from signoff.store.grants_sql import GrantRecord
from signoff.store.rows import SQLITE
from signoff.store.sqlite import decisions as decisions_sql


class SqliteGrants:
    """The grant methods of SqliteStore (which provides `_read` and `_submit`)."""

    _read: Callable[..., Any]
    _submit: Callable[..., Any]

    async def record_granted_decision(
        self, rec: DecisionRecord, audit: AuditRecord, grant_id: str, now: dt.datetime
    ) -> tuple[DecisionRecord, bool] | None:
        """As record_decision, using grant `grant_id` once; None if it is no longer active."""
        check_decision_audit(rec, audit)
        leaf = sealing.leaf_of(rec)

        def apply(tx: Any) -> tuple[DecisionRecord, bool] | None:
            existing = decisions_sql.replay_of(tx.conn, rec)
            if existing is not None:  # a retry: the stored decision, no second use
                return existing, True
            used = tx.conn.execute(gsql.for_sqlite(gsql.USE), (grant_id, format_time(now)))
            if used.rowcount != 1:
                return None  # used up, revoked or expired meanwhile: nothing is written
            stored = sealing.with_receipt(rec, leaf)
            decisions_sql.insert(tx.conn, stored)
            tx.append(audit)
            return stored, False

        return await self._submit(apply, leaf)

    async def active_grants(
        self, action_name: str, reviewer_group: str, policy: str, rule: str, now: dt.datetime
    ) -> list[GrantRecord]:
        """The active grants for one action, group and rule, newest first."""
        args = (action_name, reviewer_group, policy, rule, format_time(now))
        return await self._read(lambda conn: _grants(conn, gsql.SELECT_ACTIVE, args))

    async def list_grants(
        self, reviewer_group: str, now: dt.datetime, active_only: bool
    ) -> list[GrantRecord]:
        """One group's grants, newest first (at most grants_sql.LIST_LIMIT)."""
        args: tuple[Any, ...] = (reviewer_group,)
        args += (format_time(now), gsql.LIST_LIMIT) if active_only else (gsql.LIST_LIMIT,)
        return await self._read(lambda conn: _grants(conn, gsql.select_group(active_only), args))

    async def get_grant(self, grant_id: str) -> GrantRecord | None:
        """One grant by id, or None."""
        found = await self._read(lambda conn: _grants(conn, gsql.SELECT_ONE, (grant_id,)))
        return found[0] if found else None

    async def revoke_grant(
        self, grant_id: str, actor: str, now: dt.datetime, audit: AuditRecord
    ) -> bool:
        """Revoke `grant_id` and append `audit`; False (nothing written) if already revoked."""

        def apply(tx: Any) -> bool:
            done = tx.conn.execute(
                gsql.for_sqlite(gsql.REVOKE), (format_time(now), actor, grant_id)
            )
            if done.rowcount != 1:
                return False
            tx.append(audit)
            return True

        return await self._submit(apply)


def _grants(conn: sqlite3.Connection, statement: str, args: Sequence[Any]) -> list[GrantRecord]:
    rows = conn.execute(gsql.for_sqlite(statement), tuple(args)).fetchall()
    return [SQLITE.grant(row) for row in rows]
