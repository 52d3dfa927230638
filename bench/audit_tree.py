"""The audit log's Merkle tree at 1,000,000 entries: building it, proof sizes and times.

The log is bench/audit_query.py's (a valid chain with a realistic mix, written directly in a
child process), as a log written before migration 0008. The real SqliteStore then opens it
and builds the tree (timed: build_s, entries/s: what the upgrade of an existing log costs),
and answers proofs as GetInclusionProof and GetConsistencyProof do (app/audit/proofs.py: the
rows of the nodes read in one query, the hashes folded), each checked by the client's
verifier (signoff_client.merkle). Reported: the median and p99 µs of a proof read, of its
verification, the number of hashes and bytes of a proof, and the stored tree's size.
Writes bench/results/audit_tree.json.

    python bench/audit_tree.py [--entries 1000000] [--db PATH (reused if it exists)] [--runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from audit_query import build
from common import median, percentile, write

from signoff.app.audit import proofs
from signoff.core import log_tree
from signoff.ids import SystemClock
from signoff.store import SqliteStore
from signoff_client import merkle


async def measure(path: Path, runs: int) -> dict[str, Any]:
    """Open the log (building its tree), then time random proofs against its root."""
    store = SqliteStore(path, SystemClock(), tree_idle=None)
    start = time.perf_counter()
    await store.open()
    n = await store.build_tree()
    build_s = time.perf_counter() - start
    rnd = random.Random(3)
    root = await proofs.root(store, n)
    inc_read, inc_verify, inc_len = [], [], []
    for _ in range(runs):
        index = rnd.randrange(n)
        [entry] = await store.read_audit(index + 1, 1)
        leaf = log_tree.entry_leaf_hash(entry)
        assert leaf is not None
        t0 = time.perf_counter()
        path_ = await proofs.read(store, log_tree.inclusion_ranges(index, n))
        t1 = time.perf_counter()
        merkle.verify_inclusion(leaf, index, n, path_, root)
        t2 = time.perf_counter()
        inc_read.append((t1 - t0) * 1e6)
        inc_verify.append((t2 - t1) * 1e6)
        inc_len.append(len(path_))
    con_read, con_verify, con_len = [], [], []
    for _ in range(runs):
        first = rnd.randrange(1, n)
        t0 = time.perf_counter()
        *proof, old_root = await proofs.read(
            store, [*log_tree.consistency_ranges(first, n), (0, first)]
        )
        t1 = time.perf_counter()
        merkle.verify_consistency(first, n, proof, old_root, root)
        t2 = time.perf_counter()
        con_read.append((t1 - t0) * 1e6)
        con_verify.append((t2 - t1) * 1e6)
        con_len.append(len(proof))
    await store.close()
    conn = sqlite3.connect(path)
    rows, hashes = conn.execute("SELECT count(*), sum(length(hashes)) FROM audit_tree").fetchone()
    conn.close()

    def stats(read: list[float], verify: list[float], sizes: list[int]) -> dict[str, Any]:
        return {
            "read_us_median": round(median(read), 1),
            "read_us_p99": round(percentile(read, 99), 1),
            "verify_us_median": round(median(verify), 1),
            "hashes_median": median([float(x) for x in sizes]),
            "hashes_max": max(sizes),
            "bytes_max": 32 * max(sizes),
        }

    return {
        "entries": n,
        "tree_build_s": round(build_s, 1),
        "tree_build_entries_per_s": round(n / build_s),
        "tree_rows": rows,
        "tree_hash_mib": round(hashes / 2**20, 1),
        "inclusion": stats(inc_read, inc_verify, inc_len),
        "consistency": stats(con_read, con_verify, con_len),
    }


def main() -> None:
    """Build (or reuse) the log, measure, write results/audit_tree.json."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "audit.db"
        if not path.exists():
            start = time.perf_counter()
            child = multiprocessing.get_context("spawn").Process(
                target=build, args=(path, args.entries)
            )
            child.start()
            child.join()
            if child.exitcode != 0:
                raise SystemExit(f"build failed with exit code {child.exitcode}")
            print(f"built {args.entries:,} entries in {time.perf_counter() - start:.0f} s")
        size_mib = sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20
        results = asyncio.run(measure(path, args.runs))
        results["db_mib"] = round(size_mib, 1)
    for kind in ("inclusion", "consistency"):
        r = results[kind]
        print(
            f"{kind:<12} read {r['read_us_median']} µs (p99 {r['read_us_p99']}), verify "
            f"{r['verify_us_median']} µs, {r['hashes_median']:.0f} hashes (max {r['hashes_max']}"
            f", {r['bytes_max']} bytes)"
        )
    print(
        f"tree of {results['entries']:,} entries built in {results['tree_build_s']} s "
        f"({results['tree_build_entries_per_s']:,}/s), {results['tree_hash_mib']} MiB of hashes"
    )
    print(f"wrote {write('audit_tree', {'runs': args.runs, **results})}")


if __name__ == "__main__":
    main()
