"""The abuse suite's server: `signoff serve` as a subprocess (its RSS is its own, unlike the
in-process `server` fixture's), with a tokens file and the limits a test asks for."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from signoff.audit import AuditEntry
from signoff.ids import SystemClock
from signoff.store.sqlite import SqliteStore
from tests.e2e.conftest import EXAMPLE_POLICIES, write_tokens

PEOPLE = {"bot-token": ("support-bot", ["agent"]), "auditor-token": ("ann", ["auditor"])}


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
                    "auth": {"tokens_file": str(write_tokens(tmp_path, PEOPLE))},
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
