"""Helpers shared by the storage tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import Any

from signoff.store import SqliteStore, Store


async def all_entries(store: Store) -> list[Any]:
    return await store.read_audit(1, 1_000_000)


async def in_one_batch(store: Store, *calls: Awaitable[Any]) -> list[Any]:
    """Run `calls` concurrently; on SQLite, hold the writer so they share one transaction."""
    if not isinstance(store, SqliteStore):
        return await asyncio.gather(*calls, return_exceptions=True)
    gate = threading.Event()

    async def release() -> None:
        gate.set()

    before = store.stats.commits
    # gather starts its tasks in order: the writer is held, every call is queued, then released.
    _, *results, _ = await asyncio.gather(
        store.maintenance(lambda _: gate.wait(30)), *calls, release(), return_exceptions=True
    )
    assert store.stats.commits == before + 1
    return results
