"""The abuse suite (issue 19): each attack against a real server, shown bounded.

`make_server` and `server` (in-process, on each backend) come from the end-to-end suite.
Two fixtures run `signoff serve` in a child process instead, whose RSS is its own and whose
GIL is not the test's: `serve_process` (sync, on the test's backend, for attacks that hold
the GIL, e.g. a backtracking regex, where a client in the same process would freeze too)
and `serve` (async, SQLite, with the limits a test asks for; RSS and the audit log read
after a drain). One fixture could serve both; they came from two helpers of one session.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from signoff.core.audit import AuditEntry
from signoff.ids import SystemClock
from signoff.store.sqlite.store import SqliteStore

from ..e2e.conftest import (  # noqa: F401 (fixtures and hooks for this suite)
    EXAMPLE_POLICIES,
    _any_free_http_port,
    backend,
    make_server,
    pytest_configure,
    pytest_generate_tests,
    server,
    write_tokens,
)
from ..pg import fresh_schema


@dataclass
class Child:
    """A `signoff serve` child process and where it listens (a sync handle, per backend)."""

    proc: subprocess.Popen[bytes]
    target: str
    log: collections.deque[str]

    def channel(self) -> grpc.Channel:
        """A new blocking channel to the server."""
        return grpc.insecure_channel(self.target)


ServeProcess = Callable[[Mapping[str, tuple[str, Sequence[str]]]], Child]


@pytest.fixture
def serve_process(backend: str, tmp_path: Path) -> Iterator[ServeProcess]:  # noqa: F811
    """Factory: `signoff serve` on this test's backend with these tokens (token -> who, roles)."""
    started: list[Child] = []

    def serve(people: Mapping[str, tuple[str, Sequence[str]]]) -> Child:
        db = (
            stack.enter_context(fresh_schema())
            if backend == "postgres"
            else f"sqlite:///{tmp_path / 'signoff.db'}"
        )
        env = os.environ | {
            "SIGNOFF_AUTH__TOKENS_FILE": str(write_tokens(tmp_path, people)),
            "SIGNOFF_AUDIT__CREATE_KEY": "true",
            "SIGNOFF_STATE_DIR": str(tmp_path),
            "SIGNOFF_SHUTDOWN_GRACE": "0",
            "SIGNOFF_WATCH_POLICIES": "false",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "signoff.cli.main", "serve", "--listen", "127.0.0.1:0",
             "--http-listen", "", "--policies", str(EXAMPLE_POLICIES), "--db", db,
             "--log-format", "json"],
            stderr=subprocess.PIPE, env=env, cwd=tmp_path,
        )  # fmt: skip
        assert proc.stderr is not None
        log: collections.deque[str] = collections.deque(maxlen=50)
        for raw in proc.stderr:  # ends when the child exits: then the assert below says so
            log.append(raw.decode(errors="replace"))
            if m := re.search(r'"server.started".*"listen": "([^"]+)"', log[-1]):
                break
        else:
            raise AssertionError("signoff serve exited before it started:\n" + "".join(log))
        stderr = proc.stderr

        def drain() -> None:  # keep the pipe from filling; keep the tail for failures
            log.extend(raw.decode(errors="replace") for raw in stderr)

        threading.Thread(target=drain, daemon=True).start()
        served = Child(proc, m.group(1), log)
        started.append(served)
        return served

    with ExitStack() as stack:
        try:
            yield serve
        finally:
            for s in started:
                s.proc.terminate()
            for s in started:
                try:
                    s.proc.wait(15)
                except subprocess.TimeoutExpired:
                    s.proc.kill()
                    s.proc.wait()


SERVE_PEOPLE = {"bot-token": ("support-bot", ["agent"]), "auditor-token": ("ann", ["auditor"])}


@dataclass
class Served:
    """A running `signoff serve`: its process, its two ports, its database."""

    proc: asyncio.subprocess.Process
    grpc_target: str
    http_host: str
    http_port: int
    db: Path

    @property
    def http_url(self) -> str:
        """The HTTP port's base URL."""
        return f"http://{self.http_host}:{self.http_port}"

    def rss_kib(self) -> int:
        """The server process's resident memory, from /proc."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert m, status
        return int(m.group(1))

    async def stop(self) -> None:
        """SIGTERM, and wait for the drain (which writes the pending refusal summaries)."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.proc.wait(), 60)

    async def audit(self) -> list[AuditEntry]:
        """Every audit entry, read from the database (after `stop`)."""
        store = SqliteStore(self.db, SystemClock())
        await store.open()
        try:
            return list(await store.read_audit(1, 1_000_000))
        finally:
            await store.close()


Serve = Callable[[dict[str, Any]], Awaitable[Served]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    """Start `signoff serve` with `limits` (the limits section of the config file)."""
    started: list[Served] = []

    async def start(limits: dict[str, Any]) -> Served:
        config = tmp_path / f"signoff-{len(started)}.yaml"
        db = tmp_path / f"signoff-{len(started)}.db"
        config.write_text(
            yaml.safe_dump(
                {
                    "auth": {"tokens_file": str(write_tokens(tmp_path, SERVE_PEOPLE))},
                    "limits": limits,
                    "audit": {"create_key": True},
                }
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "signoff.cli.main", "serve", "--config", str(config),
            "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
            "--policies", str(EXAMPLE_POLICIES), "--db", f"sqlite:///{db}",
            "--log-format", "json", stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        assert proc.stderr is not None
        while True:
            line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
            assert line, "server exited before it started"
            if '"server.started"' in line:
                fields = json.loads(line)
                break
        asyncio.get_running_loop().create_task(proc.stderr.read())  # keep the pipe drained
        host, _, port = fields["http"].rpartition(":")
        served = Served(proc, fields["listen"], host, int(port), db)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.proc.returncode is None:
            served.proc.kill()
            await served.proc.wait()
