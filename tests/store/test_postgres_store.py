"""PostgreSQL specifics: migrations under concurrent starts, database-enforced append-only
and review rules, one audit chain across replicas, connection loss, tamper evidence.

The behavioural suite (every test taking `store` / `make_store`) also runs on PostgreSQL;
these are the counterparts of the SQLite-only tests that poke at the database directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import urllib.parse
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff.app.audit.checkpoints import Signer
from signoff.app.audit.desk import AuditDesk
from signoff.auth.identity import Identity
from signoff.core.audit import AuditRecord, verify_chain
from signoff.errors import FailedPrecondition, Unavailable
from signoff.ids import Clock
from signoff.store import AuditQuery, ReviewRecord, Store
from signoff.store.migrations import load
from signoff.store.postgres.store import PostgresStore
from tests.store.audit_log import at_minutes, record
from tests.store.conftest import MakeStore
from tests.store.helpers import all_entries
from tests.store.reviews import change_audit, changed, open_review, opening
from tests.store.test_cosignatures import request as cosign_request

pytestmark = pytest.mark.postgres_only


def raw(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


def loaded(n: int, replica: int = 0) -> AuditRecord:
    return AuditRecord(
        type="policy.loaded", time=at_minutes(n), policy_version=f"v{n}", payload={"r": replica}
    )


async def test_replicas_starting_together_migrate_once(make_store: MakeStore, pg_url: str) -> None:
    stores = await asyncio.gather(*(make_store() for _ in range(4)))
    await stores[0].append([loaded(1)])
    assert len(await all_entries(stores[3])) == 1
    with raw(pg_url) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        assert rows.fetchall() == [(v, name) for v, name, _ in load("postgres")]


async def test_newer_schema_is_refused_with_a_clear_message(
    make_store: MakeStore, pg_url: str
) -> None:
    await (await make_store()).close()
    with raw(pg_url) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, '0999_future.sql', 'x')")
    with pytest.raises(FailedPrecondition, match="schema version 999 is newer than"):
        await make_store()


async def test_an_unreachable_server_is_unavailable(clock: Clock) -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test", clock, connect_timeout=2)
    with pytest.raises(Unavailable, match="audit store unavailable: "):
        await store.open()
    await store.close()


async def test_the_database_refuses_to_rewrite_history(store: Store, pg_url: str) -> None:
    await store.append([record(n) for n in range(1, 5)])  # entries with matched rules
    [e3] = await store.read_audit(3, 1)
    r = await open_review(store, 1)
    resolved = await open_review(store, 2)
    await store.update_review(changed(resolved), 1, [change_audit(changed(resolved))])
    cp_time = at_minutes(60)
    with raw(pg_url) as conn:
        conn.execute("INSERT INTO checkpoints VALUES (3, %s, %s, 'k', 's')", (e3.hash, cp_time))
        refused = [
            ("UPDATE audit SET actor = 'x'", "audit log is append-only: UPDATE refused"),
            ("DELETE FROM audit", "audit log is append-only: DELETE refused"),
            ("TRUNCATE audit CASCADE", "audit log is append-only: TRUNCATE refused"),
            ("UPDATE audit_rules SET rule = 'x'", "append-only: UPDATE refused"),
            ("DELETE FROM audit_rules", "append-only: DELETE refused"),
            ("UPDATE checkpoints SET signature = 'forged'", "checkpoints are append-only"),
            ("DELETE FROM checkpoints", "checkpoints are append-only"),
            ("INSERT INTO checkpoints VALUES (2, repeat('0', 64), now(), 'k', 's')", "follow"),
            ("INSERT INTO checkpoints VALUES (99, repeat('0', 64), now(), 'k', 's')", "follow"),
            (
                "INSERT INTO audit SELECT seq + 100, time, type, actor, request_id, decision_id, "
                "review_id, action_name, outcome, principal, reviewer, reviewer_group, "
                "review_state, rules, policy_version, payload, prev_hash, hash "
                "FROM audit WHERE seq = 1",
                "does not extend the chain head",
            ),
            (
                "UPDATE reviews SET state = 'PENDING', version = 3 WHERE review_id = 'rev-2'",
                "resolved and immutable",
            ),
            ("UPDATE reviews SET version = version + 2 WHERE review_id = 'rev-1'", "exactly 1"),
            (
                "UPDATE reviews SET principal_id = 'x', version = 2 WHERE review_id = 'rev-1'",
                "identity columns are fixed",
            ),
            (
                "UPDATE reviews SET state = 'DONE', version = 2 WHERE review_id = 'rev-1'",
                "check constraint",
            ),
            ("DELETE FROM reviews WHERE review_id = 'rev-1'", "reviews are never deleted"),
        ]
        for sql, message in refused:
            with pytest.raises(psycopg.errors.IntegrityError, match=message):
                conn.execute(sql)  # type: ignore[arg-type]
    assert verify_chain(await all_entries(store)).ok
    assert await store.get_review("rev-1") == r
    assert [cp.seq for cp in await store.checkpoints()] == [3]


async def test_replicas_append_to_one_gap_free_chain(make_store: MakeStore) -> None:
    replicas = [await make_store() for _ in range(3)]
    per_replica = 300

    async def load_from(i: int, store: Store) -> list[Any]:
        calls = [store.append([loaded(n, i)]) for n in range(per_replica)]
        return await asyncio.gather(*calls)

    acks = await asyncio.gather(*(load_from(i, s) for i, s in enumerate(replicas)))
    entries = await all_entries(replicas[1])
    assert [e.seq for e in entries] == list(range(1, 3 * per_replica + 1))
    assert verify_chain(entries).ok
    acknowledged = {e.seq: e for batch in acks for (e,) in batch}
    assert acknowledged == {e.seq: e for e in entries}  # every ack is stored, as acknowledged
    # Group commit within each replica still holds.
    assert all(s.stats.commits < per_replica / 5 for s in replicas)  # type: ignore[attr-defined]


async def test_racing_duplicates_on_two_replicas_store_one_decision(make_store: MakeStore) -> None:
    a, b = await make_store(), await make_store()
    copies = [opening(i, request_id="req-x") for i in range(10)]
    results = await asyncio.gather(
        *(
            (a if i % 2 else b).record_decision(c.decision, c.audit, c.review, c.review_audit)
            for i, c in enumerate(copies)
        )
    )
    assert [replayed for _, replayed in results].count(False) == 1
    assert len({rec for rec, _ in results}) == 1
    assert [e.type for e in await all_entries(a)] == ["decision", "review.opened"]


async def test_review_races_across_replicas_have_exactly_one_winner(
    make_store: MakeStore,
) -> None:
    replicas = [await make_store() for _ in range(3)]
    rng = random.Random("replicas")
    for n in range(20):
        r = await open_review(replicas[n % 3], n)
        attempts = [changed(r, rng.choice(["APPROVED", "REJECTED"])) for _ in range(6)]
        results = await asyncio.gather(
            *(
                replicas[i % 3].update_review(x, 1, [change_audit(x, f"reviewer-{i}")])
                for i, x in enumerate(attempts)
            ),
            return_exceptions=True,
        )
        winners = [x for x in results if isinstance(x, ReviewRecord)]
        assert len(winners) == 1, results
        losers = [x for x in results if not isinstance(x, ReviewRecord)]
        assert all(isinstance(x, FailedPrecondition) for x in losers), losers
        assert await replicas[2].get_review(r.review_id) == winners[0]
    assert verify_chain(await all_entries(replicas[0])).ok


async def test_killed_connections_fail_with_unavailable_and_the_store_recovers(
    store: Store, pg_url: str
) -> None:
    before = await store.append([loaded(1)])

    def kill_all() -> int:
        # Only this test's connections: they carry its schema as application_name.
        with raw(pg_url) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = current_setting('application_name') "
                "AND pid <> pg_backend_pid()"
            ).fetchall()
            return len(rows)

    outcomes: list[Any] = []
    for round_ in range(5):
        await asyncio.to_thread(kill_all)
        outcomes += await asyncio.gather(
            *(store.append([loaded(10 * round_ + i)]) for i in range(5)), return_exceptions=True
        )
    failed = [x for x in outcomes if isinstance(x, BaseException)]
    assert all(isinstance(x, Unavailable) for x in failed), failed
    assert all(x.message.startswith("audit store unavailable: ") for x in failed)  # type: ignore[attr-defined]
    # Whatever was acknowledged is stored; nothing that failed is.
    await asyncio.sleep(0.2)
    after = await store.append([loaded(99)])
    entries = await all_entries(store)
    acked = [e for x in outcomes if not isinstance(x, BaseException) for e in x]
    assert entries == before + acked + after
    assert verify_chain(entries).ok


async def test_a_read_cancelled_as_the_pool_hands_it_a_connection_is_cancelled(
    make_store: MakeStore,
) -> None:
    # psycopg_pool waits for a connection with asyncio.wait_for, which on Python 3.11 returns
    # the connection when the cancellation arrives with it (CPython gh-86296). The expiry
    # sweeper lost its cancellation that way when a server stopped as its pool opened, and
    # Running.stop waited for it forever. The cancellation comes at each loop step after the
    # hand-over in turn.
    store = await make_store(pool_size=2)
    assert isinstance(store, PostgresStore)
    pool = store._pool
    await pool.wait()
    cancelled = 0
    for steps in range(8):
        async with pool.connection(), contextlib.AsyncExitStack() as busy:
            await busy.enter_async_context(pool.connection())  # both connections in use
            read = asyncio.create_task(store.get_review("rv_none"))
            for _ in range(5000):  # until the read waits for a connection
                if pool.get_stats().get("requests_waiting"):
                    break
                await asyncio.sleep(0.001)
            else:
                pytest.fail("the read never waited for a connection")
            await busy.aclose()  # hands one connection to the waiting read
            for _ in range(steps):
                await asyncio.sleep(0)
            if not read.cancel():
                continue  # it had finished before the cancellation
            cancelled += 1
            with pytest.raises(asyncio.CancelledError):
                await read
    assert cancelled


async def test_tampering_is_detected(store: Store, pg_url: str) -> None:
    for i in range(1, 9):
        await store.append([loaded(i)])
    with raw(pg_url) as conn:
        conn.execute("ALTER TABLE audit DISABLE TRIGGER audit_append_only")
        conn.execute("""UPDATE audit SET payload = '{"r":40}' WHERE seq = 4""")
        conn.execute("UPDATE audit SET payload = 'not json' WHERE seq = 7")
        conn.execute("DELETE FROM audit_rules WHERE seq = 2")
        conn.execute("DELETE FROM audit WHERE seq = 2")
    result = verify_chain(await store.read_audit(1, 5))
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 2, "missing")
    e3, *_ = page = await store.read_audit(3, 4)
    result = verify_chain(page, prev_hash=e3.prev_hash, expected_first_seq=3)
    assert (result.first_bad_seq, result.problem) == (4, "changed")
    with pytest.raises(FailedPrecondition, match="audit entry seq 7 cannot be decoded"):
        await store.query_audit(AuditQuery(to_seq=8))


_LOG_KEY = Ed25519PrivateKey.generate()
_WITNESS = Identity("wit", frozenset({"witness"}))

# The grants of docs/operators.md (Deployment shapes), with the schema and role names substituted.
SERVICE_GRANTS = """
GRANT USAGE ON SCHEMA {schema} TO {role};
GRANT SELECT ON schema_migrations TO {role};
GRANT SELECT, INSERT ON audit, audit_rules, checkpoints, decisions TO {role};
GRANT SELECT, INSERT, UPDATE ON reviews TO {role};
GRANT SELECT, INSERT, UPDATE ON grants TO {role};
GRANT SELECT, INSERT ON audit_tree TO {role};
GRANT SELECT, UPDATE ON audit_tree_state TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON slack_messages, used_nonces TO {role};
GRANT SELECT, INSERT ON cosignatures TO {role};
"""


async def test_a_service_role_with_insert_and_select_only_runs_the_store(
    make_store: MakeStore, pg_url: str, clock: Clock
) -> None:
    await (await make_store()).close()  # migrated by the owner (here: the test's superuser)
    schema = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(pg_url).query))["application_name"]
    role = f"{schema}_svc"
    with raw(pg_url) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")  # type: ignore[arg-type]
        conn.execute(SERVICE_GRANTS.format(schema=schema, role=role))  # type: ignore[arg-type]
    try:
        parts = urllib.parse.urlsplit(pg_url)
        url = urllib.parse.urlunsplit(
            parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}")
        )
        store = PostgresStore(url, clock)
        await store.open()
        try:
            o = opening(1)
            await store.record_decision(o.decision, o.audit, o.review, o.review_audit)
            await store.update_review(changed(o.review), 1, [change_audit(changed(o.review))])
            # The decision path reads grants, and takes a use with an UPDATE.
            now = clock.now()
            assert await store.active_grants("refund.issue", "finance", "p", "r", now) == []
            second = opening(2)
            used = await store.record_granted_decision(
                second.decision, second.audit, "no-such-grant", now
            )
            assert used is None
            assert verify_chain(await all_entries(store)).ok
            # The Merkle tree is built with these grants too.
            assert await store.build_tree() == len(await all_entries(store))
            # And a checkpoint is signed, and a witness's co-signature of it stored.
            desk = AuditDesk(store, clock, Signer(_LOG_KEY))
            cp = await desk.checkpoint_if_due(1, dt.timedelta(0))
            assert cp is not None
            added = await desk.add_cosignature(
                _WITNESS, cosign_request(cp, Ed25519PrivateKey.generate())
            )
            assert added.cosignatures == 1
        finally:
            await store.close()
        with raw(url) as conn:
            for sql in (
                "UPDATE audit SET actor = 'x'",
                "DELETE FROM audit",
                "TRUNCATE audit CASCADE",
                "DELETE FROM checkpoints",
                "DELETE FROM grants",
                "DELETE FROM audit_tree",
                "UPDATE decisions SET outcome = 'DENY'",
                "ALTER TABLE audit DISABLE TRIGGER audit_append_only",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(sql)  # type: ignore[arg-type]
    finally:
        with raw(pg_url) as conn:
            conn.execute(f"DROP OWNED BY {role}")  # type: ignore[arg-type]
            conn.execute(f"DROP ROLE {role}")  # type: ignore[arg-type]
