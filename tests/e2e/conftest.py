"""Real servers for end-to-end tests: `signoff` started on a free port in its own thread.

The server runs its own event loop in a thread so that tests can use the blocking client
as well as the asyncio one without deadlocking the loop that serves them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from signoff.config import Settings
from signoff.ids import Clock
from signoff.server import Running, start

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_POLICIES = REPO / "policies"


@dataclass
class ServerHandle:
    """A running server: where it listens and how to reach its internals."""

    target: str
    running: Running
    loop: asyncio.AbstractEventLoop
    db_path: Path

    def call(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def channel(self) -> grpc.Channel:
        """A new blocking channel to the server."""
        return grpc.insecure_channel(self.target)


class FakeClock:
    """A clock tests move by hand: time passes only when `advance` says so."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.t = start or dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)

    def now(self) -> dt.datetime:
        """The current fake time."""
        return self.t

    def advance(self, **delta: float) -> None:
        """Move time forward, e.g. advance(hours=2)."""
        self.t += dt.timedelta(**delta)


class ServerThread:
    """Owns a thread running an event loop that runs one server."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> ServerHandle:
        """Start the loop thread and the server; return a handle once it serves."""
        self.thread.start()
        fut: Future[Running] = asyncio.run_coroutine_threadsafe(
            start(self.settings, self.clock), self.loop
        )
        running = fut.result(timeout=30)
        return ServerHandle(
            target=f"127.0.0.1:{running.port}",
            running=running,
            loop=self.loop,
            db_path=self.settings.sqlite_path,
        )

    def stop(self, handle: ServerHandle | None) -> None:
        """Stop the server (if started) and the loop thread."""
        if handle is not None:
            asyncio.run_coroutine_threadsafe(handle.running.stop(0), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


MakeServer = Callable[..., ServerHandle]


@pytest.fixture
def make_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeServer]:
    """Factory: start servers with given policies dir and settings; all stopped at teardown."""
    threads: list[tuple[ServerThread, ServerHandle | None]] = []

    def make(
        policies: Path | None = None, clock: Clock | None = None, **overrides: Any
    ) -> ServerHandle:
        base = tmp_path_factory.mktemp("server")
        values: dict[str, Any] = {
            "policies": policies or EXAMPLE_POLICIES,
            "db": f"sqlite:///{base / 'signoff.db'}",
            "listen": "127.0.0.1:0",
            "shutdown_grace": 0.0,
            # Outside dev mode the signing key must exist or be asked for explicitly.
            "audit": {"create_key": True},
        }
        values.update(overrides)
        st = ServerThread(Settings(**values), clock)
        try:
            handle = st.start()
        except BaseException:
            st.stop(None)
            raise
        threads.append((st, handle))
        return handle

    yield make
    for st, handle in threads:
        st.stop(handle)


@pytest.fixture
def server(make_server: MakeServer) -> ServerHandle:
    """A real server on the example policies with a fresh SQLite file."""
    return make_server()


@pytest.fixture
def policy_dir(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """Factory: write {relative path: YAML text} into a fresh directory and return it."""

    def write(files: dict[str, str]) -> Path:
        root = tmp_path / "policies"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        return root

    return write
