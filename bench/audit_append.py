"""Durable audit appends per second: group commit vs one transaction per append.

Both modes use the same SqliteStore (WAL, synchronous=FULL); "one transaction per append" is
max_batch=1. Each run appends OPS records concurrently (asyncio.gather) to a fresh database,
like many concurrent Evaluate calls would. Prints medians; writes bench/results/audit_append.json.

    python bench/audit_append.py [--ops 2000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from signoff.core.audit import AuditRecord, verify_chain
from signoff.ids import SystemClock
from signoff.store import DecisionRecord, SqliteStore

RESULTS = Path(__file__).parent / "results" / "audit_append.json"


def record(clock: SystemClock, n: int) -> AuditRecord:
    return AuditRecord(
        type="decision",
        time=clock.now(),
        actor="agent-1",
        request_id=f"req-{n}",
        decision_id=f"dec-{n}",
        action_name="refund.issue",
        outcome="AUTO_ALLOW",
        principal="agent-1",
        rules=("small-refund",),
        policy_version="bench",
        payload={"params": {"amount": 12.5, "currency": "EUR", "order": f"o-{n}"}},
    )


def decision(clock: SystemClock, n: int) -> tuple[DecisionRecord, AuditRecord]:
    """What one Evaluate writes: the decision row (idempotency key) and its audit entry."""
    rec = DecisionRecord(
        decision_id=f"dec-{n}",
        principal_id="agent-1",
        request_id=f"req-{n}",
        request_digest=hashlib.sha256(f"request {n}".encode()).hexdigest(),
        action_name="refund.issue",
        outcome="OUTCOME_AUTO_ALLOW",
        created_at=clock.now(),
        decision=b"x" * 300,
    )
    return rec, record(clock, n)


async def run(ops: int, max_batch: int, concurrent: bool, decisions: bool = False) -> dict:
    clock = SystemClock()
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.db", clock, max_batch=max_batch)
        await store.open()
        pairs = [decision(clock, i) for i in range(ops)]
        start = time.perf_counter()
        if decisions:
            await asyncio.gather(*(store.record_decision(d, a) for d, a in pairs))
        elif concurrent:
            await asyncio.gather(*(store.append([a]) for _, a in pairs))
        else:
            for _, a in pairs:
                await store.append([a])
        elapsed = time.perf_counter() - start
        stats = store.stats
        assert verify_chain(await store.read_audit(1, ops)).ok
        await store.close()
    return {"ops_per_s": ops / elapsed, "commits": stats.commits, "seconds": elapsed}


def fsync_latency_ms(samples: int = 200) -> float:
    """Median time of one 4 KiB write + fsync in the temp directory (what a commit waits on)."""
    timings = []
    with tempfile.TemporaryDirectory() as tmp:
        fd = os.open(Path(tmp) / "probe", os.O_WRONLY | os.O_CREAT)
        try:
            for _ in range(samples):
                start = time.perf_counter()
                os.write(fd, b"x" * 4096)
                os.fsync(fd)
                timings.append(time.perf_counter() - start)
        finally:
            os.close(fd)
    return statistics.median(timings) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    modes = {
        "group_commit_concurrent": (512, True, False),
        "txn_per_append_concurrent": (1, True, False),
        "sequential_await": (512, False, False),
        # What Evaluate writes (decision row + audit entry), many in flight: the writer's
        # capacity that the end-to-end decision rate is compared with (bench/run.py).
        "decision_writes_concurrent": (512, True, True),
    }
    results: dict[str, dict[str, float]] = {}
    for name, (max_batch, concurrent, decisions) in modes.items():
        runs = [await run(args.ops, max_batch, concurrent, decisions) for _ in range(args.runs)]
        results[name] = {
            "median_ops_per_s": round(statistics.median(r["ops_per_s"] for r in runs), 1),
            "median_commits": statistics.median(r["commits"] for r in runs),
            "runs_ops_per_s": [round(r["ops_per_s"], 1) for r in runs],
        }
        print(
            f"{name:28} {results[name]['median_ops_per_s']:>10.1f} appends/s "
            f"(median of {args.runs}; {results[name]['median_commits']:.0f} commits "
            f"for {args.ops} appends)"
        )
    speedup = (
        results["group_commit_concurrent"]["median_ops_per_s"]
        / results["txn_per_append_concurrent"]["median_ops_per_s"]
    )
    fsync_ms = fsync_latency_ms()
    print(f"group commit speed-up: {speedup:.1f}x (median fsync on this disk: {fsync_ms:.3f} ms)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "ops_per_run": args.ops,
                "runs": args.runs,
                "synchronous": "FULL",
                "journal_mode": "WAL",
                "sqlite": sqlite3.sqlite_version,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "modes": results,
                "group_commit_speedup": round(speedup, 1),
                "median_fsync_ms": round(fsync_ms, 3),
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    asyncio.run(main())
