"""The audit log's Merkle tree in the store (store/tree.py): built off the commit path up to
a watermark, exactly RFC 9162's tree over the entries' canonical bytes, append-only, built for
a log written before it existed, and what version 2 checkpoints may sign over it."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff import pb
from signoff.app.audit.checkpoints import Signer
from signoff.app.audit.desk import AuditDesk
from signoff.auth.identity import Identity
from signoff.core import log_tree
from signoff.core.audit import GENESIS, AuditEntry, seal
from signoff.core.merkle import leaf_hash
from signoff.errors import InvalidArgument, Unavailable
from signoff.export import export_lines, verify_export
from signoff.ids import Clock
from signoff.store import Checkpoint, SqliteStore, Store
from signoff.store import migrations as migrations_mod
from signoff.store import tree as tree_mod
from signoff.store.sqlite import audit as audit_sql
from signoff_client import merkle as client_merkle
from tests.store.audit_log import at_minutes, record
from tests.store.conftest import MakeStore
from tests.store.helpers import all_entries


def leaves(entries: list[AuditEntry]) -> list[bytes]:
    """The leaf hashes, computed here from the entries' canonical bytes."""
    out = []
    for e in entries:
        data = log_tree.leaf_bytes(e)
        assert data is not None
        out.append(leaf_hash(data))
    return out


def root_of(hashes: list[bytes]) -> bytes:
    frontier = log_tree.Frontier()
    for h in hashes:
        frontier.append(h)
    return frontier.root()


async def quiet(make_store: MakeStore) -> Store:
    """A store whose tree moves only when a test builds it: no step on a timer, and the
    background catch-up of opening already over."""
    store = await make_store(tree_idle=None)
    await asyncio.wait_for(store._tree.caught_up.wait(), 60)  # type: ignore[attr-defined]
    return store


async def read_nodes(store: Store, ranges: list[log_tree.Range]) -> list[bytes]:
    nodes = log_tree.needed(ranges)
    rows = await store.tree_rows([log_tree.row_key(n) for n in nodes])
    return log_tree.hashes(ranges, log_tree.from_rows(nodes, rows))


async def test_the_tree_is_built_off_the_commit_path_up_to_its_watermark(
    make_store: MakeStore,
) -> None:
    # No background step: whatever the writer commits, the tree stays where it was ...
    store = await quiet(make_store)
    await store.build_tree()
    await store.append([record(n) for n in range(1, 31)])
    assert await store.tree_size() == 0
    assert await store.tree_rows([1, 2, 30]) == {}
    # ... until a step builds it: exactly the entries committed, no more.
    assert await store.build_tree() == 30
    assert await store.tree_size() == 30
    assert await store.build_tree() == 30  # idempotent
    await store.append([record(n) for n in range(31, 38)])
    assert await store.build_tree() == 37


async def test_the_stored_tree_is_the_rfc_tree_of_the_entries(make_store: MakeStore) -> None:
    store = await quiet(make_store)
    for start in range(1, 101, 9):  # several batches, several steps
        await store.append([record(n) for n in range(start, start + 9)])
        await store.build_tree()
    entries = await all_entries(store)
    n = len(entries)
    hashes = leaves(entries)
    for size in (1, 2, 3, 7, 8, 64, 65, n):
        assert (await read_nodes(store, [(0, size)]))[0] == root_of(hashes[:size])
    root = root_of(hashes)
    for index in (0, 1, 50, n - 1):
        proof = await read_nodes(store, log_tree.inclusion_ranges(index, n))
        client_merkle.verify_inclusion(hashes[index], index, n, proof, root)
        assert len(proof) <= n.bit_length()
    for first in (1, 3, 8, 50, n - 1, n):
        proof = await read_nodes(store, log_tree.consistency_ranges(first, n))
        client_merkle.verify_consistency(first, n, proof, root_of(hashes[:first]), root)


async def test_racing_builders_build_one_tree(make_store: MakeStore) -> None:
    # Two stores on one database (replicas, for PostgreSQL) each step through the same
    # entries: one moves the watermark, the other's step writes nothing, and both end at
    # the head with no duplicate row.
    one = await quiet(make_store)
    await one.append([record(n) for n in range(1, 60)])
    await one.close()
    a, b = await quiet(make_store), await quiet(make_store)
    sizes = await asyncio.gather(a.build_tree(), b.build_tree(), a.build_tree())
    assert max(sizes) == 59
    assert await b.build_tree() == 59
    hashes = leaves(await all_entries(b))
    assert (await read_nodes(b, [(0, 59)]))[0] == root_of(hashes)


