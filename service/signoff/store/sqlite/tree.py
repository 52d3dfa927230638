"""SQLite statements of the audit log's Merkle tree (store/tree.py builds it, core/log_tree.py
says what a row holds)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

from signoff.core.audit import AuditEntry
from signoff.store.rows import AUDIT_COLUMNS, SQLITE
from signoff.store.tree import Pending, edge_keys, known


def tree_size(conn: sqlite3.Connection) -> int:
    """The number of entries the stored tree holds (its watermark)."""
    return int(conn.execute("SELECT tree_size FROM audit_tree_state WHERE id = 1").fetchone()[0])


def tree_rows(conn: sqlite3.Connection, keys: Iterable[int]) -> dict[int, bytes]:
    """The stored rows with these keys (key -> concatenated hashes); absent keys are left out."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    marks = ", ".join("?" * len(wanted))
    rows = conn.execute(f"SELECT seq, hashes FROM audit_tree WHERE seq IN ({marks})", wanted)
    return {int(seq): bytes(hashes) for seq, hashes in rows}


def pending(
    conn: sqlite3.Connection, limit: int, recent: Mapping[int, AuditEntry] | None = None
) -> Pending:
    """The watermark, the right edge's rows and up to `limit` entries after it: those of
    `recent` (this process's writer appended them) whose hash the committed row has, the
    others decoded from their rows."""
    # Separate statements need no shared snapshot: rows up to the watermark and entries
    # never change, and the watermark is read first.
    size = tree_size(conn)
    edge = tree_rows(conn, edge_keys(size))
    heads = conn.execute(
        "SELECT seq, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (size, limit)
    ).fetchall()
    if (entries := known(heads, recent or {})) is not None:
        return Pending(size, edge, entries)
    rows = conn.execute(
        f"SELECT {AUDIT_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (size, limit)
    )
    return Pending(size, edge, [SQLITE.entry(row) for row in rows])


def write(conn: sqlite3.Connection, old: int, new: int, rows: list[tuple[int, bytes]]) -> bool:
    """Add `rows` and move the watermark from `old` to `new` in one transaction on `conn`
    (the writer's, between batches); False, writing nothing, if it is no longer at `old`."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        moved = conn.execute(
            "UPDATE audit_tree_state SET tree_size = ? WHERE id = 1 AND tree_size = ?", (new, old)
        ).rowcount
        if moved:
            conn.executemany("INSERT INTO audit_tree (seq, hashes) VALUES (?, ?)", rows)
            conn.execute("COMMIT")
        else:
            conn.execute("ROLLBACK")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return bool(moved)
