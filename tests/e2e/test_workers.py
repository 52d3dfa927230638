"""`signoff serve --workers N`: several processes on one port, one linear audit chain."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from signoff import pb
from signoff_client._gen import audit_pb2_grpc, decision_pb2_grpc
from tests.pg import fresh_schema

from .conftest import EXAMPLE_POLICIES

START = 90.0  # seconds: two interpreters import gRPC and compile the policies on 2 cores


class Server:
    """A `signoff serve` process and its JSON log lines, awaited as they arrive."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self._new = asyncio.Condition()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            with contextlib.suppress(ValueError):
                line = json.loads(raw)
                async with self._new:
                    self.lines.append(line)
                    self._new.notify_all()
        async with self._new:
            self._new.notify_all()

    async def expect(self, match: Callable[[dict[str, Any]], bool], after: int = 0) -> dict:
        """The first log line from index `after` on that `match`es (waits for it)."""
        async with asyncio.timeout(START):
            async with self._new:
                while True:
                    for line in self.lines[after:]:
                        if match(line):
                            return line
                    if self._reader.done():
                        raise AssertionError(f"server exited: {self.lines[-5:]}")
                    await self._new.wait()

    def events(self, name: str) -> list[dict[str, Any]]:
        """Every log line of event `name` so far."""
        return [line for line in self.lines if line.get("event") == name]


@contextlib.asynccontextmanager
async def serve(db: str, *args: str) -> AsyncIterator[tuple[Server, str]]:
    """Start `signoff serve --workers 2`; yield it and its gRPC address; stop it at the end."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "signoff.cli.main", "serve", "--workers", "2",
        "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
        "--policies", str(EXAMPLE_POLICIES), "--db", db, "--log-format", "json", *args,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    server = Server(proc)
    try:
        started = await server.expect(lambda e: e["event"] == "server.started" and "workers" in e)
        yield server, started["listen"]
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), START)
        await server._reader


def _refund(i: int) -> pb.common.ActionRequest:
    r = pb.common.ActionRequest(request_id=f"w-{i}")
    r.action.name = "refund.issue"
    r.action.params.update({"amount": (120, 750)[i % 2], "currency": "EUR"})
    r.principal.id = "bot"
    return r


async def _decide_on(channels: list[grpc.aio.Channel], n: int, first: int = 0) -> None:
    """`n` decisions, spread over the channels (each one TCP connection)."""

    async def one(i: int) -> None:
        stub = decision_pb2_grpc.DecisionServiceStub(channels[i % len(channels)])
        # Four agents (a dev token is its identity): one alone may have only a tenth of
        # limits.max_concurrent in flight, and all `n` calls are in flight at once.
        auth = (("authorization", f"Bearer agent-{i % 4}"),)
        d = await stub.Evaluate(_refund(i), wait_for_ready=True, metadata=auth)
        assert d.decision_id

    await asyncio.gather(*(one(i) for i in range(first, first + n)))


def _channels(target: str, n: int) -> list[grpc.aio.Channel]:
    # A local subchannel pool keeps gRPC from sharing one connection among the channels.
    options = [("grpc.use_local_subchannel_pool", 1)]
    return [grpc.aio.insecure_channel(target, options=options) for _ in range(n)]


@pytest.fixture
def database(backend: str, tmp_path: Path) -> Any:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'signoff.db'}"
        return
    with fresh_schema() as url:
        yield url


async def test_two_workers_serve_one_port_and_keep_one_chain(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)  # on PostgreSQL the signing key is created here
    async with serve(database, "--log-level", "debug") as (server, target):
        channels = _channels(target, 16)
        try:
            await _decide_on(channels, 200)
            audit = audit_pb2_grpc.AuditServiceStub(channels[0])
            verdict = await audit.VerifyAudit(pb.audit.VerifyAuditRequest())
        finally:
            for ch in channels:
                await ch.close()
        # Both processes decided (connections are spread by the kernel), each logging its own.
        by_worker = Counter(e["worker"] for e in server.events("decision"))
        assert set(by_worker) == {0, 1}, by_worker
        assert sum(by_worker.values()) == 200
        # One chain: 200 decisions, 100 opened reviews, one policy.loaded per worker.
        assert verdict.ok, verdict.problem
        assert verdict.entries_checked == 200 + 100 + 2
        # Jobs that must run once run in worker 0 alone.
        assert {e["worker"] for e in server.events("sweeper.lead")} == {0}
        assert {e.get("worker") for e in server.events("audit.checkpoint")} <= {0}


async def test_a_killed_worker_is_restarted_and_the_port_keeps_serving(tmp_path: Path):
    async with serve(f"sqlite:///{tmp_path / 'signoff.db'}") as (server, target):
        started = server.events("server.started")[-1]
        victim = started["pids"][1]
        mark = len(server.lines)
        os.kill(victim, signal.SIGKILL)
        exited = await server.expect(lambda e: e["event"] == "worker.exited", mark)
        assert exited["worker"] == 1
        assert exited["exit_code"] == -signal.SIGKILL
        restarted = await server.expect(lambda e: e["event"] == "worker.restarted", mark)
        assert restarted["pid"] != victim
        channels = _channels(target, 8)
        try:
            await _decide_on(channels, 40)
        finally:
            for ch in channels:
                await ch.close()


async def test_sigterm_stops_every_worker_and_exits_zero(tmp_path: Path):
    async with serve(f"sqlite:///{tmp_path / 'signoff.db'}") as (server, _):
        pids = server.events("server.started")[-1]["pids"]
        server.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.proc.wait(), START) == 0
    stopped = {e.get("worker") for e in server.events("server.stopped")}
    assert stopped == {0, 1, None}  # both workers, then the supervisor
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_zero_workers_is_a_config_error_naming_the_setting(tmp_path: Path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "signoff.cli.main", "serve", "--workers", "0",
        "--db", f"sqlite:///{tmp_path / 'x.db'}", stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert "workers (SIGNOFF_WORKERS)" in err.decode()


async def test_bad_policies_stop_the_start_before_any_worker(tmp_path: Path):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "bad.yaml").write_text("rules: [\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "signoff.cli.main", "serve", "--workers", "2",
        "--listen", "127.0.0.1:0", "--http-listen", "", "--policies", str(policies),
        "--db", f"sqlite:///{tmp_path / 'x.db'}", "--log-format", "json",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 1
    assert "bad.yaml" in err.decode()
    assert "worker" not in err.decode()
