"""Signed checkpoints in the store (append-only, forward only, never past the head) and the
upgrade of a migration-0002 database to the audit query schema."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff.app.audit.checkpoints import Signer
from signoff.app.audit.desk import AuditDesk
from signoff.core.audit import GENESIS, seal, verify_chain
from signoff.store import AuditQuery, Checkpoint, CheckpointSuperseded, Store
from signoff.store import migrations as migrations_module
from signoff.store.sqlite import audit as sqlite_audit
from tests.store.audit_log import at_minutes, matches, record
from tests.store.conftest import MakeStore, StepClock
from tests.store.helpers import all_entries, in_one_batch


def raw(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "db" / "signoff.db", isolation_level=None)


async def checkpoint_at(store: Store, seq: int, *, minutes: float = 60) -> Checkpoint:
    """A checkpoint of the stored chain head at `seq` (the signature is opaque to the store)."""
    [entry] = await store.read_audit(seq, 1)
    return Checkpoint(
        seq=seq,
        head_hash=entry.hash,
        time=at_minutes(minutes),
        key_id="key-1",
        signature=f"sig-{seq}",
    )


async def test_checkpoints_are_listed_in_order_and_survive_reopening(
    make_store: MakeStore,
) -> None:
    store = await make_store()
    assert await store.last_checkpoint() is None
    assert await store.checkpoints() == []
    await store.append([record(n) for n in range(1, 11)])
    cps = [await checkpoint_at(store, seq, minutes=seq) for seq in (3, 7, 10)]
    for cp in cps:
        await store.add_checkpoint(cp)
    await store.close()

    store = await make_store()
    assert await store.checkpoints() == cps
    assert await store.last_checkpoint() == cps[2]
    assert await store.checkpoints(from_seq=4) == cps[1:]
    assert await store.checkpoints(to_seq=7) == cps[:2]
    assert await store.checkpoints(from_seq=4, to_seq=9) == [cps[1]]
    assert await store.checkpoints(from_seq=11) == []


async def test_checkpoints_that_go_back_pass_the_head_or_sign_another_hash_are_refused(
    store: Store,
) -> None:
    await store.append([record(n) for n in range(1, 6)])
    cp = await checkpoint_at(store, 3)
    await store.add_checkpoint(cp)
    with pytest.raises(ValueError, match="seq 3 must be greater than the last one \\(3\\)"):
        await store.add_checkpoint(cp)
    with pytest.raises(ValueError, match="greater than the last one"):
        await store.add_checkpoint(await checkpoint_at(store, 2))
    with pytest.raises(ValueError, match="seq 6 is past the audit head \\(5\\)"):
        await store.add_checkpoint(dataclasses.replace(cp, seq=6))
    other = dataclasses.replace(await checkpoint_at(store, 4), head_hash=cp.head_hash)
    with pytest.raises(ValueError, match="not the hash of audit entry seq 4"):
        await store.add_checkpoint(other)
    naive = dataclasses.replace(await checkpoint_at(store, 4), time=dt.datetime(2024, 5, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.add_checkpoint(naive)
    assert await store.checkpoints() == [cp]


async def test_a_refused_checkpoint_does_not_fail_the_appends_committed_with_it(
    store: Store,
) -> None:
    await store.append([record(1), record(2)])
    good = await checkpoint_at(store, 2)
    results = await in_one_batch(
        store,
        store.append([record(3)]),
        store.add_checkpoint(dataclasses.replace(good, seq=9)),
        store.add_checkpoint(good),
    )
    assert isinstance(results[1], ValueError)
    assert results[2] is None
    assert [e.seq for e in await all_entries(store)] == [1, 2, 3]
    assert await store.last_checkpoint() == good


async def test_replicas_signing_the_same_head_at_once_store_one_and_supersede_the_rest(
    make_store: MakeStore,
) -> None:
    replicas = [await make_store() for _ in range(3)]  # three stores on one database
    await replicas[0].append([record(n) for n in range(1, 4)])
    cp = await checkpoint_at(replicas[0], 3)
    signed = [dataclasses.replace(cp, signature=f"sig-{i}") for i in range(len(replicas))]
    results = await asyncio.gather(
        *(r.add_checkpoint(c) for r, c in zip(replicas, signed, strict=True)),
        return_exceptions=True,
    )
    superseded = [r for r in results if isinstance(r, CheckpointSuperseded)]
    assert len(superseded) == 2, results  # the others: expected, not a failure
    assert all(r.seq == 3 and r.last >= 3 for r in superseded)
    assert results.count(None) == 1
    assert [c.seq for c in await replicas[1].checkpoints()] == [3]
    # A checkpoint past the head, or over another hash, is still a plain refusal.
    await replicas[0].append([record(4)])
    wrong = dataclasses.replace(await checkpoint_at(replicas[0], 4), head_hash=cp.head_hash)
    with pytest.raises(ValueError, match="not the hash of audit entry seq 4") as refused:
        await replicas[1].add_checkpoint(wrong)
    assert not isinstance(refused.value, CheckpointSuperseded)


class _Racing:
    """A store whose add_checkpoint waits at `barrier`: replicas that checked at one moment."""

    def __init__(self, store: Store, barrier: asyncio.Barrier) -> None:
        self._store, self._barrier = store, barrier

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def add_checkpoint(self, cp: Checkpoint) -> None:
        await self._barrier.wait()
        await self._store.add_checkpoint(cp)


async def test_the_replica_that_lost_the_race_logs_one_debug_event_and_no_error(
    make_store: MakeStore,
) -> None:
    stores = [await make_store() for _ in range(2)]
    await stores[0].append([record(n) for n in range(1, 3)])
    signer = Signer(Ed25519PrivateKey.generate())
    both_due = asyncio.Barrier(2)  # each replica found the head unsigned before either signs
    desks = [AuditDesk(_Racing(s, both_due), StepClock(), signer) for s in stores]  # type: ignore[arg-type]
    logger = logging.getLogger("signoff.audit")
    seen: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = seen.append  # type: ignore[method-assign]
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        made = await asyncio.gather(*(d.checkpoint_if_due(1, dt.timedelta(0)) for d in desks))
        # Once one is stored, a replica that checks later finds nothing due: no race at all.
        assert (
            await AuditDesk(stores[1], StepClock(), signer).checkpoint_if_due(1, dt.timedelta(0))
            is None
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert [c.seq for c in made if c is not None] == [2]
    assert made.count(None) == 1
    events = [(r.getMessage(), r.levelno) for r in seen]
    assert sorted(events) == [
        ("audit.checkpoint", logging.INFO),
        ("audit.checkpoint_by_another", logging.DEBUG),
    ]
    assert all(r.exc_info is None for r in seen)


@pytest.mark.sqlite_only
async def test_the_database_refuses_to_change_delete_or_misplace_checkpoints(
    store: Store, tmp_path: Path
) -> None:
    await store.append([record(n) for n in range(1, 5)])
    await store.append([record(5, time=at_minutes(1))])  # late: a row in audit_time_regressions
    cp = await checkpoint_at(store, 3)
    await store.add_checkpoint(cp)
    with raw(tmp_path) as conn:
        for sql in ("UPDATE checkpoints SET signature = 'forged'", "DELETE FROM checkpoints"):
            with pytest.raises(sqlite3.IntegrityError, match="checkpoints are append-only"):
                conn.execute(sql)
        for seq in (2, 3, 6):  # behind the last checkpoint, or past the head
            with pytest.raises(sqlite3.IntegrityError, match="must follow the last checkpoint"):
                conn.execute(
                    "INSERT INTO checkpoints (seq, head_hash, time, key_id, signature) "
                    "VALUES (?, ?, 't', 'k', 's')",
                    (seq, cp.head_hash),
                )
        for sql in (
            "UPDATE audit_time_regressions SET deficit_us = 1",
            "DELETE FROM audit_time_regressions",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)
    assert await store.checkpoints() == [cp]


@pytest.mark.sqlite_only
async def test_a_database_from_migration_0002_upgrades_in_place(
    make_store: MakeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = migrations_module.load
    with monkeypatch.context() as patch:
        patch.setattr(migrations_module, "load", lambda dialect: full(dialect)[:2])
        await (await make_store()).close()
    # Entries as a 0002 build wrote them (today's writer needs 0003's tables): the upgrade
    # must find the late times of 10, 11, 30 and 31, or time ranges would miss them.
    with raw(tmp_path) as conn:
        prev = GENESIS
        for n in range(1, 41):
            entry = seal(record(n), seq=n, prev_hash=prev)
            row = sqlite_audit.audit_row(entry)
            conn.execute(f"INSERT INTO audit VALUES ({', '.join('?' * len(row))})", row)
            conn.executemany("INSERT INTO audit_rules VALUES (?, ?)", [(r, n) for r in entry.rules])
            prev = entry.hash
    with raw(tmp_path) as conn:
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (2,)

    store = await make_store()
    with raw(tmp_path) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations WHERE version = 3")
        assert rows.fetchall() == [(3, "0003_audit_queries.sql")]
        lagging = conn.execute("SELECT seq FROM audit_time_regressions ORDER BY seq").fetchall()
        assert lagging == [(10,), (11,), (30,), (31,)]
    await store.append([record(n) for n in range(41, 46)])
    entries = await all_entries(store)
    assert verify_chain(entries).ok
    for q in (
        AuditQuery(since=at_minutes(2), until=at_minutes(3)),
        AuditQuery(since=at_minutes(29) - dt.timedelta(microseconds=1), until=at_minutes(29)),
        AuditQuery(request_id="req-21"),
        AuditQuery(until=at_minutes(7)),
    ):
        assert await store.query_audit(q, limit=100) == [e for e in entries if matches(e, q)]
    await store.add_checkpoint(await checkpoint_at(store, 45))
    assert [cp.seq for cp in await store.checkpoints()] == [45]
