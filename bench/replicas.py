"""Decisions per second: 1, 2 and 3 replicas on PostgreSQL against one SQLite process.

Same workload, same run: refund requests (allow / review / deny mix) from one grpc.aio load
generator spread round-robin over the replicas. On this 2-core machine the replicas, the
database and the load generator share the CPUs, so the figures show the overhead of the
shared chain lock and PostgreSQL round trips, not the scaling a real deployment (replicas
on their own hosts) would see.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc
import psycopg
from common import median, percentile, write
from e2e import REPO, _drain, _request

from signoff_client._gen import decision_pb2_grpc

PG = os.environ.get("SIGNOFF_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
DURATION = float(os.environ.get("BENCH_DURATION", "4"))
CONCURRENCY = 32


async def _serve(db: str, key: Path) -> tuple[asyncio.subprocess.Process, str]:
    env = {**os.environ, "SIGNOFF_AUDIT__SIGNING_KEY": str(key), "SIGNOFF_AUDIT__CREATE_KEY": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "signoff.cli.main", "serve", "--listen", "127.0.0.1:0",
        "--http-listen", "", "--policies", str(REPO / "policies"), "--db", db,
        "--log-format", "json",
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    while True:
        line = (await proc.stderr.readline()).decode()
        if not line:
            raise RuntimeError("server exited before it started")
        if '"server.started"' in line:
            target = line.split('"listen": "')[1].split('"')[0]
            asyncio.get_running_loop().create_task(_drain(proc.stderr))
            return proc, target


async def _load(targets: list[str]) -> dict[str, float]:
    channels = [grpc.aio.insecure_channel(t) for t in targets]
    stubs = [decision_pb2_grpc.DecisionServiceStub(c).Evaluate for c in channels]
    reqs = [_request(i) for i in range(3)]
    latencies: list[float] = []
    stop = time.perf_counter() + DURATION

    async def worker(w: int) -> None:
        i = w
        while time.perf_counter() < stop:
            t = time.perf_counter()
            await stubs[i % len(stubs)](reqs[i % 3])
            latencies.append(time.perf_counter() - t)
            i += CONCURRENCY

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    elapsed = time.perf_counter() - t0
    for c in channels:
        await c.close()
    return {
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(median(latencies) * 1e3, 2),
        "p99_ms": round(percentile(latencies, 99) * 1e3, 2),
    }


async def _run(label: str, dbs: list[str], key: Path) -> dict[str, object]:
    procs = [await _serve(db, key) for db in dbs]
    try:
        await _load([t for _, t in procs])  # warm-up
        result = await _load([t for _, t in procs])
    finally:
        for p, _ in procs:
            p.terminate()
            await p.wait()
    print(f"{label:<22} {result['rps']:8.0f}/s  p50 {result['p50_ms']:6.2f} ms  "
          f"p99 {result['p99_ms']:6.2f} ms", flush=True)  # fmt: skip
    return {"setup": label, **result}


async def main_async() -> list[dict[str, object]]:
    """Measure SQLite with one process, then PostgreSQL with 1, 2 and 3 replicas."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "key.pem"
        rows.append(await _run("sqlite, 1 process", [f"sqlite:///{tmp}/bench.db"], key))
        for n in (1, 2, 3):
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            url = f"{PG}?options=-csearch_path%3D{schema}"
            try:
                rows.append(await _run(f"postgres, {n} replica(s)", [url] * n, key))
            finally:
                with psycopg.connect(PG, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return rows


def main() -> int:
    """Run and write results/replicas.json."""
    rows = asyncio.run(main_async())
    print(f"wrote {write('replicas', {'rows': rows, 'concurrency': CONCURRENCY})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
