"""Witness co-signatures as both stores keep them: the checks before one is stored, and the
row form (the SQL is in sqlite/cosign.py and postgres/cosign.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from signoff.core.witness import Cosignature
from signoff.errors import FailedPrecondition, InvalidArgument, NotFound
from signoff.store.base import Checkpoint

# Each is a few hundred bytes and GetCheckpoints returns them all: a witness token cannot
# grow a checkpoint's row set without bound (a repeat from one witness key is a no-op).
MAX_PER_CHECKPOINT = 32
FIELDS = ("seq", "key_id", "log_key_id", "tree_size", "root_hash", "time", "signature")
COLUMNS = ", ".join(FIELDS)


def problem(seq: int, cp: Checkpoint | None, cs: Cosignature, count: int) -> Exception | None:
    """Why `cs` cannot be stored for the checkpoint at `seq` (`cp`, None if there is none)
    that carries `count` co-signatures already; None if it can."""
    if cp is None:
        return NotFound(f"seq: no stored checkpoint at seq {seq}")
    if not cp.root_hash:
        return InvalidArgument("seq", f"the checkpoint at seq {seq} signs no tree head")
    if (cs.log_key_id, cs.tree_size, cs.root_hash) != (cp.key_id, cp.tree_size, cp.root_hash):
        return InvalidArgument(
            "cosignature",
            f"co-signs the tree head ({cs.tree_size}, {cs.root_hash[:16]}) of log key "
            f"{cs.log_key_id[:16]}, not the checkpoint at seq {seq}: ({cp.tree_size}, "
            f"{cp.root_hash[:16]}) of log key {cp.key_id}",
        )
    if count >= MAX_PER_CHECKPOINT:
        return FailedPrecondition(
            f"the checkpoint at seq {seq} carries {count} co-signatures already "
            f"(at most {MAX_PER_CHECKPOINT})"
        )
    return None


def values(seq: int, cs: Cosignature, time: Any) -> tuple[Any, ...]:
    """A row in FIELDS order (`time` as the dialect stores it)."""
    return (seq, cs.key_id, cs.log_key_id, cs.tree_size, cs.root_hash, time, cs.signature)


def grouped(
    rows: Sequence[Sequence[Any]], read_time: Callable[[Any], dt.datetime]
) -> dict[int, list[Cosignature]]:
    """Rows in FIELDS order (sorted by seq) as {seq: co-signatures}."""
    out: dict[int, list[Cosignature]] = {}
    for row in rows:
        out.setdefault(int(row[0]), []).append(
            Cosignature(
                key_id=str(row[1]),
                log_key_id=str(row[2]),
                tree_size=int(row[3]),
                root_hash=str(row[4]),
                time=read_time(row[5]),
                signature=str(row[6]),
            )
        )
    return out
