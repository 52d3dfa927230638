"""Pages bounded by bytes as well as by count, so that no read outgrows a gRPC message."""

from __future__ import annotations

from collections.abc import Iterable, MutableSequence
from typing import TypeVar

from google.protobuf.message import Message

M = TypeVar("M", bound=Message)
# A repeated message field's per-item framing: its tag and a length of up to 5 bytes.
_FRAMING = 6


def fit_budget(target: MutableSequence[M], items: Iterable[M], budget: int) -> int:
    """Append `items` to the repeated field `target` while their encoded size stays within
    `budget` bytes, and at least one; return how many were taken."""
    total = taken = 0
    for item in items:
        size = item.ByteSize() + _FRAMING
        if taken and total + size > budget:
            break
        target.append(item)
        total += size
        taken += 1
    return taken
