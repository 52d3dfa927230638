"""SQLite statements for witness co-signatures (checks and rows: store/cosignatures.py)."""

from __future__ import annotations

import sqlite3

from signoff.core.audit import format_time, parse_time
from signoff.core.witness import Cosignature
from signoff.store import cosignatures as cosig
from signoff.store.rows import CHECKPOINT_COLUMNS, SQLITE
from signoff.store.sqlite.audit import MAX_SEQ


def insert(conn: sqlite3.Connection, seq: int, cs: Cosignature) -> int:
    """Store `cs` for the checkpoint at `seq` (checked first); return how many it carries."""
    row = conn.execute(
        f"SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE seq = ?", (seq,)
    ).fetchone()
    count = conn.execute("SELECT count(*) FROM cosignatures WHERE seq = ?", (seq,)).fetchone()[0]
    known = conn.execute(
        "SELECT 1 FROM cosignatures WHERE seq = ? AND key_id = ?", (seq, cs.key_id)
    ).fetchone()
    if known is not None:
        return int(count)  # this witness co-signed it already: the first one stays
    if err := cosig.problem(seq, None if row is None else SQLITE.checkpoint(row), cs, count):
        raise err
    conn.execute(
        f"INSERT INTO cosignatures ({cosig.COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        cosig.values(seq, cs, format_time(cs.time)),
    )
    return int(count) + 1


def select(conn: sqlite3.Connection, from_seq: int, to_seq: int) -> dict[int, list[Cosignature]]:
    """The co-signatures of the checkpoints with from_seq <= seq <= to_seq (0 = no bound)."""
    rows = conn.execute(
        f"SELECT {cosig.COLUMNS} FROM cosignatures WHERE seq >= ? AND seq <= ? "
        "ORDER BY seq, key_id",
        (max(from_seq, 0), to_seq if to_seq > 0 else MAX_SEQ),
    ).fetchall()
    return cosig.grouped(rows, parse_time)
