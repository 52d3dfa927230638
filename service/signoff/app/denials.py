"""Refused calls (unauthenticated, permission denied) in the audit log, counted rather than
stored one by one: a caller without a token must not be able to grow the log at will.

The first refusal of a kind (peer, identity, method, reason) is written at once, so an
auditor sees it as it happens; repeats are counted and written as one summary entry per kind
when the interval ends (and at shutdown), with the count and the first and last time."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from signoff.core.audit import AuditRecord
from signoff.ids import Clock
from signoff.limits.ingress import DenialAudit
from signoff.store.base import Store

log = logging.getLogger("signoff.denials")

MAX_REASON = 200  # characters of the refusal message kept in the key and the entry
# Kinds beyond `max_keys` are counted under this one, so memory stays bounded.
OVERFLOW = ("*", "*", "*", "other refusals (more kinds than limits.denials.max_keys)")


@dataclass(slots=True)
class _Count:
    count: int
    first: dt.datetime
    last: dt.datetime


class DenialLog:
    """Counts refusals by kind and writes them to the audit log as described above."""

    def __init__(self, store: Store, clock: Clock, settings: DenialAudit) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.pending: dict[tuple[str, str, str, str], _Count] = {}
        self.seen: set[tuple[str, str, str, str]] = set()  # kinds written in this interval

    async def denied(self, method: str, who: str, message: str, peer: str = "") -> None:
        """Count one refused call; the first of its kind in an interval is written now."""
        key = (peer, who, method, message[:MAX_REASON])
        now = self.clock.now()
        if key not in self.seen:
            if len(self.seen) < self.settings.max_keys:
                self.seen.add(key)
                await self.store.append([_record(key, 1, now, now, now)])
                return
            key = OVERFLOW
        counted = self.pending.get(key)
        if counted is None:
            self.pending[key] = _Count(1, now, now)
        else:
            counted.count += 1
            counted.last = now

    async def flush(self) -> None:
        """Write the counted repeats, one entry per kind, and start a new interval."""
        pending, self.pending, self.seen = self.pending, {}, set()
        if not pending:
            return
        now = self.clock.now()
        try:
            await self.store.append(
                [_record(key, c.count, c.first, c.last, now) for key, c in pending.items()]
            )
        except BaseException:
            # Counted again at the next flush, still within max_keys + 1 kinds.
            for key, c in pending.items():
                if (later := self.pending.get(key)) is not None:
                    c.count, c.last = c.count + later.count, later.last
                self.pending[key] = c
            raise

    async def flush_forever(self) -> None:
        """Flush every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.settings.interval)
            try:
                await self.flush()
            except Exception:
                log.exception("writing the refused calls' summary failed; retrying")


def _record(
    key: tuple[str, str, str, str],
    count: int,
    first: dt.datetime,
    last: dt.datetime,
    now: dt.datetime,
) -> AuditRecord:
    peer, who, method, message = key
    return AuditRecord(
        type="access.denied",
        actor=who,
        time=now,
        payload={
            "method": method,
            "error": message,
            "peer": peer,
            "count": count,
            "first": first.isoformat(),
            "last": last.isoformat(),
        },
    )
