"""The abuse suite (issue 19): each attack against a real server, shown bounded.

`make_server` and `server` (in-process, on each backend) come from the end-to-end suite.
`served` runs `signoff serve` in a child process instead: an attack that holds the GIL (a
backtracking regex) would also freeze a client in the same process, so a deadline on the
victim's call could not show the stall; across processes it does.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

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
class Served:
    """A `signoff serve` child process and where it listens."""

    proc: subprocess.Popen[bytes]
    target: str
    log: collections.deque[str]

    def channel(self) -> grpc.Channel:
        """A new blocking channel to the server."""
        return grpc.insecure_channel(self.target)


ServeProcess = Callable[[Mapping[str, tuple[str, Sequence[str]]]], Served]


@pytest.fixture
def serve_process(backend: str, tmp_path: Path) -> Iterator[ServeProcess]:  # noqa: F811
    """Factory: `signoff serve` on this test's backend with these tokens (token -> who, roles)."""
    started: list[Served] = []

    def serve(people: Mapping[str, tuple[str, Sequence[str]]]) -> Served:
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
        served = Served(proc, m.group(1), log)
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
