"""A SIGKILLed writer loses nothing it acknowledged, and leaves a chain that verifies and a side
index that holds exactly the entries up to its watermark (and catches up)."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

from signoff.core.audit import verify_chain
from signoff.ids import Clock
from signoff.store import SqliteStore
from signoff.store.sqlite import audit_index
from tests.store.test_audit_side_index import check_side_index

# -- a killed process loses nothing it acknowledged -----------------------------------------

WRITER = """
import asyncio, sys
from pathlib import Path
from signoff.core.audit import AuditRecord
from signoff.ids import SystemClock
from signoff.store import SqliteStore
from signoff.store.sqlite import audit_index
from tests.store.test_audit_side_index import check_side_index

async def main():
    # The side index steps every 64 entries: the kill may land in one of its steps.
    store = SqliteStore(Path(sys.argv[1]), SystemClock(), index_every=64)
    await store.open()
    clock, n = SystemClock(), 0
    while True:
        recs = [AuditRecord(type="policy.loaded", time=clock.now(), payload={"n": n + i})
                for i in range(16)]
        n += 16
        for entries in await asyncio.gather(*(store.append([r]) for r in recs)):
            print(entries[0].seq, entries[0].hash, flush=True)

asyncio.run(main())
"""


async def test_killed_writer_loses_no_acknowledged_entry(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "signoff.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(path), stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    acked: dict[int, str] = {}
    try:
        while len(acked) < 500:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
            assert line, "writer exited early"
            seq, digest = line.split()
            acked[int(seq)] = digest.decode()
    finally:
        proc.kill()
        await proc.wait()
    # Lines printed before the kill but not read yet were acknowledged too.
    for line in (await proc.stdout.read()).splitlines():
        if len(parts := line.split()) == 2 and len(parts[1]) == 64:
            acked[int(parts[0])] = parts[1].decode()

    # As the kill left it: the side index is entries 1..watermark, nothing more or less.
    with closing(sqlite3.connect(path)) as conn:
        through = audit_index.indexed_through(conn)
        held = conn.execute("SELECT col, value, seq FROM audit_index ORDER BY 1, 2, 3")
        assert [tuple(r) for r in held] == audit_index.derive(conn, 1, through)
    store = SqliteStore(path, clock, index_every=10**9, index_idle=None)
    await store.open()
    try:
        entries = await store.read_audit(1, 1_000_000)
        assert await store.index_audit() == len(entries)
        assert await check_side_index(store) == len(entries)
    finally:
        await store.close()
    assert verify_chain(entries).ok
    stored = {e.seq: e.hash for e in entries}
    assert all(stored.get(seq) == digest for seq, digest in acked.items())
