"""Keeps the auditors' side index (audit_index.py) a short way behind the audit head.

The writer's transactions no longer touch the auditors' indexes; this task indexes what they
appended, in bulk, as a maintenance operation of the writer (between two batches, on its
thread, under its lock): once `every` entries were appended, or `idle` seconds after the
last append when fewer were. The tail that queries scan is thus a few hundred entries under
load and empty soon after. At open it first catches up on what is not indexed yet (a log
written before migration 0007, or entries committed just before a crash), in chunks of
`chunk` entries so that decisions keep committing between them, logging its progress.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from signoff.store.linger import stop_task
from signoff.store.sqlite import audit_index

log = logging.getLogger("signoff.store")

INDEX_EVERY = 512  # entries appended before a step
INDEX_IDLE = 1.0  # seconds a smaller tail waits
INDEX_CHUNK = 5_000  # entries per index transaction: a few ms of the writer's time each
_PROGRESS_EVERY = 10.0  # seconds between progress lines while catching up

Maintenance = Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]


class AuditIndexer:
    """The side index's background task of one SqliteStore."""

    def __init__(
        self,
        maintenance: Maintenance,
        *,
        every: int = INDEX_EVERY,
        idle: float | None = INDEX_IDLE,
        chunk: int | None = None,
    ) -> None:
        self._maintenance = maintenance
        self._every, self._idle = every, idle
        self._chunk = chunk or INDEX_CHUNK
        self._pending = 0
        self._wake = asyncio.Event()  # entries are waiting
        self._full = asyncio.Event()  # `every` entries are waiting
        self._task: asyncio.Task[None] | None = None

    def appended(self) -> None:
        """Count one appended entry (called by the writer's transaction, on the loop)."""
        # Counted before the commit: a rolled-back entry only makes a step come sooner.
        self._pending += 1
        if self._pending == 1:
            self._wake.set()
        if self._pending >= self._every:
            self._full.set()

    async def start(self) -> None:
        """Take one step now (the common case: nothing to catch up), then run in the
        background, catching up first if the log is further ahead."""
        # A failure does not stop the store from opening: queries scan what is not indexed.
        try:
            done, head = await self._step()
        except Exception as exc:
            log.warning("audit side index: step failed (%s); retried in the background", exc)
            done, head = 0, 1
        self._task = asyncio.get_running_loop().create_task(
            self._run(done < head), name="signoff-audit-indexer"
        )

    async def stop(self) -> None:
        """Stop the task (an interrupted step rolls back; the next open goes on from it)."""
        if self._task is not None:
            await stop_task(self._task)
            self._task = None

    async def catch_up(self, *, progress: bool = False) -> int:
        """Index every entry committed so far; return the new watermark."""
        done, head = await self._step()
        first, last_log = done, time.monotonic()
        while done < head:
            if progress and time.monotonic() - last_log >= _PROGRESS_EVERY:
                last_log = time.monotonic()
                log.info("audit side index: %d of %d entries indexed", done, head)
            done, head = await self._step()
        if progress and done > first:
            log.info("audit side index: caught up at seq %d", done)
        return done

    async def _step(self) -> tuple[int, int]:
        chunk = self._chunk
        return await self._maintenance(lambda conn: audit_index.step(conn, chunk))  # type: ignore[no-any-return]

    async def _run(self, behind: bool) -> None:
        if behind:
            log.info("audit side index: indexing the existing log in the background")
            await self._guarded(progress=True)
        while True:
            await self._wake.wait()
            if self._pending < self._every:
                with suppress(TimeoutError):
                    async with asyncio.timeout(self._idle):
                        await self._full.wait()
            self._wake.clear()
            self._full.clear()
            self._pending = 0
            await self._guarded(progress=False)

    async def _guarded(self, *, progress: bool) -> None:
        try:
            await self.catch_up(progress=progress)
        except Exception as exc:  # a read-only or full disk: queries scan a longer tail
            # The next append tries again; nothing is lost, the watermark did not move.
            log.warning("audit side index: step failed (%s); retried after the next append", exc)
