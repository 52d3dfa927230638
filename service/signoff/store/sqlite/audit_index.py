"""The auditors' side index of the SQLite audit log, built in bulk off the write path.

`audit_index` (migration 0007) holds one (col, value, seq) row per indexed column of an entry
whose value is not '': the entries with one value are a key range in seq order, as the
(column, seq) indexes they replace were. For time (code 0) only the entries that raised the
running maximum of times are indexed: among them times follow seq, which is what turns a
time bound into a seq bound (audit_query.py).

A decision's commit no longer touches these B-trees. `step` indexes the next entries after
`indexed_through` in ONE transaction, rows in key order, with the new watermark: run by the
store between write batches (indexer.py, `AuditIndexer`), it costs a transaction per few hundred
entries and dirties a leaf per value rather than a leaf per entry and column. Readers read
the index for seq <= indexed_through and scan the entries after it (the tail) directly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from signoff.store.rows import AUDIT_FIELDS

TIME = 0
# Column -> code. Codes are stored: never renumber one, only add.
CODES = {
    "type": 1,
    "action_name": 2,
    "outcome": 3,
    "principal": 4,
    "reviewer": 5,
    "reviewer_group": 6,
    "review_state": 7,
    "policy_version": 8,
    "decision_id": 9,
    "review_id": 10,
    "request_id": 11,
}
_COLUMNS = ", ".join(f"a.{name}" for name in AUDIT_FIELDS)
_LEGS = " UNION ALL ".join(
    [
        "SELECT 0 AS col, a.time AS value, a.seq AS seq FROM audit AS a "
        "WHERE a.seq BETWEEN :lo AND :hi AND NOT EXISTS "
        "(SELECT 1 FROM audit_time_regressions AS r WHERE r.seq = a.seq)",
        *(
            f"SELECT {code}, {column}, seq FROM audit "
            f"WHERE seq BETWEEN :lo AND :hi AND {column} <> ''"
            for column, code in CODES.items()
        ),
    ]
)
_STEP = f"INSERT INTO audit_index (col, value, seq) SELECT * FROM ({_LEGS}) ORDER BY 1, 2, 3"


def indexed_through(conn: sqlite3.Connection) -> int:
    """Return the last seq the side index holds (every entry up to it, none after)."""
    return int(
        conn.execute("SELECT indexed_through FROM audit_index_state WHERE id = 1").fetchone()[0]
    )


def step(conn: sqlite3.Connection, limit: int) -> tuple[int, int]:
    """Index up to `limit` entries past the watermark in one transaction on `conn` (outside
    any transaction: the writer's, between batches); return (indexed_through, head seq)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        done = indexed_through(conn)
        head = int(conn.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchone()[0])
        upto = min(head, done + limit)
        if upto > done:
            conn.execute(_STEP, {"lo": done + 1, "hi": upto})
            # The rows and the watermark commit together: after a crash, both or neither.
            conn.execute("UPDATE audit_index_state SET indexed_through = ? WHERE id = 1", (upto,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return upto, head


def derive(conn: sqlite3.Connection, lo: int, hi: int) -> list[tuple[int, str, int]]:
    """Return the rows the side index must hold for entries lo..hi, in key order (what
    `step` inserts; a reference for checks)."""
    rows = conn.execute(f"SELECT * FROM ({_LEGS}) ORDER BY 1, 2, 3", {"lo": lo, "hi": hi})
    return [(int(col), str(value), int(seq)) for col, value, seq in rows]


def entries_by_ids(
    conn: sqlite3.Connection, column: str, ids: Sequence[str], types: Sequence[str]
) -> list[Any]:
    """Rows of entries whose `column` is one of `ids` and type one of `types`, in seq order
    (in one read transaction: the watermark and both parts see the same snapshot)."""
    marks = ", ".join("?" * len(ids))
    type_marks = ", ".join("?" * len(types))
    conn.execute("BEGIN")
    try:
        through = indexed_through(conn)
        # CROSS JOIN keeps the side index outermost: a few seeks, not a walk of the log.
        indexed = conn.execute(
            f"SELECT {_COLUMNS} FROM audit_index AS i CROSS JOIN audit AS a ON a.seq = i.seq "
            f"WHERE i.col = ? AND i.value IN ({marks}) AND i.seq <= ? "
            f"AND a.type IN ({type_marks})",
            (CODES[column], *ids, through, *types),
        ).fetchall()
        tail = conn.execute(
            f"SELECT {_COLUMNS} FROM audit AS a WHERE a.seq > ? AND a.{column} IN ({marks}) "
            f"AND a.type IN ({type_marks}) ORDER BY a.seq",
            (through, *ids, *types),
        ).fetchall()
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")
    return sorted(indexed, key=lambda row: int(row[0])) + tail
