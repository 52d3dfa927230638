"""What the side index's tail costs an audit query: first pages of 100 (bench/audit_query.py's
filters) with the TAIL newest entries not indexed yet (which queries scan directly; the
store's indexer keeps them under about 512 under load) and with the side index caught up.

On a database of bench/audit_query.py (--db, required: it gets TAIL more entries, so give
it a copy; a second copy beside it is the caught-up one). Both get the same entries and are
measured in turn, three rounds; medians. Writes results/audit_query_tail.json.

    python bench/audit_query_tail.py --db COPY.db [--tail 512] [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import time
from pathlib import Path
from typing import Any

from audit_query import STEP, T0, _decision, queries, timed
from common import median, write

from signoff.ids import SystemClock
from signoff.store import AuditQuery, SqliteStore
from signoff.store.sqlite import audit_index


async def measure(path: Path, tail: int, runs: int) -> dict[str, Any]:
    """Medians of every filter's first page with `tail` entries unindexed and caught up:
    two copies of the database given the same entries, measured query by query in turn."""
    copy = path.with_name(path.name + ".caught-up")
    shutil.copyfile(path, copy)
    stores = {}
    for name, file in (("tail", path), ("caught_up", copy)):
        store = SqliteStore(file, SystemClock(), index_every=10**9, index_idle=None)
        await store.open()
        await store.index_audit()
        stores[name] = store
    head, _ = await stores["tail"].audit_head()
    rnd = random.Random(11)
    records = [_decision(rnd, 10**7 + i, T0 + STEP * (head + i), "v9") for i in range(tail)]
    for store in stores.values():
        for start in range(0, tail, 64):
            await store.append(records[start : start + 64])
    await stores["caught_up"].index_audit()
    through = await stores["tail"].maintenance(audit_index.indexed_through)
    now, _ = await stores["tail"].audit_head()
    [first] = await stores["tail"].read_audit(1, 1)
    [last] = await stores["tail"].read_audit(now, 1)
    mid = first.time + (last.time - first.time) / 2
    [review] = await stores["tail"].query_audit(
        AuditQuery(types=("review.opened",), from_seq=head // 3), limit=1
    )
    named = queries(mid, last.time, review)
    for store in stores.values():  # warm the caches
        await measure_all(store, named, 1)
    medians: dict[str, dict[str, list[tuple[float, float]]]] = {n: {} for n in named}
    for _ in range(3):  # rounds, in turn
        for kind, store in stores.items():
            for name, pair in (await measure_all(store, named, runs)).items():
                medians[name].setdefault(kind, []).append(pair)
    for store in stores.values():
        await store.close()
    copy.unlink()
    rows = []
    print(
        f"{'query (first page of 100)':32} {'asc':>6} {'asc+tail':>8} {'desc':>6} {'desc+tail':>9}"
    )
    for name in named:
        a, ad = (round(median([p[i] for p in medians[name]["caught_up"]]), 2) for i in (0, 1))
        b, bd = (round(median([p[i] for p in medians[name]["tail"]]), 2) for i in (0, 1))
        rows.append(
            {"query": name, "asc_ms": a, "asc_tail_ms": b, "desc_ms": ad, "desc_tail_ms": bd}
        )
        print(f"{name:32} {a:6.2f} {b:8.2f} {ad:6.2f} {bd:9.2f}")
    return {"entries": now, "tail": now - through, "rows": rows}


async def measure_all(
    store: SqliteStore, named: dict[str, AuditQuery], runs: int
) -> dict[str, tuple[float, float]]:
    """Median ms of each first page, ascending and descending."""
    out = {}
    for name, q in named.items():
        asc, _ = await timed(store, q, runs)
        desc, _ = await timed(store, q, runs, descending=True)
        out[name] = (round(asc, 2), round(desc, 2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--tail", type=int, default=512)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    start = time.perf_counter()
    out = asyncio.run(measure(args.db, args.tail, args.runs))
    print(f"wrote {write('audit_query_tail', out)} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
