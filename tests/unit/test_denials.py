"""Refused calls are counted by kind, within a bounded number of kinds (issue 19 item 5)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from signoff.app.denials import DenialLog
from signoff.limits.ingress import DenialAudit


class Clock:
    def now(self) -> dt.datetime:
        return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class Store:
    def __init__(self) -> None:
        self.records: list[Any] = []

    async def append(self, records: list[Any]) -> list[Any]:
        self.records += records
        return []


async def test_many_kinds_beyond_max_keys_are_summed_in_one_entry():
    store = Store()
    log = DenialLog(store, Clock(), DenialAudit(max_keys=3))  # type: ignore[arg-type]
    for i in range(1000):  # a new peer address each time, as an IPv6 attacker could
        await log.denied("s/M", "", "unknown token", peer=f"2001:db8::{i:x}")
    assert len(store.records) == 3  # the first of each of the 3 kinds kept
    assert len(log.pending) == 1  # everything else under one key
    await log.flush()
    assert len(store.records) == 4
    overflow = store.records[-1].payload
    assert (overflow["peer"], overflow["count"]) == ("*", 997)


async def test_repeats_are_written_once_per_interval():
    store = Store()
    log = DenialLog(store, Clock(), DenialAudit())  # type: ignore[arg-type]
    for _ in range(50):
        await log.denied("s/M", "dave", "needs the role admin", peer="10.0.0.1")
    await log.flush()
    await log.denied("s/M", "dave", "needs the role admin", peer="10.0.0.1")
    assert [r.payload["count"] for r in store.records] == [1, 49, 1]
    assert store.records[0].actor == "dave"
