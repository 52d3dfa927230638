"""SQLite statements for audit entries and checkpoints: inserts, lookups (rows: rows.py).

Functions here run on a connection the caller owns (the writer's transaction or a reader);
`SqliteStore` decides where they run. Queries for auditors are in audit_query.py, their side index
in audit_index.py; the schema is in migrations/sqlite/ (0001, 0003, 0007).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from signoff.core.audit import GENESIS, AuditEntry, format_time, parse_time
from signoff.errors import FailedPrecondition
from signoff.store.base import Checkpoint, CheckpointSuperseded
from signoff.store.rows import AUDIT_COLUMNS, AUDIT_FIELDS, CHECKPOINT_COLUMNS, SQLITE
from signoff.store.sqlite import tree as tree_sql
from signoff.store.tree import edge_keys, tree_head_problem

_INSERT = f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES ({', '.join('?' * len(AUDIT_FIELDS))})"
_MICROSECOND = dt.timedelta(microseconds=1)
MAX_SEQ = 2**63 - 1  # SQLite's largest integer: "no upper bound" in a BETWEEN


def read_head(conn: sqlite3.Connection) -> tuple[int, str]:
    """Return the last committed (seq, hash), or (0, GENESIS) when the log is empty."""
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))


def high_water(conn: sqlite3.Connection) -> str:
    """Return the latest time of any entry ("" when the log is empty)."""
    # No time index on the write path (migration 0007): the running maximum is the time of
    # the last entry that raised it, i.e. the last one that is not a time regression --
    # usually the head itself, a seek or two back from the end of the seq key.
    row = conn.execute(
        "SELECT a.time FROM audit AS a WHERE NOT EXISTS "
        "(SELECT 1 FROM audit_time_regressions AS r WHERE r.seq = a.seq) "
        "ORDER BY a.seq DESC LIMIT 1"
    ).fetchone()
    return "" if row is None else str(row[0])


def insert(
    conn: sqlite3.Connection, entry: AuditEntry, head: tuple[int, str], high_water: str
) -> str:
    """Insert `entry` (and its matched rules) if it extends `head`, the (seq, hash) of the
    last entry in this transaction; return the new high-water time."""
    # The chain's link is checked here, in the one function that inserts entries, rather
    # than by a trigger on every row: that trigger made each INSERT keep a statement journal
    # of the dozen B-trees an entry touches (migration 0006). `head` is read inside the
    # write transaction, under the write lock, so it is the committed head.
    seq, prev = head
    if entry.seq != seq + 1 or entry.prev_hash != prev:
        raise FailedPrecondition(
            f"audit log: entry seq {entry.seq} does not extend the chain head (seq {seq})",
            current_state=str(seq),
        )
    row = audit_row(entry)
    conn.execute(_INSERT, row)
    if entry.rules:
        conn.executemany(
            "INSERT OR IGNORE INTO audit_rules (rule, seq) VALUES (?, ?)",
            [(rule, entry.seq) for rule in entry.rules],
        )
    time = row[1]
    if time >= high_water:  # fixed-width UTC text: text order is time order
        return str(time)
    lag = parse_time(high_water) - entry.time
    conn.execute(
        "INSERT INTO audit_time_regressions (seq, deficit_us) VALUES (?, ?)",
        (entry.seq, lag // _MICROSECOND),
    )
    return high_water


def audit_row(e: AuditEntry) -> tuple[Any, ...]:
    """Return the row of `e` in `AUDIT_FIELDS` order."""
    # The time and rules as the record encoded them for its hash: the same texts, made once.
    return (
        *(e.seq, e.time_text, e.type, e.actor, e.request_id, e.decision_id),
        *(e.review_id, e.action_name, e.outcome, e.principal, e.reviewer, e.reviewer_group),
        *(e.review_state, e.rules_json, e.policy_version, e.payload_json),
        *(e.prev_hash, e.hash),
    )


def insert_checkpoint(conn: sqlite3.Connection, cp: Checkpoint) -> None:
    """Insert `cp` after checking it moves forward and signs the stored chain head at its seq."""
    last = conn.execute("SELECT coalesce(max(seq), 0) FROM checkpoints").fetchone()[0]
    if cp.seq <= last:
        raise CheckpointSuperseded(cp.seq, last)
    found = conn.execute("SELECT hash FROM audit WHERE seq = ?", (cp.seq,)).fetchone()
    if found is None:
        head, _ = read_head(conn)
        raise ValueError(f"checkpoint seq {cp.seq} is past the audit head ({head})")
    if found[0] != cp.head_hash:
        # A signature over a hash the log does not hold would be a false statement.
        raise ValueError(f"checkpoint head_hash is not the hash of audit entry seq {cp.seq}")
    if cp.root_hash:
        built = tree_sql.tree_size(conn)
        edge = tree_sql.tree_rows(conn, edge_keys(cp.tree_size))
        if problem := tree_head_problem(cp.tree_size, cp.root_hash, built, edge):
            raise ValueError(problem)
    conn.execute(
        f"INSERT INTO checkpoints ({CHECKPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            cp.seq,
            cp.head_hash,
            format_time(cp.time),
            cp.key_id,
            cp.signature,
            cp.tree_size,
            cp.root_hash,
        ),
    )


def checkpoints(conn: sqlite3.Connection, from_seq: int, to_seq: int) -> list[Checkpoint]:
    """Return the checkpoints with from_seq <= seq <= to_seq (0 = no bound), ascending."""
    rows = conn.execute(
        f"SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE seq >= ? AND seq <= ? ORDER BY seq",
        (max(from_seq, 0), to_seq if to_seq > 0 else MAX_SEQ),
    )
    return [SQLITE.checkpoint(row) for row in rows]


def last_checkpoint(conn: sqlite3.Connection) -> Checkpoint | None:
    """Return the checkpoint with the highest seq, if any."""
    row = conn.execute(
        f"SELECT {CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    return None if row is None else SQLITE.checkpoint(row)
