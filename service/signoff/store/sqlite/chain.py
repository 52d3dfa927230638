"""SQLite: the reads that check rows against the audit chain (`signoff.app.audit.rows`):
entries by review or decision id, the rule index of a seq range, and every row of the
tables that decide, page by page, for `audit verify`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from signoff.core.audit import AuditEntry
from signoff.store import grants_sql as gsql
from signoff.store.base import ENTRY_ID_COLUMNS, DecisionRecord, ReviewRecord
from signoff.store.grants_sql import GrantRecord
from signoff.store.rows import DECISION_COLUMNS, SQLITE
from signoff.store.sqlite import audit_index
from signoff.store.sqlite import reviews as reviews_sql


class SqliteChain:
    """The chain-check reads of SqliteStore (which provides `_read`)."""

    _read: Callable[..., Any]

    async def audit_by_ids(
        self, column: str, ids: Sequence[str], types: Sequence[str]
    ) -> list[AuditEntry]:
        """Entries whose `column` is one of `ids` and whose type is one of `types`, by seq."""
        if column not in ENTRY_ID_COLUMNS:
            raise ValueError(f"audit_by_ids: {column!r} is not one of {ENTRY_ID_COLUMNS}")
        if not ids or not types:
            return []

        def read(conn: sqlite3.Connection) -> list[AuditEntry]:
            rows = audit_index.entries_by_ids(conn, column, ids, types)
            return [SQLITE.entry(row) for row in rows]

        return await self._read(read)  # type: ignore[no-any-return]

    async def rule_index(self, from_seq: int, to_seq: int) -> list[tuple[int, str]]:
        """The rule index rows (seq, rule) with from_seq <= seq <= to_seq, by seq."""

        def read(conn: sqlite3.Connection) -> list[tuple[int, str]]:
            rows = conn.execute(
                "SELECT seq, rule FROM audit_rules WHERE seq BETWEEN ? AND ? ORDER BY seq, rule",
                (from_seq, to_seq),
            )
            return [(int(seq), str(rule)) for seq, rule in rows]

        return await self._read(read)  # type: ignore[no-any-return]

    async def reviews_page(self, after: str, limit: int) -> list[ReviewRecord]:
        """Every review, by review_id, strictly after `after` (at most `limit`)."""
        statement = f"{reviews_sql._SELECT} WHERE review_id > ? ORDER BY review_id LIMIT ?"

        def read(conn: sqlite3.Connection) -> list[ReviewRecord]:
            return [SQLITE.review(r) for r in conn.execute(statement, (after, limit))]

        return await self._read(read)  # type: ignore[no-any-return]

    async def grants_page(self, after: str, limit: int) -> list[GrantRecord]:
        """Every grant, by grant_id, strictly after `after` (at most `limit`)."""
        statement = (
            f"SELECT {gsql.COLUMNS} FROM grants WHERE grant_id > ? ORDER BY grant_id LIMIT ?"
        )

        def read(conn: sqlite3.Connection) -> list[GrantRecord]:
            rows = conn.execute(statement, (after, limit))
            return [SQLITE.grant(r) for r in rows]

        return await self._read(read)  # type: ignore[no-any-return]

    async def decisions_page(self, after: str, limit: int) -> list[DecisionRecord]:
        """Every decision, by decision_id, strictly after `after` (at most `limit`)."""
        statement = (
            f"SELECT {DECISION_COLUMNS} FROM decisions WHERE decision_id > ? "
            "ORDER BY decision_id LIMIT ?"
        )

        def read(conn: sqlite3.Connection) -> list[DecisionRecord]:
            rows = conn.execute(statement, (after, limit))
            return [SQLITE.decision(r) for r in rows]

        return await self._read(read)  # type: ignore[no-any-return]
