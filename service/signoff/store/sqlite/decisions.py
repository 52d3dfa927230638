"""SQLite statements for decisions: the idempotency lookup and the insert.

Functions here run on a connection the caller owns (the writer's transaction or a reader);
`SqliteStore` decides where they run.
"""

from __future__ import annotations

import sqlite3

from signoff.core.audit import format_time
from signoff.store.base import DecisionRecord, check_replay
from signoff.store.rows import DECISION_COLUMNS, SQLITE

# `request_id <> ''` lets SQLite use the partial unique index decisions_idempotency.
_SELECT = (
    f"SELECT {DECISION_COLUMNS} FROM decisions "
    "WHERE principal_id = ? AND request_id = ? AND request_id <> ''"
)
_INSERT = f"INSERT INTO decisions ({DECISION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


def find(conn: sqlite3.Connection, principal_id: str, request_id: str) -> DecisionRecord | None:
    """The decision stored under this idempotency key, if any."""
    row = conn.execute(_SELECT, (principal_id, request_id)).fetchone()
    return None if row is None else SQLITE.decision(row)


def replay_of(conn: sqlite3.Connection, rec: DecisionRecord) -> DecisionRecord | None:
    """The decision a retry of `rec` finds stored (its key's), if any; see `check_replay`."""
    if not rec.request_id:
        return None
    stored = find(conn, rec.principal_id, rec.request_id)
    return None if stored is None else check_replay(stored, rec)


def insert(conn: sqlite3.Connection, rec: DecisionRecord) -> None:
    """Insert a new decision."""
    conn.execute(
        _INSERT,
        (
            *(rec.decision_id, rec.principal_id, rec.request_id, rec.request_digest),
            *(rec.action_name, rec.outcome, format_time(rec.created_at), rec.decision),
        ),
    )
