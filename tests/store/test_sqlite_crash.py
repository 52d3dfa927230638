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


# -- ... nor a decision's receipt sealed with its batch --------------------------------------

SEALING_WRITER = """
import asyncio, sys, uuid
from pathlib import Path
import datetime as dt
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from signoff import pb
from signoff.app.receipts import ReceiptIssuer
from signoff.core.audit import AuditRecord
from signoff.ids import SystemClock
from signoff.store import SqliteStore
from signoff.store.base import DecisionRecord
from signoff_client.canonical import action_digest

async def main():
    key = load_pem_private_key(Path(sys.argv[2]).read_bytes(), None)
    issuer = ReceiptIssuer(key, dt.timedelta(days=1))
    store = SqliteStore(Path(sys.argv[1]), SystemClock())
    store.use_sealer(issuer.seal)
    await store.open()
    clock, n = SystemClock(), 0

    def decision(i):
        now = clock.now()
        d = pb.common.Decision(decision_id=uuid.uuid4().hex, request_id=f"r{i}",
                               outcome=pb.common.OUTCOME_AUTO_ALLOW)
        d.evaluated_at.FromDatetime(now)
        leaf = issuer.document(version=2, decision_id=d.decision_id, review_id="",
            digest=action_digest("x.do", {"n": i}, {"id": "bot"}), redacted_paths=[],
            outcome="AUTO_ALLOW", approvers=[], issued_at=now)
        rec = DecisionRecord(decision_id=d.decision_id, principal_id="bot", request_id=f"r{i}",
            request_digest=f"{i:064x}", action_name="x.do", outcome="OUTCOME_AUTO_ALLOW",
            created_at=now, decision=d.SerializeToString(), receipt_leaf=leaf)
        audit = AuditRecord(type="decision", time=now, decision_id=d.decision_id,
                            request_id=f"r{i}", action_name="x.do", outcome="AUTO_ALLOW")
        return store.record_decision(rec, audit)

    while True:
        batch = range(n, n + 48)  # dozens per group commit
        n += 48
        for i, (stored, _) in zip(batch, await asyncio.gather(*map(decision, batch))):
            print(i, stored.decision.hex(), flush=True)

asyncio.run(main())
"""


async def test_killed_writer_loses_no_acknowledged_receipt(tmp_path: Path, clock: Clock) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from signoff import pb
    from signoff_client import receipts

    key = Ed25519PrivateKey.generate()
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path = tmp_path / "signoff.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SEALING_WRITER, str(path), str(key_file),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    acked: dict[int, bytes] = {}
    try:
        while len(acked) < 500:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
            assert line, "writer exited early"
            i, data = line.split()
            acked[int(i)] = bytes.fromhex(data.decode())
    finally:
        proc.kill()
        await proc.wait()
    for line in (await proc.stdout.read()).splitlines():
        if len(parts := line.split()) == 2 and not len(parts[1]) % 2:
            acked[int(parts[0])] = bytes.fromhex(parts[1].decode())

    store = SqliteStore(path, clock)
    await store.open()
    try:
        assert verify_chain(await store.read_audit(1, 1_000_000)).ok
        sizes = set()
        for i, data in acked.items():
            found = await store.find_decision("bot", f"r{i}")
            assert found is not None
            assert found.decision == data
            receipt = pb.common.Decision.FromString(data).receipt
            action = {"action": "x.do", "params": {"n": i}, "principal": "bot"}
            receipts.verify(receipt, key.public_key(), action)
            sizes.add(receipt.tree_size)
    finally:
        await store.close()
    # Each round's 48 writes are queued before the writer takes a batch: one tree each.
    assert sizes == {48}
