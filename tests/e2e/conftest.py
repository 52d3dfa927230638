"""Real servers for end-to-end tests: `signoff` started on a free port in its own thread.

The server runs its own event loop in a thread so that tests can use the blocking client
as well as the asyncio one without deadlocking the loop that serves them.

Backends: the `server` fixture runs every test that uses it on SQLite and on PostgreSQL (a
fresh schema per server, tests/pg.py). `make_server` starts SQLite servers unless the test
asks for the `backend` fixture (or passes backend=...). Tests that reach into the SQLite file
are marked ``sqlite_only``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from signoff.auth import hash_token
from signoff.ids import Clock
from signoff.serving.server import Running, start, waiting_at
from signoff.settings.model import Settings

from ..pg import backend_param, fresh_schema, parametrize_backend, register_markers

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_POLICIES = REPO / "policies"


@dataclass
class ServerHandle:
    """A running server: where it listens and how to reach its internals."""

    target: str
    running: Running
    loop: asyncio.AbstractEventLoop
    db: str  # the database URL, to start another server on the same database
    http_url: str | None = None  # http(s)://127.0.0.1:PORT: the console and the Connect API

    @property
    def backend(self) -> str:
        """The backend: "sqlite" or "postgres"."""
        return "postgres" if self.db.startswith("postgres") else "sqlite"

    @property
    def db_path(self) -> Path:
        """The SQLite file; a test that needs it is SQLite-only and must say so."""
        if self.backend != "sqlite":
            raise AssertionError(
                "db_path: this server runs on PostgreSQL; mark the test "
                "@pytest.mark.sqlite_only (it reaches into the SQLite file)"
            )
        return Path(self.db.removeprefix("sqlite:///"))

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
        running = self._result(fut, "start")
        http = running.http_port
        scheme = "https" if self.settings.tls.serves_http else "http"
        return ServerHandle(
            target=f"127.0.0.1:{running.port}",
            running=running,
            loop=self.loop,
            db=self.settings.db,
            http_url=f"{scheme}://127.0.0.1:{http}" if http is not None else None,
        )

    def stop(self, handle: ServerHandle | None) -> None:
        """Stop the server (if started) and the loop thread."""
        if handle is not None:
            self._result(
                asyncio.run_coroutine_threadsafe(handle.running.stop(0), self.loop), "stop"
            )
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()

    def _result(self, fut: Future[Any], what: str, timeout: float = 30) -> Any:
        """The result of `fut`; a timeout says what each task of the server's loop awaits."""
        try:
            return fut.result(timeout=timeout)
        except TimeoutError:
            raise TimeoutError(
                f"the server did not {what} within {timeout:g} s; its loop's tasks:\n"
                + self._tasks()
            ) from None

    def _tasks(self) -> str:
        async def describe() -> str:
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            return "\n".join(
                f"  {task.get_name()}: {waiting_at(task)}"
                for task in sorted(tasks, key=lambda task: task.get_name())
            )

        try:
            return asyncio.run_coroutine_threadsafe(describe(), self.loop).result(timeout=5)
        except TimeoutError:
            return "  (none listed: the loop itself is blocked)"


