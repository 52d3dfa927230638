"""The test PostgreSQL server, shared by the storage and end-to-end suites.

Each test works in its own schema of the server named by SIGNOFF_TEST_POSTGRES_URL (default:
the machine's server, DEVELOPERS.md), created before and dropped after the test. When no
server answers, the postgres cases SKIP with the reason -- unless SIGNOFF_REQUIRE_POSTGRES=1
(CI), which makes them FAIL instead, so that CI can never go green on SQLite alone.

Tests marked ``sqlite_only`` (PRAGMA tricks, file tampering, SQLite internals) run on SQLite
alone; ``postgres_only`` tests run on PostgreSQL alone.
"""

from __future__ import annotations

import functools
import os
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

BACKENDS = ["sqlite", "postgres"]
POSTGRES_URL = os.environ.get(
    "SIGNOFF_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("SIGNOFF_REQUIRE_POSTGRES") == "1"


def register_markers(config: pytest.Config) -> None:
    """Declare the backend markers (called from each suite's pytest_configure)."""
    config.addinivalue_line("markers", "sqlite_only: runs on the SQLite backend alone")
    config.addinivalue_line("markers", "postgres_only: runs on the PostgreSQL backend alone")


def parametrize_backend(metafunc: pytest.Metafunc) -> None:
    """Run a test that asks for `backend` (directly or through a fixture) on each backend."""
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


def require_postgres() -> None:
    """Skip the current test when PostgreSQL is unreachable (fail instead under CI)."""
    if reason := postgres_unreachable():
        if REQUIRE_POSTGRES:
            pytest.fail(f"SIGNOFF_REQUIRE_POSTGRES=1 but {reason}")
        print(f"skipping postgres: {reason}")
        pytest.skip(f"postgres: {reason}; set SIGNOFF_TEST_POSTGRES_URL")


def backend_param(request: pytest.FixtureRequest) -> str:
    """The body of a `backend` fixture: the parameter, with postgres checked for reachability."""
    name = str(request.param)
    if name == "postgres":
        require_postgres()
    return name


def with_schema(url: str, schema: str) -> str:
    """Return `url` working in `schema`, its connections named after it (application_name)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query)
    query += [("options", f"-csearch_path={schema}"), ("application_name", schema)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A URL whose connections work in a new schema; the schema is dropped on exit."""
    import psycopg

    schema = f"signoff_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_schema(POSTGRES_URL, schema)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            # A server killed by a test may leave sessions behind that hold locks on the
            # schema's tables; end them so that DROP does not wait for their timeout.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                (schema,),
            )
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
