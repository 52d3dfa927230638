"""Injected time and identifiers, so tests move time instead of sleeping."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    """Source of the current time (always timezone-aware UTC)."""

    def now(self) -> dt.datetime:
        """Return the current time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> dt.datetime:
        """Return the current UTC time."""
        return dt.datetime.now(dt.UTC)


IdFactory = Callable[[], str]


class Uuid7:
    """RFC 9562 UUIDv7 ids, strictly increasing within the process.

    Layout: 48-bit Unix milliseconds, version 7, a 12-bit counter (method 1 of RFC 9562
    section 6.2: it restarts at a random value each millisecond and carries into the
    timestamp if it overflows), variant, 62 random bits. Randomness is read from the OS in
    4 KiB blocks: one os.urandom call per id measured 45 µs on this VM, a third of a
    decision's policy time.
    """

    _BLOCK = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0
        self._pool = b""
        self._pos = 0

    def _random(self, n: int) -> int:
        if self._pos + n > len(self._pool):
            self._pool, self._pos = os.urandom(self._BLOCK), 0
        chunk = self._pool[self._pos : self._pos + n]
        self._pos += n
        return int.from_bytes(chunk, "big")

    def __call__(self) -> str:
        """Return a new id."""
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms > self._last_ms:
                self._counter = self._random(2) & 0x7FF  # leave headroom before overflow
            else:
                ms = self._last_ms
                self._counter += 1
                if self._counter > 0xFFF:
                    ms, self._counter = ms + 1, 0
            self._last_ms = ms
            tail = self._random(8) & ((1 << 62) - 1)
        value = (ms << 80) | (0x7 << 76) | (self._counter << 64) | (0b10 << 62) | tail
        return str(uuid.UUID(int=value))


_default = Uuid7()


def new_id() -> str:
    """Return a new time-sortable id (UUIDv7) from the process-wide generator."""
    return _default()
