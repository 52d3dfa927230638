"""PostgreSQL: standing approvals -- using one with a decision, reading and revoking them
(granting is part of the review update, in postgres.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from signoff.core.audit import AuditRecord
from signoff.store import grants_sql as gsql
from signoff.store import sealing
from signoff.store.base import DecisionRecord, check_decision_audit
from signoff.store.grants_sql import GrantRecord
from signoff.store.postgres import sql
from signoff.store.postgres.tx import Tx, key_of
from signoff.store.rows import POSTGRES

# RETURNING, read back: in a pipelined batch a cursor's rowcount is unknown (-1) until its
# result is fetched, and fetching needs a statement that returns rows.
_USE = f"{gsql.USE} RETURNING grant_id"
_REVOKE = f"{gsql.REVOKE} RETURNING grant_id"


class PostgresGrants:
    """The grant methods of PostgresStore (which provides `_read` and `_submit`)."""

    _read: Callable[..., Any]
    _submit: Callable[..., Any]

    async def record_granted_decision(
        self, rec: DecisionRecord, audit: AuditRecord, grant_id: str, now: dt.datetime
    ) -> tuple[DecisionRecord, bool] | None:
        """As record_decision, using grant `grant_id` once; None if it is no longer active."""
        check_decision_audit(rec, audit)
        leaf = sealing.leaf_of(rec)

        async def apply(tx: Tx) -> tuple[DecisionRecord, bool] | None:
            stored = await tx.stored_decision(rec)
            if stored is not None:  # a retry: the stored decision, no second use
                return stored, True
            # The row lock taken here orders concurrent uses on every replica; a waiter
            # re-checks `uses < max_uses` once the holder commits (READ COMMITTED).
            used = await tx.conn.execute(_USE, (grant_id, sql.aware(now)))
            if await used.fetchone() is None:
                return None  # used up, revoked or expired meanwhile: nothing is written
            # A concurrent retry on another replica can still win the idempotency key: the
            # use then counts for nothing, which never lets more requests through.
            stored = sealing.with_receipt(rec, leaf)
            existing = await tx.insert_decision(stored)
            if existing is not None:
                return existing, True
            await tx.append([audit])
            return stored, False

        return await self._submit(apply, key=key_of(rec), leaf=leaf)  # type: ignore[no-any-return]

    async def active_grants(
        self, action_name: str, reviewer_group: str, policy: str, rule: str, now: dt.datetime
    ) -> list[GrantRecord]:
        """The active grants for one action, group and rule, newest first."""
        args = (action_name, reviewer_group, policy, rule, sql.aware(now))
        return await self._read(lambda conn: _grants(conn, gsql.SELECT_ACTIVE, args))  # type: ignore[no-any-return]

    async def list_grants(
        self, reviewer_group: str, now: dt.datetime, active_only: bool
    ) -> list[GrantRecord]:
        """One group's grants, newest first (at most grants_sql.LIST_LIMIT)."""
        args: tuple[Any, ...] = (reviewer_group,)
        args += (sql.aware(now), gsql.LIST_LIMIT) if active_only else (gsql.LIST_LIMIT,)
        statement = gsql.select_group(active_only)
        return await self._read(lambda conn: _grants(conn, statement, args))  # type: ignore[no-any-return]

    async def get_grant(self, grant_id: str) -> GrantRecord | None:
        """One grant by id, or None."""
        found = await self._read(lambda conn: _grants(conn, gsql.SELECT_ONE, (grant_id,)))
        return found[0] if found else None

    async def revoke_grant(
        self, grant_id: str, actor: str, now: dt.datetime, audit: AuditRecord
    ) -> bool:
        """Revoke `grant_id` and append `audit`; False (nothing written) if already revoked."""

        async def apply(tx: Tx) -> bool:
            done = await tx.conn.execute(_REVOKE, (sql.aware(now), actor, grant_id))
            if await done.fetchone() is None:
                return False
            await tx.append([audit])
            return True

        return await self._submit(apply)  # type: ignore[no-any-return]


async def _grants(conn: sql.Conn, statement: str, args: Sequence[Any]) -> list[GrantRecord]:
    cur = await conn.execute(statement, tuple(args))
    return [POSTGRES.grant(row) for row in await cur.fetchall()]
