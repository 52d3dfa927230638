"""Fixtures for the storage suite: every behavioural test runs against every backend.

PostgreSQL: each test works in its own schema of the server named by SIGNOFF_TEST_POSTGRES_URL
(default: the machine's server, DEVELOPERS.md), created before and dropped after the test.
When no server answers, the postgres cases SKIP with the reason -- unless
SIGNOFF_REQUIRE_POSTGRES=1 (CI), which makes them FAIL instead.

Tests marked ``sqlite_only`` (PRAGMA tricks, file tampering, SQLite query plans) run on SQLite
alone; ``postgres_only`` tests are their PostgreSQL counterparts.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from signoff.store import SqliteStore, Store

BACKENDS = ["sqlite", "postgres"]
POSTGRES_URL = os.environ.get(
    "SIGNOFF_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("SIGNOFF_REQUIRE_POSTGRES") == "1"

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


class StepClock:
    """A clock that moves only when told to."""

    def __init__(self, start: dt.datetime = T0) -> None:
        self.current = start

    def now(self) -> dt.datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += dt.timedelta(**delta)


MakeStore = Callable[..., Awaitable[Store]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: runs on the SQLite backend alone")
    config.addinivalue_line("markers", "postgres_only: runs on the PostgreSQL backend alone")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    backends = BACKENDS
    if metafunc.definition.get_closest_marker("sqlite_only"):
        backends = ["sqlite"]
    elif metafunc.definition.get_closest_marker("postgres_only"):
        backends = ["postgres"]
    metafunc.parametrize("backend", backends, indirect=True)


@functools.cache
def postgres_unreachable() -> str:
    """Why the test server cannot be used ("" when it can); asked once per session."""
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed ({exc})"
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no PostgreSQL at {POSTGRES_URL} ({str(exc).strip().splitlines()[0]})"
    return ""


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    if name == "postgres" and (reason := postgres_unreachable()):
        if REQUIRE_POSTGRES:
            pytest.fail(f"SIGNOFF_REQUIRE_POSTGRES=1 but {reason}")
        print(f"skipping postgres: {reason}")
        pytest.skip(f"postgres: {reason}; set SIGNOFF_TEST_POSTGRES_URL")
    return name


def with_schema(url: str, schema: str) -> str:
    """Return `url` working in `schema`, its connections named after it (application_name)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query)
    query += [("options", f"-csearch_path={schema}"), ("application_name", schema)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


@pytest.fixture
def pg_url(backend: str) -> Any:
    """A URL whose connections work in a fresh schema, dropped after the test."""
    if backend != "postgres":
        yield ""
        return
    import psycopg

    schema = f"signoff_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield with_schema(POSTGRES_URL, schema)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
async def make_store(
    backend: str, tmp_path: Path, clock: StepClock, pg_url: str
) -> AsyncIterator[MakeStore]:
    """Open stores on one database (reopening it is allowed); all are closed at teardown."""
    opened: list[Store] = []

    async def make(**options: Any) -> Store:
        store: Store
        if backend == "postgres":
            from signoff.store.postgres import PostgresStore

            store = PostgresStore(pg_url, clock, **options)
        else:
            store = SqliteStore(tmp_path / "db" / "signoff.db", clock, **options)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(make_store: MakeStore) -> Store:
    return await make_store()
