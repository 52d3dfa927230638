"""PostgreSQL statements of the audit log's Merkle tree, as sqlite/tree.py."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from psycopg import AsyncConnection

from signoff.core.audit import AuditEntry
from signoff.store.rows import AUDIT_COLUMNS, POSTGRES
from signoff.store.tree import Pending, edge_keys, known

Conn = AsyncConnection[Any]  # as sql.py's (which imports this module)


async def tree_size(conn: Conn) -> int:
    """The number of entries the stored tree holds (its watermark)."""
    cur = await conn.execute("SELECT tree_size FROM audit_tree_state WHERE id = 1")
    return int((await cur.fetchone() or (0,))[0])


async def tree_rows(conn: Conn, keys: Iterable[int]) -> dict[int, bytes]:
    """The stored rows with these keys (key -> concatenated hashes); absent keys are left out."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    cur = await conn.execute(
        "SELECT seq, hashes FROM audit_tree WHERE seq = ANY(%s::bigint[])", (wanted,)
    )
    return {int(seq): bytes(hashes) for seq, hashes in await cur.fetchall()}


async def pending(
    conn: Conn, limit: int, recent: Mapping[int, AuditEntry] | None = None
) -> Pending:
    """The watermark, the right edge's rows and up to `limit` entries after it: those of
    `recent` (this replica's writer committed them) if the rows have their hashes, else
    decoded from the rows."""
    size = await tree_size(conn)  # first: rows up to it and entries never change
    edge = await tree_rows(conn, edge_keys(size))
    if recent:
        cur = await conn.execute(
            "SELECT seq, hash FROM audit WHERE seq > %s ORDER BY seq LIMIT %s", (size, limit)
        )
        heads = [(int(seq), str(h)) for seq, h in await cur.fetchall()]
        if (entries := known(heads, recent)) is not None:
            return Pending(size, edge, entries)
    cur = await conn.execute(
        f"SELECT {AUDIT_COLUMNS} FROM audit WHERE seq > %s ORDER BY seq LIMIT %s", (size, limit)
    )
    return Pending(size, edge, [POSTGRES.entry(row) for row in await cur.fetchall()])


async def write(conn: Conn, old: int, new: int, rows: list[tuple[int, bytes]]) -> bool:
    """Add `rows` and move the watermark from `old` to `new` in one transaction; False,
    writing nothing, if another replica moved it first (its row lock orders the two)."""
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE audit_tree_state SET tree_size = %s WHERE id = 1 AND tree_size = %s",
            (new, old),
        )
        if not cur.rowcount:
            return False
        async with conn.cursor() as c:
            await c.executemany("INSERT INTO audit_tree (seq, hashes) VALUES (%s, %s)", rows)
    return True
