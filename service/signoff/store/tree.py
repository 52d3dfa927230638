"""Builds the audit log's Merkle tree (core/log_tree.py) in bulk, off the commit path.

The writer's transactions do not touch the tree: as the auditors' side index
(sqlite/indexer.py), it is built behind the head by a background task of the store, up to a
watermark (`tree_size`), in chunks. A step reads the watermark, the stored nodes of the
tree's right edge (at most log2(n) rows) and the next entries; hashes them off the event
loop; and writes the new rows with the new watermark in one transaction that first moves
the watermark from the value it read (compare and set). Two builders -- replicas on one
PostgreSQL database, or a step racing `build_tree` -- can both compute a step; one commits,
the other's transaction changes nothing. After a crash the tree is exactly leaves
1..tree_size, and the next step goes on from there.

Checkpoints sign tree heads only up to the watermark (app/audit/checkpoints.py). An entry whose
stored row no longer hashes to its chain hash stops the tree before it (logged as an
error): the tree never vouches for an altered entry, and `audit verify` names it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass

from signoff.core import log_tree
from signoff.core.audit import AuditEntry
from signoff.core.merkle import leaf_hash
from signoff.store.linger import stop_task

log = logging.getLogger("signoff.store")

TREE_EVERY = 512  # entries appended before a step
TREE_IDLE = 1.0  # seconds between looks when fewer were (other replicas append too)
TREE_CHUNK = 5_000  # entries per step: a transaction of a few hundred kB of rows
_PROGRESS_EVERY = 10.0  # seconds between progress lines while catching up


@dataclass(frozen=True, slots=True)
class Pending:
    """What a step read: the watermark, the rows of the tree's right edge, the next entries."""

    size: int
    edge: dict[int, bytes]
    entries: list[AuditEntry]


# read(limit, recent) -> Pending; write(old size, new size, rows) -> whether it moved the
# watermark. `recent` holds entries this process appended (by seq), which the read may use
# instead of decoding their rows again.
Read = Callable[[int, Mapping[int, AuditEntry]], Awaitable[Pending]]
Write = Callable[[int, int, list[tuple[int, bytes]]], Awaitable[bool]]


def known(
    heads: list[tuple[int, str]], recent: Mapping[int, AuditEntry]
) -> list[AuditEntry] | None:
    """The entries of `recent` at the committed (seq, hash) `heads`, or None unless every
    one is there with that hash (a rolled-back batch's entry shares a seq with the one
    committed later, never its hash): then the rows are decoded instead."""
    out = [recent.get(seq) for seq, _ in heads]
    if all(e is not None and e.hash == h for e, (_, h) in zip(out, heads, strict=True)):
        return [e for e in out if e is not None]
    return None


def edge_keys(size: int) -> list[int]:
    """The row keys holding the right edge of the tree of `size` leaves (a step reads them)."""
    return sorted({log_tree.row_key(n) for n in log_tree.pieces(0, size)})


def grow(pending: Pending) -> tuple[list[tuple[int, bytes]], int]:
    """The rows the entries of `pending` add, and the seq of an altered entry that stopped
    them (0: none)."""
    frontier = log_tree.Frontier(
        pending.size, log_tree.from_rows(log_tree.pieces(0, pending.size), pending.edge)
    )
    rows: list[tuple[int, bytes]] = []
    for entry in pending.entries:
        if entry.seq != frontier.size + 1:
            break  # a hole (never committed that way); the next step reads on from it
        data = log_tree.leaf_bytes(entry)
        if data is None:
            return rows, entry.seq
        rows.append((entry.seq, frontier.append(leaf_hash(data))))
    return rows, 0


