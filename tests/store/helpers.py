"""Helpers shared by the storage tests."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable
from typing import Any

from signoff.store import SqliteStore, Store


async def all_entries(store: Store) -> list[Any]:
    return await store.read_audit(1, 1_000_000)


async def in_one_batch(store: Store, *calls: Awaitable[Any]) -> list[Any]:
    """Run `calls` concurrently, holding the writer so that they share one transaction."""
    before = store.stats.commits  # type: ignore[attr-defined]
    if isinstance(store, SqliteStore):
        gate = threading.Event()
        held = store.maintenance(lambda _: gate.wait(30))
    else:  # PostgresStore: its writer is a task on this loop, held by an asyncio.Event
        event = asyncio.Event()
        gate = event  # type: ignore[assignment]
        held = store.maintenance(lambda _: asyncio.wait_for(event.wait(), 30))  # type: ignore[attr-defined]

    async def release() -> None:
        gate.set()

    # gather starts its tasks in order: the writer is held, every call is queued, then released.
    _, *results, _ = await asyncio.gather(held, *calls, release(), return_exceptions=True)
    assert store.stats.commits == before + 1  # type: ignore[attr-defined]
    return results


class Explaining:
    """A SQLite connection stand-in that records each statement's query plan instead of rows."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn, self.plans = conn, []

    def execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        rows = self.conn.execute(f"EXPLAIN QUERY PLAN {sql}", args)
        self.plans.append(" ".join(str(row[3]) for row in rows))
        return self.conn.execute("SELECT 1 WHERE 0")  # no rows
