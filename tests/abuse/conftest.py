"""The abuse suite (issue 19): each attack against a real server, shown bounded.

`make_server` and `server` (in-process, on each backend) come from the end-to-end suite.
`serve` runs `signoff serve` in a child process instead, whose RSS is its own and whose GIL
is not the test's: for attacks that hold the GIL (a backtracking regex, where a client in
the same process would freeze too) and for the server's memory and its drain at shutdown.
It starts SQLite servers unless the test asks for the `backend` fixture.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
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

People = Mapping[str, tuple[str, Sequence[str]]]  # token -> (identity, roles)
SERVE_PEOPLE: People = {
    "bot-token": ("support-bot", ["agent"]),
    "auditor-token": ("ann", ["auditor"]),
}
STARTED = re.compile(r'"server.started".*"listen": "([^"]+)".*"http": "([^"]+)"')


@dataclass
class Served:
    """A `signoff serve` child process: its two ports, its database, its log's tail."""

    proc: subprocess.Popen[bytes]
    grpc_target: str
    http_host: str
    http_port: int
    db: str  # the database URL
    log: collections.deque[str]

    @property
    def http_url(self) -> str:
        """The HTTP port's base URL."""
        return f"http://{self.http_host}:{self.http_port}"

    def channel(self) -> grpc.Channel:
        """A new blocking channel to the gRPC port."""
        return grpc.insecure_channel(self.grpc_target)

    def rss_kib(self) -> int:
        """The server process's resident memory, from /proc."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert m, status
        return int(m.group(1))

    def stop(self) -> None:
        """SIGTERM, and wait for the drain (which writes the pending refusal summaries)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)  # bounds a hung drain; it is no guess of a drain's time
                return
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            raise AssertionError("signoff serve did not stop:\n" + "".join(self.log))

    async def audit(self) -> list[AuditEntry]:
        """Every audit entry, read from the SQLite database (after `stop`)."""
        assert self.db.startswith("sqlite:///"), "audit(): SQLite servers only"
        store = SqliteStore(Path(self.db.removeprefix("sqlite:///")), SystemClock())
        await store.open()
        try:
            return list(await store.read_audit(1, 1_000_000))
        finally:
            await store.close()


def start_serve(directory: Path, db: str, people: People, limits: Mapping[str, Any]) -> Served:
    """Start `signoff serve` on free ports with these tokens and limits; return once it says
    it serves (its "server.started" event: health and both ports are up by then)."""
    config = directory / "signoff.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "auth": {"tokens_file": str(write_tokens(directory, people))},
                "limits": dict(limits),
                "audit": {"create_key": True},
                "state_dir": str(directory),
                "watch_policies": False,
            }
        )
    )
    # The test run's own SIGNOFF_* settings (a developer's, the suite's port 0) stay out.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "signoff.cli.main", "serve", "--config", str(config),
         "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
         "--policies", str(EXAMPLE_POLICIES), "--db", db, "--log-format", "json"],
        stderr=subprocess.PIPE, env=env, cwd=directory,
    )  # fmt: skip
    assert proc.stderr is not None
    log: collections.deque[str] = collections.deque(maxlen=50)
    for raw in proc.stderr:  # ends when the child exits: then the error below says so
        log.append(raw.decode(errors="replace"))
        if m := STARTED.search(log[-1]):
            break
    else:
        proc.wait()
        raise AssertionError("signoff serve exited before it started:\n" + "".join(log))
    stderr = proc.stderr

    def drain() -> None:  # keep the pipe from filling; keep the tail for failures
        log.extend(raw.decode(errors="replace") for raw in stderr)

    threading.Thread(target=drain, daemon=True).start()
    host, _, port = m.group(2).rpartition(":")
    return Served(proc, m.group(1), host, int(port), db, log)


Serve = Callable[..., Served]


@pytest.fixture
def serve(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Serve]:
    """Factory: `serve(limits, people=SERVE_PEOPLE)` starts `signoff serve` (on the test's
    `backend` if it asks for one, else SQLite); every one is stopped at teardown."""
    on = request.getfixturevalue("backend") if "backend" in request.fixturenames else "sqlite"
    started: list[Served] = []

    def start(limits: Mapping[str, Any] | None = None, people: People = SERVE_PEOPLE) -> Served:
        directory = tmp_path / f"serve-{len(started)}"
        directory.mkdir()
        if on == "postgres":
            db = stack.enter_context(fresh_schema())
        else:
            db = f"sqlite:///{directory / 'signoff.db'}"
        served = start_serve(directory, db, people, limits or {})
        started.append(served)
        return served

    with ExitStack() as stack:  # the schemas are dropped after their servers stopped
        try:
            yield start
        finally:
            for served in started:
                if served.proc.poll() is None:
                    served.proc.terminate()
            for served in started:
                try:
                    served.proc.wait(60)
                except subprocess.TimeoutExpired:
                    served.proc.kill()
                    served.proc.wait()