class TreeBuilder:
    """The tree's background task of one store."""

    def __init__(
        self,
        read: Read,
        write: Write,
        *,
        every: int = TREE_EVERY,
        idle: float | None = TREE_IDLE,
        chunk: int = TREE_CHUNK,
        lead: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self._read, self._write = read, write
        # Replicas on one database: only the lease holder's background task steps (the
        # others' would compute the same rows for nothing); `catch_up` steps anywhere.
        self._lead = lead
        self._every, self._idle, self._chunk = every, idle, chunk
        self._pending = 0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one step at a time in this process
        self._task: asyncio.Task[None] | None = None
        self.altered = 0  # seq of an altered entry the tree stopped at (0: none)
        self.caught_up = asyncio.Event()  # set once the first background catch-up ended
        # Entries this process's writer appended, by seq, at most `chunk`: decoding a row
        # back into an entry costs several times hashing it, and the writer had it at hand.
        self._recent: dict[int, AuditEntry] = {}

    def appended(self, entry: AuditEntry | None = None) -> None:
        """Count one appended entry, and keep it for the next step (the writer's
        transaction, on the loop; it may still roll back)."""
        if entry is not None:
            if len(self._recent) >= self._chunk:
                del self._recent[next(iter(self._recent))]
            self._recent[entry.seq] = entry
        self._pending += 1
        if self._pending >= self._every:
            self._wake.set()

    def start(self) -> None:
        """Run in the background: catch up on what is not built (logging progress), then
        follow the head."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="signoff-tree")

    async def stop(self) -> None:
        """Stop the task (an interrupted step commits nothing; the next open goes on)."""
        if self._task is not None:
            await stop_task(self._task)
            self._task = None

    async def catch_up(self, *, progress: bool = False) -> int:
        """Build the tree over every entry committed so far; return the new watermark."""
        async with self._lock:
            first = size = -1
            last_log = time.monotonic()
            while True:
                size, more = await self._step()
                first = size if first < 0 else first
                if not more:
                    break
                if progress and time.monotonic() - last_log >= _PROGRESS_EVERY:
                    last_log = time.monotonic()
                    log.info("audit tree: %d entries built", size)
            if progress and size > first:
                log.info("audit tree: caught up at seq %d", size)
            return size

    async def _step(self) -> tuple[int, bool]:
        # A copy: the read runs on another thread while the writer appends.
        pending = await self._read(self._chunk, dict(self._recent))
        for seq in [s for s in self._recent if s <= pending.size]:
            del self._recent[seq]
        if not pending.entries:
            return pending.size, False
        rows, altered = await asyncio.to_thread(grow, pending)
        if altered and altered != self.altered:
            self.altered = altered
            log.error(
                "audit tree: entry seq %d does not hash to its chain hash (the row was "
                "altered); the tree and new checkpoints stop before it: run `signoff audit "
                "verify`",
                altered,
            )
        if not rows:
            return pending.size, False
        new = pending.size + len(rows)
        if not await self._write(pending.size, new, rows):
            return pending.size, True  # another builder moved it: read again
        return new, not altered and len(pending.entries) >= self._chunk

    async def _run(self) -> None:
        await self._guarded(progress=True)
        self.caught_up.set()
        while True:
            with suppress(TimeoutError):
                async with asyncio.timeout(self._idle):
                    await self._wake.wait()
            self._wake.clear()
            self._pending = 0
            await self._guarded(progress=False)

    async def _guarded(self, *, progress: bool) -> None:
        try:
            if self._lead is not None and not await self._lead():
                return
            await self.catch_up(progress=progress)
        except Exception as exc:  # a read-only or full disk, a database restart
            log.warning("audit tree: step failed (%s); retried in a moment", exc)


def tree_head_problem(size: int, root_hash: str, built: int, edge: dict[int, bytes]) -> str:
    """Why a checkpoint may not sign (size, root_hash) over the stored tree ("" if it may):
    `built` is the watermark, `edge` the rows of `edge_keys(size)`."""
    if size > built:
        return f"checkpoint signs a tree of {size} entries but only {built} are built"
    try:
        nodes = log_tree.from_rows(log_tree.pieces(0, size), edge)
    except KeyError:
        return f"the stored tree lacks nodes of size {size}"
    if log_tree.range_hash(0, size, nodes).hex() != root_hash:
        # A signature over a root the tree does not have would be a false statement.
        return f"checkpoint root_hash is not the root of the stored tree of size {size}"
    return ""
