"""Injected time and identifiers, so tests move time instead of sleeping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Protocol

import uuid6


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


def new_id() -> str:
    """Return a new time-sortable id (UUIDv7, RFC 9562)."""
    return str(uuid6.uuid7())
