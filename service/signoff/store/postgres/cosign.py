"""PostgreSQL statements for witness co-signatures (checks and rows: store/cosignatures.py)."""

from __future__ import annotations

from signoff.core.witness import Cosignature
from signoff.store import cosignatures as cosig
from signoff.store.postgres.sql import Conn, aware
from signoff.store.rows import CHECKPOINT_COLUMNS, POSTGRES, utc


async def insert(conn: Conn, seq: int, cs: Cosignature) -> int:
    """Store `cs` for the checkpoint at `seq` (checked first); return how many it carries."""
    # Two witnesses adding at once count one after the other. A transaction advisory lock,
    # not SELECT ... FOR UPDATE: a row lock needs UPDATE privilege on checkpoints, which the
    # least-privilege service role (docs/operators.md) does not have.
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.cosign'), %s::int4)",
        (seq % 2**31,),
    )
    cur = await conn.execute(f"SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE seq = %s", (seq,))
    row = await cur.fetchone()
    cur = await conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE key_id = %s) FROM cosignatures WHERE seq = %s",
        (cs.key_id, seq),
    )
    count, mine = await cur.fetchone() or (0, 0)
    if mine:
        return int(count)  # this witness co-signed it already: the first one stays
    if err := cosig.problem(seq, None if row is None else POSTGRES.checkpoint(row), cs, count):
        raise err
    await conn.execute(
        f"INSERT INTO cosignatures ({cosig.COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (seq, key_id) DO NOTHING",
        cosig.values(seq, cs, aware(cs.time)),
    )
    return int(count) + 1


async def select(conn: Conn, from_seq: int, to_seq: int) -> dict[int, list[Cosignature]]:
    """The co-signatures of the checkpoints with from_seq <= seq <= to_seq (0 = no bound)."""
    cur = await conn.execute(
        f"SELECT {cosig.COLUMNS} FROM cosignatures "
        "WHERE seq >= %s AND (%s = 0 OR seq <= %s) ORDER BY seq, key_id",
        (max(from_seq, 0), max(to_seq, 0), to_seq),
    )
    return cosig.grouped(await cur.fetchall(), utc)
