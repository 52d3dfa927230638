"""Start and stop of a real `signoff serve` process: readiness only once the database and the
bundle are ready, and SIGTERM drains (readiness off at once, new calls refused, in-flight
calls finish, exit 0 within the grace).

A database that holds the server up is made with PostgreSQL advisory locks the server takes
itself: the migration lock blocks start-up, the audit chain lock blocks an Evaluate in flight.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import httpx
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from signoff import pb
from signoff.cli.main import main
from signoff.serving.server import STORE_CLOSE_TIMEOUT
from signoff_client._gen import decision_pb2_grpc

from ..pg import fresh_schema, require_postgres
from .conftest import EXAMPLE_POLICIES, free_port

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
MIGRATE_KEY = "hashtext('signoff.migrate.' || current_schema())"
CHAIN_KEY = "hashtext('signoff.audit.' || current_schema())"


def _channel(target: str) -> grpc.aio.Channel:
    # Each channel its own connection: channels of one process otherwise share a subchannel,
    # and the refused connection of a probe before start-up would hold back later ones.
    return grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


class Serve:
    """A `signoff serve` subprocess on known ports, its log collected as it runs."""

    def __init__(self, proc: asyncio.subprocess.Process, grpc_port: int, http_port: int):
        self.proc = proc
        self.target = f"127.0.0.1:{grpc_port}"
        self.http = f"http://127.0.0.1:{http_port}"
        self.log: list[str] = []
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.log.append(line.decode())

    async def until_logged(self, name: str, within: float = 60) -> None:
        """Wait for a log event (the process must still run)."""
        deadline = time.monotonic() + within
        while not any(f'"{name}"' in line for line in self.log):
            assert self.proc.returncode is None, "".join(self.log)
            assert time.monotonic() < deadline, f"no {name} in:\n{''.join(self.log)}"
            await asyncio.sleep(0.02)

    async def exit_code(self, within: float) -> int:
        """The exit status, which must come within `within` seconds."""
        code = await asyncio.wait_for(self.proc.wait(), within)
        await self._reader
        return code


@asynccontextmanager
async def serve(db: str, cwd: Path, grace: float = 30) -> AsyncIterator[Serve]:
    grpc_port, http_port = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "signoff.cli.main", "serve",
        "--listen", f"127.0.0.1:{grpc_port}", "--http-listen", f"127.0.0.1:{http_port}",
        "--policies", str(EXAMPLE_POLICIES), "--db", db, "--log-format", "json",
        stderr=asyncio.subprocess.PIPE, cwd=cwd,
        env={**os.environ, "SIGNOFF_SHUTDOWN_GRACE": str(grace)},
    )  # fmt: skip
    handle = Serve(proc, grpc_port, http_port)
    try:
        yield handle
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.fixture
def pg_db() -> Iterator[str]:
    require_postgres()
    with fresh_schema() as url:
        yield url


def _request(request_id: str = "") -> pb.common.ActionRequest:
    req = pb.common.ActionRequest(request_id=request_id)
    req.action.name = "refund.issue"
    req.action.params.update({"amount": 20, "currency": "EUR"})
    return req


async def _health(target: str) -> int | grpc.StatusCode:
    """The overall health status, or the status code of a failed check."""
    async with _channel(target) as ch:
        try:
            reply = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return int(reply.status)


async def _waiting_for_lock(conn: psycopg.AsyncConnection, schema_app: str) -> None:
    """Wait until a session of the server's schema waits for an advisory lock."""
    for _ in range(3000):
        cur = await conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = %s",
            (schema_app,),
        )
        if (await cur.fetchone() or (0,))[0]:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the server never waited for the lock")


def _schema(url: str) -> str:
    return url.rsplit("application_name=", 1)[1]


async def test_not_ready_until_the_database_is(pg_db: str, tmp_path: Path):
    async with await psycopg.AsyncConnection.connect(pg_db, autocommit=True) as conn:
        await conn.execute(f"SELECT pg_advisory_lock({MIGRATE_KEY})")
        async with serve(pg_db, tmp_path) as srv:
            await _waiting_for_lock(conn, _schema(pg_db))
            # Start-up waits for the database: nothing listens yet, so probes and callers
            # fail fast with UNAVAILABLE (gRPC clients retry), and nothing half-ready answers.
            assert await _health(srv.target) == grpc.StatusCode.UNAVAILABLE
            async with _channel(srv.target) as ch:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await decision_pb2_grpc.DecisionServiceStub(ch).Evaluate(_request(), timeout=2)
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            async with httpx.AsyncClient() as client:
                with pytest.raises(httpx.ConnectError):
                    await client.get(f"{srv.http}/readyz")
            assert not any('"server.started"' in line for line in srv.log)
            # The image's HEALTHCHECK command says the same.
            assert await asyncio.to_thread(main, ["health", "--target", srv.target]) == 1

            await conn.execute(f"SELECT pg_advisory_unlock({MIGRATE_KEY})")
            await srv.until_logged("server.started")
            assert await _health(srv.target) == SERVING
            # Without --target it asks the `listen` setting's port, a wildcard as loopback.
            port = srv.target.rpartition(":")[2]
            with pytest.MonkeyPatch.context() as env:
                env.setenv("SIGNOFF_LISTEN", f"0.0.0.0:{port}")
                assert await asyncio.to_thread(main, ["health"]) == 0
            async with httpx.AsyncClient() as client:
                ready = await client.get(f"{srv.http}/readyz")
                assert (ready.status_code, ready.text) == (200, "ready\n")
            async with _channel(srv.target) as ch:
                d = await decision_pb2_grpc.DecisionServiceStub(ch).Evaluate(_request())
                assert d.outcome == pb.common.OUTCOME_AUTO_ALLOW
            srv.proc.send_signal(signal.SIGTERM)
            assert await srv.exit_code(30) == 0