MakeServer = Callable[..., ServerHandle]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for processes that need one fixed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_tokens(
    directory: Path,
    people: Mapping[str, tuple[str, Sequence[str]]],
    others: Iterable[str] = (),
    principals: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """A tokens file: token -> (identity, roles); tokens in `others` may act for others;
    `principals` is the directory of vouched facts by principal id (kind, tags, ...)."""
    lines = ["tokens:" if people else "tokens: []"]
    for token, (identity, roles) in people.items():
        lines += [
            f"  - sha256: {hash_token(token)}",
            f"    identity: {identity}",
            f"    roles: [{', '.join(repr(r) for r in roles)}]",
        ]
        if token in others:
            lines.append("    act_for_others: true")
    if principals:
        lines.append(yaml.safe_dump({"principals": {k: dict(v) for k, v in principals.items()}}))
    path = directory / "tokens.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def pytest_configure(config: pytest.Config) -> None:
    register_markers(config)


@pytest.fixture(autouse=True)
def _any_free_http_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """`signoff serve` processes started by tests (CLI, replicas, restarts) would all take the
    default console port 8080, and collide with each other and with a developer's server."""
    if "SIGNOFF_HTTP_LISTEN" not in os.environ:
        monkeypatch.setenv("SIGNOFF_HTTP_LISTEN", "127.0.0.1:0")


# Tests that reach into the SQLite file or use SQLite-only store internals, by module and
# name, with the reason. Kept here rather than as markers in the modules so that the list of
# what PostgreSQL does not run end to end is in one place. Their PostgreSQL counterparts
# (tampering under the triggers, killed connections) are in tests/store.
SQLITE_ONLY = {
    ("test_audit.py", "test_secrets_in_redacted_paths_never_reach_the_database"): (
        "greps the SQLite file and its WAL for the secret"
    ),
    ("test_audit.py", "test_verify_finds_the_first_bad_entry"): "tampers with the SQLite file",
    ("test_audit.py", "test_an_export_missing_rows_is_data_loss_naming_them"): (
        "tampers with the SQLite file"
    ),
    ("test_audit.py", "test_truncated_tail_is_caught_by_a_checkpoint"): (
        "tampers with the SQLite file"
    ),
    ("test_audit.py", "test_a_rewritten_chain_with_recomputed_hashes_is_caught_by_checkpoints"): (
        "tampers with the SQLite file"
    ),
    ("test_cli_audit.py", "test_verify_after_tampering_with_the_database_names_the_seq"): (
        "tampers with the SQLite file"
    ),
    ("test_cli_audit.py", "test_an_export_missing_a_row_names_it_and_writes_no_file"): (
        "tampers with the SQLite file"
    ),
    ("test_storage_faults.py", "test_database_failure_is_unavailable_and_recovers"): (
        "breaks the database with SQLite PRAGMAs through store.maintenance"
    ),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    key = (metafunc.definition.path.name, metafunc.definition.originalname)
    if reason := SQLITE_ONLY.get(key):
        metafunc.definition.add_marker(pytest.mark.sqlite_only(reason=reason))
    parametrize_backend(metafunc)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend this test runs on (parametrized: sqlite, postgres).

    A fixture that reaches `server` through request.getfixturevalue cannot be parametrized
    at collection, so it gets SQLite.
    """
    if not hasattr(request, "param"):
        return "sqlite"
    return backend_param(request)


@pytest.fixture
def make_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MakeServer]:
    """Factory: start servers with given policies dir and settings; all stopped at teardown.

    Each server gets a fresh database on its backend (the test's `backend` if it asks for
    one, else SQLite) unless `db=` names one, e.g. another server's `handle.db`.
    """
    default_backend = (
        request.getfixturevalue("backend") if "backend" in request.fixturenames else "sqlite"
    )
    threads: list[tuple[ServerThread, ServerHandle | None]] = []
    # The servers of one test share a state directory, so a key, as replicas do: a
    # restarted server verifies older checkpoints. Never the developer's own state directory.
    state_dir = tmp_path_factory.mktemp("state")
    schemas = ExitStack()  # dropped after every server stopped (their pools hold sessions)

    def make(
        policies: Path | None = None,
        clock: Clock | None = None,
        backend: str | None = None,
        **overrides: Any,
    ) -> ServerHandle:
        base = tmp_path_factory.mktemp("server")
        if "db" in overrides:
            db = overrides.pop("db")
        elif (backend or default_backend) == "postgres":
            db = schemas.enter_context(fresh_schema())
        else:
            db = f"sqlite:///{base / 'signoff.db'}"
        # Outside dev mode the signing key must exist or be asked for explicitly.
        audit: dict[str, Any] = {"create_key": True}
        values: dict[str, Any] = {
            "state_dir": state_dir,
            "policies": policies or EXAMPLE_POLICIES,
            "db": db,
            "listen": "127.0.0.1:0",
            "http_listen": "127.0.0.1:0",
            "shutdown_grace": 0.0,
            "audit": audit,
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

    with schemas:
        yield make
        for st, handle in threads:
            st.stop(handle)


@pytest.fixture
def server(make_server: MakeServer, backend: str) -> ServerHandle:
    """A real server on the example policies with a fresh database on each backend."""
    return make_server(backend=backend)


@pytest.fixture
def signoff(make_server: MakeServer) -> ServerHandle:
    """A real server on SQLite with the example policies (policies/mcp.yaml decides for
    `signoff mcp-proxy`'s tests)."""
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
