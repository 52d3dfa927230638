"""The peers of `signoff mcp-proxy`'s end-to-end tests, and how the tests drive them.

A real Signoff server (policies/, so policies/mcp.yaml decides), the proxy as a
subprocess (`python -m signoff.cli.main mcp-proxy`), the fake payments upstream
(tests/e2e/mcp_upstream_refund.py, which records every refund it executed in a JSON-lines
file), and an SDK `ClientSession` driving the proxy. Reviewers act once the proxy's
progress notification names the review it waits on: no sleeps.

Dev-mode identities: the proxy's token is "claude-agent", the reviewer is "alice".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from signoff import pb
from signoff_client import AsyncClient, Verdict
from signoff_client._gen import audit_pb2_grpc

from .conftest import ServerHandle

UPSTREAM = Path(__file__).with_name("mcp_upstream_refund.py")
WAIT = 20.0  # bound on every wait for the other side; never reached when things work
REVIEW_RE = re.compile(r"waiting for review (\S+) by (\S+): (.*)")


def config(
    tmp_path: Path,
    target: str,
    *,
    upstreams: list[dict[str, Any]] | None = None,
    **settings: Any,
) -> Path:
    """A proxy config (JSON is YAML) in front of the payments upstream."""
    doc = {
        "signoff": {"server": target, "token": "claude-agent", "timeout": 5},
        "principal": {"id": "claude-agent", "kind": "agent", "tags": ["mcp"]},
        "progress_interval": 0.5,
        "upstreams": upstreams or [payments(tmp_path)],
        **settings,
    }
    path = tmp_path / "mcp-proxy.yaml"
    path.write_text(json.dumps(doc, indent=2))
    return path


def payments(tmp_path: Path, *flags: str, name: str = "payments") -> dict[str, Any]:
    """The payments upstream, run over stdio, recording into tmp_path/refunds.jsonl."""
    return {
        "name": name,
        "command": sys.executable,
        "args": [str(UPSTREAM), "--name", name, *flags],
        "env": {"REFUND_LOG": str(tmp_path / "refunds.jsonl")},
    }


def executed(tmp_path: Path) -> list[dict[str, Any]]:
    """What the upstream executed, in order."""
    log = tmp_path / "refunds.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def proxy_argv(config_path: Path, *extra: str) -> list[str]:
    return ["-m", "signoff.cli.main", "mcp-proxy", "--config", str(config_path), *extra]


class StderrWatch:
    """The proxy's stderr as it is written (through a pipe, and into `path` as well), so
    that a test awaits a log line instead of polling a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = ""
        self._grew = asyncio.Condition()

    async def wait_for(self, needle: str) -> None:
        """Return once the proxy has logged `needle` (bounded by WAIT)."""
        async with asyncio.timeout(WAIT), self._grew:
            await self._grew.wait_for(lambda: needle in self.text)

    @asynccontextmanager
    async def pipe(self) -> AsyncIterator[Any]:
        """The write end to give the proxy as its stderr; read until the proxy exits."""
        read_fd, write_fd = os.pipe()
        reader = asyncio.StreamReader()
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb")
        )
        pump = asyncio.create_task(self._pump(reader))
        try:
            with os.fdopen(write_fd, "w") as writer:
                yield writer
            await asyncio.wait_for(pump, WAIT)  # EOF: the proxy, the last writer, exited
        finally:
            pump.cancel()
            transport.close()

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        with self.path.open("w") as out:
            while line := (await reader.readline()).decode(errors="replace"):
                out.write(line)
                out.flush()
                async with self._grew:
                    self.text += line
                    self._grew.notify_all()


@asynccontextmanager
async def proxied(
    config_path: Path,
    errlog: Path | None = None,
    *,
    flags: tuple[str, ...] = (),
    watch: StderrWatch | None = None,
    **session_options: Any,
) -> AsyncIterator[ClientSession]:
    """An SDK client session with the proxy (given `flags`), started as a stdio subprocess;
    its stderr goes to `errlog` (default: beside the config), or through `watch`."""
    params = StdioServerParameters(command=sys.executable, args=proxy_argv(config_path, *flags))
    async with contextlib.AsyncExitStack() as stack:
        if watch is not None:
            err = await stack.enter_async_context(watch.pipe())
        else:
            path = errlog or config_path.with_suffix(".stderr")
            err = stack.enter_context(path.open("w"))
        async with (
            stdio_client(params, err) as (read, write),
            ClientSession(read, write, **session_options) as session,
        ):
            if watch is not None:
                err.close()  # the proxy has its own copy: its exit is the pipe's EOF
            await session.initialize()
            yield session