async def test_a_version_2_checkpoint_signs_only_the_stored_tree(make_store: MakeStore) -> None:
    store = await quiet(make_store)
    await store.append([record(n) for n in range(1, 11)])
    [e10] = await store.read_audit(10, 1)
    root = root_of(leaves(await all_entries(store)))
    cp = Checkpoint(
        seq=10,
        head_hash=e10.hash,
        time=at_minutes(60),
        key_id="key-1",
        signature="sig",
        tree_size=10,
        root_hash=root.hex(),
    )
    with pytest.raises(ValueError, match="signs a tree of 10 entries but only 0 are built"):
        await store.add_checkpoint(cp)
    await store.build_tree()
    wrong = dataclasses.replace(cp, root_hash="ab" * 32)
    with pytest.raises(ValueError, match="root_hash is not the root of the stored tree of size"):
        await store.add_checkpoint(wrong)
    await store.add_checkpoint(cp)
    assert await store.last_checkpoint() == cp
    assert cp.version == 2


@pytest.mark.sqlite_only
async def test_the_tree_is_append_only(tmp_path: Path, clock: Clock) -> None:
    store = SqliteStore(tmp_path / "a.db", clock, tree_idle=None)
    await store.open()
    try:
        await store.append([record(n) for n in range(1, 5)])
        await store.build_tree()
    finally:
        await store.close()
    conn = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    for sql, message in (
        ("UPDATE audit_tree SET hashes = zeroblob(32)", "append-only: UPDATE refused"),
        ("DELETE FROM audit_tree", "append-only: DELETE refused"),
        ("UPDATE audit_tree_state SET tree_size = 1", "only grows"),
    ):
        with pytest.raises(sqlite3.IntegrityError, match=message):
            conn.execute(sql)
    conn.execute("UPDATE audit_tree_state SET tree_size = 4")  # the same size: allowed
    conn.close()


