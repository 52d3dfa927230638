"""Decision writes per second at the store level: PostgreSQL against SQLite, in one run.

What Evaluate writes (the decision row and its audit entry; with --reviews, one decision in
four also opens a review), OPS calls of `record_decision` in flight at once (asyncio.gather),
as audit_append.py's decision_writes_concurrent mode does for SQLite. Each PostgreSQL run
works in a fresh schema of the server at SIGNOFF_TEST_POSTGRES_URL. Also counted, through a
relay that reads the protocol (tests/pgwire.py): the round trips (points where the client
waits for the server) and statements a batch of 100 decisions costs.

--baseline REF runs the PostgreSQL figures a second time with the `signoff` package of git
revision REF (exported to a temporary directory), interleaved run by run with the current
code so that both see the same machine load.

    python bench/postgres_writes.py [--ops 2000] [--runs 5] [--baseline REF]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from audit_append import decision
from common import write

from signoff.core.audit import AuditRecord, verify_chain
from signoff.ids import SystemClock
from signoff.store import DecisionRecord, ReviewRecord, SqliteStore, Store

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.pgwire import WireCounter  # noqa: E402

PG = os.environ.get("SIGNOFF_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
Call = tuple[DecisionRecord, AuditRecord, ReviewRecord | None, AuditRecord | None]


def calls(ops: int, reviews: bool) -> list[Call]:
    """`ops` decisions; with `reviews`, every fourth opens a review."""
    clock = SystemClock()
    out: list[Call] = []
    for n in range(ops):
        rec, audit = decision(clock, n)
        if not (reviews and n % 4 == 0):
            out.append((rec, audit, None, None))
            continue
        review = ReviewRecord(
            review_id=f"rev-{n}", decision_id=rec.decision_id, principal_id=rec.principal_id,
            on_behalf_of="", action_name=rec.action_name, reviewer_group="finance",
            state="PENDING", version=1, created_at=rec.created_at, updated_at=rec.created_at,
            expires_at=None, review=b"r" * 200,
        )  # fmt: skip
        opened = AuditRecord(
            type="review.opened", time=rec.created_at, actor="system", request_id=rec.request_id,
            decision_id=rec.decision_id, review_id=review.review_id, action_name=rec.action_name,
            principal=rec.principal_id, reviewer_group="finance", review_state="PENDING",
            policy_version="bench", payload={},
        )  # fmt: skip
        rec = dataclasses.replace(rec, outcome="OUTCOME_REQUIRE_REVIEW")
        out.append((rec, audit, review, opened))
    return out


class Schema:
    """A fresh schema of the server, dropped on exit."""

    def __init__(self) -> None:
        self.name = f"signoff_bench_{uuid.uuid4().hex[:10]}"

    def __enter__(self) -> str:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.name}"')
        sep = "&" if "?" in PG else "?"
        return f"{PG}{sep}options=-csearch_path%3D{self.name}"

    def __exit__(self, *exc: object) -> None:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{self.name}" CASCADE')


async def _timed(store: Store, batch: list[Call]) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(store.record_decision(*c) for c in batch))
    return time.perf_counter() - start


async def run_postgres(ops: int, reviews: bool) -> dict[str, Any]:
    """One run on a fresh schema: decisions/s and commits."""
    from signoff.store.postgres.store import PostgresStore

    with Schema() as url:
        store = PostgresStore(url, SystemClock())
        await store.open()
        try:
            await _timed(store, calls(50, reviews))  # connections and prepared statements warm
            batch = calls(ops + 50, reviews)[50:]
            elapsed = await _timed(store, batch)
            stats = store.stats
            assert verify_chain(await store.read_audit(1, 10 * ops)).ok
        finally:
            await store.close()
    return {"ops_per_s": ops / elapsed, "commits": stats.commits - 1}


async def wire_cost(n: int, reviews: bool) -> dict[str, Any]:
    """Round trips and statements of one group commit of `n` decisions (after a warm-up)."""
    from signoff.store.postgres.store import PostgresStore

    with Schema() as url:
        relay = WireCounter(url)
        await relay.start()
        store = PostgresStore(relay.url(), SystemClock())
        await store.open()
        try:
            await _timed(store, calls(20, reviews))
            before = store.stats
            relay.reset()
            await _timed(store, calls(n + 20, reviews)[20:])
            assert store.stats.commits == before.commits + 1, "the batch took several commits"
            return {
                "decisions": n,
                "round_trips": relay.round_trips,
                "statements": relay.statements,
            }
        finally:
            await store.close()
            await relay.close()


async def run_sqlite(ops: int, reviews: bool) -> dict[str, Any]:
    """One run on a fresh SQLite database (WAL, synchronous=FULL)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.db", SystemClock(), max_batch=512)
        await store.open()
        try:
            batch = calls(ops, reviews)
            elapsed = await _timed(store, batch)
            stats = store.stats
        finally:
            await store.close()
    return {"ops_per_s": ops / elapsed, "commits": stats.commits}