async def test_sigterm_drains_an_in_flight_call_and_refuses_new_ones(pg_db: str, tmp_path: Path):
    grace = 30.0
    async with (
        serve(pg_db, tmp_path, grace=grace) as srv,
        await psycopg.AsyncConnection.connect(pg_db, autocommit=True) as conn,
    ):
        await srv.until_logged("server.started")
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{srv.http}/readyz")).status_code == 200
        async with _channel(srv.target) as ch:
            stub = decision_pb2_grpc.DecisionServiceStub(ch)
            health = health_pb2_grpc.HealthStub(ch)
            watch = health.Watch(health_pb2.HealthCheckRequest())
            assert (await watch.read()).status == SERVING
            # Hold the audit chain: the next Evaluate waits in its write, in flight.
            await conn.execute(f"SELECT pg_advisory_lock({CHAIN_KEY})")
            in_flight = asyncio.ensure_future(stub.Evaluate(_request("in-flight"), timeout=60))
            await _waiting_for_lock(conn, _schema(pg_db))

            sent = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            # Readiness flips at once, while the call is still running.
            assert (await asyncio.wait_for(watch.read(), 5)).status == NOT_SERVING
            assert time.monotonic() - sent < 5
            async with httpx.AsyncClient() as client:
                try:
                    ready = (await client.get(f"{srv.http}/readyz")).status_code
                except httpx.ConnectError:
                    ready = 0  # the HTTP port already closed: not ready either
                assert ready in (0, 503)
            assert not in_flight.done()
            # New calls are refused (on a new connection: the port is closed).
            await srv.until_logged("server.stopping")
            for _ in range(500):
                if await _health(srv.target) == grpc.StatusCode.UNAVAILABLE:
                    break
                await asyncio.sleep(0.02)
            async with _channel(srv.target) as fresh:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await decision_pb2_grpc.DecisionServiceStub(fresh).Evaluate(
                        _request("late"), timeout=2
                    )
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert not in_flight.done()

            # The database lets go: the in-flight call completes with its decision.
            await conn.execute(f"SELECT pg_advisory_unlock({CHAIN_KEY})")
            decision = await asyncio.wait_for(in_flight, 30)
            assert decision.outcome == pb.common.OUTCOME_AUTO_ALLOW
        assert await srv.exit_code(grace) == 0
        assert time.monotonic() - sent < grace
        assert "Traceback" not in "".join(srv.log)
        cur = await conn.execute("SELECT request_id FROM audit WHERE type = 'decision'")
        assert [r[0] for r in await cur.fetchall()] == ["in-flight"]


async def test_a_call_held_past_the_grace_does_not_keep_the_process(pg_db: str, tmp_path: Path):
    async with (
        serve(pg_db, tmp_path, grace=1.0) as srv,
        await psycopg.AsyncConnection.connect(pg_db, autocommit=True) as conn,
    ):
        await srv.until_logged("server.started")
        async with _channel(srv.target) as ch:
            await conn.execute(f"SELECT pg_advisory_lock({CHAIN_KEY})")
            in_flight = asyncio.ensure_future(
                decision_pb2_grpc.DecisionServiceStub(ch).Evaluate(_request("stuck"), timeout=60)
            )
            await _waiting_for_lock(conn, _schema(pg_db))
            sent = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            code = await srv.exit_code(30)
            took = time.monotonic() - sent
            with pytest.raises(grpc.aio.AioRpcError):
                await in_flight
        log = "".join(srv.log)
        assert code == 0, log
        # The grace, then at most the bounded wait for the store (STORE_CLOSE_TIMEOUT).
        assert took < 1.0 + STORE_CLOSE_TIMEOUT + 5, log
        assert '"server.store_not_closed"' in log


def test_readyz_says_starting_and_stopping_while_healthz_is_liveness(make_server):
    server = make_server()
    http = server.running.http
    assert http is not None
    ready = httpx.get(f"{server.http_url}/readyz")
    assert (ready.status_code, ready.text) == (200, "ready\n")
    http.ready = False  # as between listening and the first SERVING
    starting = httpx.get(f"{server.http_url}/readyz")
    assert (starting.status_code, starting.text) == (503, "starting\n")
    assert httpx.get(f"{server.http_url}/healthz").status_code == 200  # alive meanwhile
    http.ready, http.stopping = True, True  # as from the first SIGTERM
    stopping = httpx.get(f"{server.http_url}/readyz")
    assert (stopping.status_code, stopping.text) == (503, "stopping\n")