@asynccontextmanager
async def served_http(config_path: Path) -> AsyncIterator[str]:
    """The proxy serving streamable HTTP on a free port of 127.0.0.1; yields its URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *proxy_argv(config_path, "--http", "127.0.0.1:0"),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        while True:
            line = (await asyncio.wait_for(proc.stderr.readline(), WAIT)).decode()
            assert line, "the proxy exited before serving"
            if match := re.search(r"serving MCP on (http://\S+)", line):
                break
        yield match.group(1)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), WAIT)


@asynccontextmanager
async def http_session(
    url: str, token: str, **session_options: Any
) -> AsyncIterator[ClientSession]:
    """An SDK client session with the proxy at `url`, sending `token` as its bearer."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write, **session_options) as session,
    ):
        await session.initialize()
        yield session


def text(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


class Reviews:
    """The reviews the proxy says it waits on (from its progress notifications), and every
    progress notification of the call."""

    def __init__(self) -> None:
        self.seen: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        self.progress_log: list[tuple[float, float | None, str | None]] = []

    async def progress(self, progress: float, total: float | None, message: str | None) -> None:
        self.progress_log.append((progress, total, message))
        match = REVIEW_RE.match(message or "")
        if match and progress == 1:  # later beats repeat the same review
            await self.seen.put(match.groups())

    async def next(self) -> tuple[str, str, str]:
        return await asyncio.wait_for(self.seen.get(), WAIT)


async def act(
    server: ServerHandle, review_id: str, verdict: Verdict, comment: str = "", **kw: Any
) -> None:
    async with AsyncClient(server.target, token="alice") as alice:
        review = await alice.get_review(review_id)
        await alice.submit_review(
            review_id, verdict, expected_version=review.version, comment=comment, **kw
        )


async def reviewed_call(
    session: ClientSession,
    server: ServerHandle,
    arguments: dict[str, Any],
    verdict: Verdict,
    tool: str = "refund",
    reviews: Reviews | None = None,
    **kw: Any,
) -> tuple[types.CallToolResult, tuple[str, str, str]]:
    """Call a tool that needs review; act on the review once the proxy waits on it."""
    call, seen = await waiting_call(session, arguments, tool, reviews)
    assert not call.done()
    await act(server, seen[0], verdict, **kw)
    return await asyncio.wait_for(call, WAIT), seen


async def waiting_call(
    session: ClientSession,
    arguments: dict[str, Any],
    tool: str = "refund",
    reviews: Reviews | None = None,
) -> tuple[asyncio.Task[types.CallToolResult], tuple[str, str, str]]:
    """Start a call that needs review; return it, once the proxy says which review it
    waits on (id, group, reason)."""
    reviews = reviews or Reviews()
    call = asyncio.create_task(
        session.call_tool(tool, arguments, progress_callback=reviews.progress)
    )
    return call, await reviews.next()


def audited(server: ServerHandle, action: str) -> list[pb.audit.AuditEntry]:
    """The audit log's decisions on `action`, oldest first (read as the auditor "ann")."""
    req = pb.audit.QueryAuditRequest(
        filter=pb.audit.AuditFilter(action=action, types=["decision"]), page_size=100
    )
    stub = audit_pb2_grpc.AuditServiceStub(server.channel())
    return list(stub.QueryAudit(req, metadata=(("authorization", "Bearer ann"),)).entries)


def dead_target() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def run_proxy(
    config_path: Path, *prelude: str, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run the proxy to its end (it fails at start), after the `prelude` statements."""
    code = "; ".join(
        [
            *prelude,
            "from signoff.cli.main import main",
            f"sys.exit(main({proxy_argv(config_path, *extra)[2:]!r}))",
        ]
    )
    return subprocess.run(
        [sys.executable, "-c", f"import sys; {code}"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


async def kill(pid: int) -> None:
    """SIGKILL `pid` and return once it has exited: its pidfd (opened first, as the proxy
    may reap it at once) turns readable then. Linux; no parent needed."""
    fd = os.pidfd_open(pid)
    exited = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(fd, exited.set)
    try:
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        await exited.wait()
    finally:
        loop.remove_reader(fd)
        os.close(fd)