@pytest.mark.sqlite_only
async def test_an_altered_entry_stops_the_tree_before_it(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "a.db"
    store = SqliteStore(path, clock, tree_idle=None)
    await store.open()
    await store.append([record(n) for n in range(1, 6)])
    await store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER audit_no_update")  # whoever can write the file can do this
    conn.execute("UPDATE audit SET payload = '{\"n\":400}' WHERE seq = 4")
    conn.close()
    caplog.set_level(logging.ERROR, logger="signoff.store")
    store = SqliteStore(path, clock, tree_idle=None)
    await store.open()
    try:
        assert await store.build_tree() == 3
        assert "entry seq 4 does not hash to its chain hash" in caplog.text
    finally:
        await store.close()


def old_database(path: Path, version: int, entries: int) -> None:
    """A database at migration `version` holding `entries` entries, as that build wrote it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "CREATE TABLE schema_migrations ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    for number, name, sql in migrations_mod.load("sqlite")[:version]:
        for statement in migrations_mod.sqlite_statements(sql):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (number, name, "2026-01-01"))
    head, high_water = (0, GENESIS), ""
    conn.execute("BEGIN")
    for n in range(1, entries + 1):
        entry = seal(record(n), seq=head[0] + 1, prev_hash=head[1])
        high_water = audit_sql.insert(conn, entry, head, high_water)
        head = (entry.seq, entry.hash)
    # A version 1 checkpoint, as stored before the tree (its signature is opaque here).
    conn.execute(
        "INSERT INTO checkpoints VALUES (?, ?, ?, 'key-1', 'sig')",
        (head[0], head[1], "2026-01-01T00:00:00.000000Z"),
    )
    conn.execute("COMMIT")
    conn.close()


@pytest.mark.sqlite_only
async def test_a_log_written_before_the_tree_gets_it_built_when_opened(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "old.db"
    old_database(path, 7, 450)
    monkeypatch.setattr(tree_mod, "_PROGRESS_EVERY", 0.0)  # a progress line per step
    caplog.set_level(logging.INFO, logger="signoff.store")
    # Steps of 100 entries: several, as for a big log.
    store = SqliteStore(path, clock, tree_idle=None, tree_chunk=100)
    await store.open()
    try:
        await asyncio.wait_for(store._tree.caught_up.wait(), 60)  # the background catch-up
        assert await store.tree_size() == 450
        hashes = leaves(await all_entries(store))
        assert (await read_nodes(store, [(0, 450)]))[0] == root_of(hashes)
        [cp] = await store.checkpoints()
        assert (cp.version, cp.tree_size, cp.root_hash) == (1, 0, "")
        progress = [r.getMessage() for r in caplog.records if "audit tree" in r.getMessage()]
        assert any("entries built" in line for line in progress), progress
        assert progress[-1] == "audit tree: caught up at seq 450"
    finally:
        await store.close()


async def test_proofs_wait_for_a_signed_tree_head(make_store: MakeStore, clock: Clock) -> None:
    store = await quiet(make_store)
    await store.append([record(n) for n in range(1, 6)])
    desk = AuditDesk(store, clock, Signer(Ed25519PrivateKey.generate()))
    auditor = Identity("ann", frozenset({"auditor"}))
    req = pb.audit.GetInclusionProofRequest(seq=1, tree_size=5)
    with pytest.raises(InvalidArgument, match="no checkpoint signs a tree head yet"):
        await desk.inclusion_proof(auditor, req)
    cp = await desk.checkpoint_if_due(1, dt.timedelta(0))
    assert cp is not None
    assert (cp.seq, cp.tree_size, cp.version) == (5, 5, 2)
    resp = await desk.inclusion_proof(auditor, req)
    assert resp.root_hash == cp.root_hash


async def test_a_database_at_the_previous_migration_gets_its_tree_on_upgrade(
    make_store: MakeStore, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The log is written by a store that knows the migrations before the tree's only.
    real = migrations_mod.load
    before_tree = {"sqlite": 7, "postgres": 3}[backend]
    monkeypatch.setattr(migrations_mod, "load", lambda dialect: real(dialect)[:before_tree])
    old = await quiet(make_store)
    await old.append([record(n) for n in range(1, 41)])
    with pytest.raises(Unavailable):  # no tree at that level
        await old.tree_size()
    await old.close()
    monkeypatch.setattr(migrations_mod, "load", real)
    store = await quiet(make_store)
    assert await store.build_tree() == 40
    hashes = leaves(await all_entries(store))
    assert (await read_nodes(store, [(0, 40)]))[0] == root_of(hashes)


async def test_an_entry_kept_from_a_rolled_back_batch_is_not_taken_for_the_committed_one(
    make_store: MakeStore,
) -> None:
    # The writer hands the builder the entries it sealed; the builder takes them only if
    # the committed rows have their hashes, and decodes the rows otherwise.
    store = await quiet(make_store)
    await store.append([record(n) for n in range(1, 9)])
    [e5] = await store.read_audit(5, 1)
    store._tree.appended(seal(record(500), seq=6, prev_hash=e5.hash))  # type: ignore[attr-defined]
    assert await store.build_tree() == 8
    hashes = leaves(await all_entries(store))
    assert (await read_nodes(store, [(0, 8)]))[0] == root_of(hashes)
    # And the ones it handed over are taken as they are: a tree over them is the same.
    await store.append([record(n) for n in range(9, 30)])
    assert len(store._tree._recent) >= 21  # type: ignore[attr-defined]
    assert await store.build_tree() == 29
    hashes = leaves(await all_entries(store))
    assert (await read_nodes(store, [(0, 29)]))[0] == root_of(hashes)


DATA = Path(__file__).parent / "data"
FIXTURE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


@pytest.mark.sqlite_only
async def test_a_database_and_an_export_made_before_the_tree_keep_verifying(
    tmp_path: Path, clock: Clock
) -> None:
    # Made by signoff before migration 0008 (the commit before the tree): 15 entries, version
    # 1 checkpoints at 5, 10 and 15 signed with FIXTURE_KEY, and their export.
    path = tmp_path / "v1.db"
    path.write_bytes((DATA / "audit_v1_checkpoints.db").read_bytes())
    old_export = (DATA / "audit_v1_export.jsonl").read_bytes().splitlines(keepends=True)
    report = verify_export(iter(old_export), FIXTURE_KEY.public_key())
    assert report.ok, report
    assert (report.checkpoints_verified, report.tree_heads_verified) == (3, 0)

    store = SqliteStore(path, clock, tree_idle=None)
    await store.open()
    try:
        assert await store.build_tree() == 15
        desk = AuditDesk(store, clock, Signer(FIXTURE_KEY))
        auditor = Identity("ann", frozenset({"auditor"}))
        resp = await desk.verify(auditor, pb.audit.VerifyAuditRequest())
        assert resp.ok, resp
        assert resp.checkpoints_verified == 3
        # The log goes on; its first version 2 checkpoint signs the tree of all 17 entries.
        await store.append([record(1), record(2)])
        clock.advance(hours=1)
        cp = await desk.checkpoint_if_due(1, dt.timedelta(0))
        assert cp is not None
        assert (cp.version, cp.tree_size) == (2, 17)
        resp = await desk.verify(auditor, pb.audit.VerifyAuditRequest())
        assert resp.ok, resp
        assert resp.checkpoints_verified == 4
        entries = await all_entries(store)
        lines = export_lines(
            entries, await store.checkpoints(), FIXTURE_KEY, filtered=False, now=clock.now
        )
        report = verify_export(lines, FIXTURE_KEY.public_key())
        assert report.ok, report
        assert (report.checkpoints_verified, report.tree_heads_verified) == (4, 1)
        # An entry of the old log is proven in the new signed tree.
        proof = await desk.inclusion_proof(
            auditor, pb.audit.GetInclusionProofRequest(seq=3, tree_size=17)
        )
        leaf = log_tree.entry_leaf_hash(entries[2])
        assert leaf is not None
        client_merkle.verify_inclusion(leaf, 2, 17, list(proof.proof), bytes.fromhex(cp.root_hash))
    finally:
        await store.close()
