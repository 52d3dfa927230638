"""Fixtures for the storage suite: every behavioural test runs against every backend."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from signoff.store import SqliteStore, Store

# Add "postgres" here (and a branch in `make_store`) when that backend lands.
BACKENDS = ["sqlite"]

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


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_store(backend: str, tmp_path: Path, clock: StepClock) -> AsyncIterator[MakeStore]:
    """Open stores on one database (reopening it is allowed); all are closed at teardown."""
    opened: list[Store] = []

    async def make(**options: Any) -> Store:
        assert backend == "sqlite"
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
