"""The standing-approval lookup that every review-rule decision makes: the store read alone
(`grants.cache_ttl: 0`) against the cached read (the default 1 s), in process, on SQLite.

The store read goes through the reader threads; on the server it overlaps with other work,
so end to end its saving hides in the run-to-run noise of a 2-core machine. Here it is
measured alone: one lookup at a time, and 64 in flight, the two settings alternating round
after round so that drift of the machine hits both alike.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

from common import median, write

from signoff.app.grants.cache import ActiveGrants
from signoff.ids import SystemClock
from signoff.store import SqliteStore

KEY = ("refund.issue", "finance", "refunds", "large-refund")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
CALLS = 2000
IN_FLIGHT = 64


async def one_at_a_time(cache: ActiveGrants, now: dt.datetime) -> float:
    """µs per lookup, awaited one after the other."""
    t = time.perf_counter()
    for _ in range(CALLS):
        await cache.get(*KEY, now)
    return (time.perf_counter() - t) / CALLS * 1e6


async def in_flight(cache: ActiveGrants, now: dt.datetime) -> float:
    """µs per lookup (wall time / lookups) with IN_FLIGHT of them awaited together."""
    t = time.perf_counter()
    for _ in range(CALLS // IN_FLIGHT):
        await asyncio.gather(*(cache.get(*KEY, now) for _ in range(IN_FLIGHT)))
    return (time.perf_counter() - t) / (CALLS // IN_FLIGHT * IN_FLIGHT) * 1e6


async def run() -> dict:
    """Alternate the two settings for ROUNDS rounds; medians per setting and mode."""
    with tempfile.TemporaryDirectory(prefix="signoff-bench-") as tmp:
        store = SqliteStore(Path(tmp) / "bench.db", SystemClock())
        await store.open()
        try:
            now = dt.datetime.now(dt.UTC)
            settings = {"store read (cache_ttl 0)": 0.0, "cached (cache_ttl 1 s)": 1.0}
            samples: dict[str, dict[str, list[float]]] = {
                name: {"sequential": [], "in_flight": []} for name in settings
            }
            for _ in range(ROUNDS):
                for name, ttl in settings.items():
                    cache = ActiveGrants(store, ttl)
                    samples[name]["sequential"].append(await one_at_a_time(cache, now))
                    samples[name]["in_flight"].append(await in_flight(cache, now))
        finally:
            await store.close()
    rows = [
        {
            "setting": name,
            "sequential_us": round(median(s["sequential"]), 1),
            "in_flight_us": round(median(s["in_flight"]), 1),
        }
        for name, s in samples.items()
    ]
    for r in rows:
        print(
            f"{r['setting']:<26} {r['sequential_us']:>7} µs one at a time, "
            f"{r['in_flight_us']:>6} µs each with {IN_FLIGHT} in flight"
        )
    return {"rows": rows, "rounds": ROUNDS, "calls": CALLS, "in_flight": IN_FLIGHT}


def main() -> int:
    """Measure the lookup and write results/grant_lookup.json."""
    print(f"wrote {write('grant_lookup', asyncio.run(run()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