def export(ref: str, into: Path) -> Path:
    """Write the `service/` tree of git revision `ref` under `into`; return its path."""
    archive = into / "tree.tar"
    subprocess.run(
        ["git", "-C", str(REPO), "archive", "-o", str(archive), ref, "service"], check=True
    )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "service"


def baseline_run(service: Path, args: argparse.Namespace, wire: bool) -> dict[str, Any]:
    """One PostgreSQL run of this script in a subprocess importing `signoff` from `service`."""
    env = {**os.environ, "PYTHONPATH": str(service)}
    cmd = [sys.executable, __file__, "--child", "--ops", str(args.ops)]
    cmd += ["--reviews"] if args.reviews else []
    cmd += ["--wire"] if wire else []
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def revision() -> str:
    """The commit measured (with "+dirty" when the tree has changes)."""
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "service"], capture_output=True, text=True
    ).stdout.strip()
    return head + ("+dirty" if dirty else "")


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "median_ops_per_s": round(statistics.median(r["ops_per_s"] for r in runs), 1),
        "median_commits": statistics.median(r["commits"] for r in runs),
        "runs_ops_per_s": [round(r["ops_per_s"], 1) for r in runs],
    }


async def child(args: argparse.Namespace) -> None:
    import signoff

    result: dict[str, Any] = await run_postgres(args.ops, args.reviews)
    if args.wire:
        result["wire"] = await wire_cost(100, args.reviews)
    result["package"] = str(Path(signoff.__file__).parent)
    print(json.dumps(result))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reviews", action="store_true", help="one decision in 4 opens a review")
    parser.add_argument("--baseline", default="", help="git revision to compare with")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--wire", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        await child(args)
        return
    series: dict[str, list[dict[str, Any]]] = {"sqlite": [], "postgres": []}
    with tempfile.TemporaryDirectory() as tmp:
        service = export(args.baseline, Path(tmp)) if args.baseline else None
        if service is not None:
            series["postgres_baseline"] = []
        wire: dict[str, Any] = {"postgres": await wire_cost(100, args.reviews)}
        for i in range(args.runs):
            series["sqlite"].append(await run_sqlite(args.ops, args.reviews))
            series["postgres"].append(await run_postgres(args.ops, args.reviews))
            if service is not None:
                got = baseline_run(service, args, wire=i == 0)
                assert got["package"].startswith(tmp), got["package"]
                wire.setdefault("postgres_baseline", got.pop("wire", None))
                series["postgres_baseline"].append(got)
    modes = {name: summary(runs) for name, runs in series.items()}
    for name, m in modes.items():
        print(
            f"{name:18} {m['median_ops_per_s']:>9.1f} decisions/s (median of {args.runs}; "
            f"{m['median_commits']:.0f} commits for {args.ops})"
        )
    for name, w in wire.items():
        print(
            f"{name:18} a batch of {w['decisions']}: {w['round_trips']} round trips, "
            f"{w['statements']} statements"
        )
    pg = modes["postgres"]["median_ops_per_s"]
    result: dict[str, Any] = {
        "ops_per_run": args.ops,
        "runs": args.runs,
        "reviews": "one decision in 4 opens a review" if args.reviews else "none",
        "revision": revision(),
        "baseline": args.baseline,
        "modes": modes,
        "wire": wire,
        "postgres_to_sqlite": round(pg / modes["sqlite"]["median_ops_per_s"], 2),
    }
    if "postgres_baseline" in modes:
        result["speedup_over_baseline"] = round(
            pg / modes["postgres_baseline"]["median_ops_per_s"], 2
        )
        print(f"speed-up over {args.baseline}: {result['speedup_over_baseline']}x")
    print(f"postgres / sqlite: {result['postgres_to_sqlite']}")
    name = "postgres_writes_reviews" if args.reviews else "postgres_writes"
    write(name, result)


if __name__ == "__main__":
    asyncio.run(main())
