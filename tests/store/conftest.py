"""Fixtures for the storage suite: every behavioural test runs against every backend.

PostgreSQL: each test works in its own schema (tests/pg.py says which server, and when the
postgres cases skip or fail). Tests marked ``sqlite_only`` (PRAGMA tricks, file tampering,
SQLite query plans) run on SQLite alone; ``postgres_only`` tests are their PostgreSQL
counterparts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from signoff.store import SqliteStore, Store

from ..pg import backend_param, fresh_schema, parametrize_backend, register_markers

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
    register_markers(config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_backend(metafunc)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect PostgreSQL runs of the audit side index's watermarks: it has none."""
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        postgres = params.get("backend") == "postgres"
        (drop if postgres and params.get("watermark", "indexed") != "indexed" else keep).append(
            item
        )
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return backend_param(request)


@pytest.fixture
def pg_url(backend: str) -> Any:
    """A URL whose connections work in a fresh schema, dropped after the test."""
    if backend != "postgres":
        yield ""
        return
    with fresh_schema() as url:
        yield url


@pytest.fixture
async def make_store(
    backend: str, tmp_path: Path, clock: StepClock, pg_url: str
) -> AsyncIterator[MakeStore]:
    """Open stores on one database (reopening it is allowed); all are closed at teardown."""
    opened: list[Store] = []

    async def make(**options: Any) -> Store:
        store: Store
        if backend == "postgres":
            from signoff.store.postgres.store import PostgresStore

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
