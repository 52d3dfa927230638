"""End to end: Evaluate (with its durable audit append) against the same server's no-op
grpc.health.v1 Check, at concurrency 1, 8 and 64, measured in the same run.

The server runs as its own process (`signoff serve`, SQLite, example policies); the load
generator is one grpc.aio process. On a 2-core machine the two compete for CPU, so the
ratio Evaluate/Check is the figure to read, not the absolute rate.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import grpc
from common import median, percentile, write
from grpc_health.v1 import health_pb2, health_pb2_grpc

from signoff import pb
from signoff_client._gen import decision_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
CONCURRENCY = (1, 8, 64)
DURATION = float(os.environ.get("BENCH_DURATION", "4"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


async def start_server(
    db: Path, policies: Path = REPO / "policies"
) -> tuple[asyncio.subprocess.Process, str]:
    """Start `signoff serve` (gRPC only, SQLite at `db`); return it and its address."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signoff.cli.main",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "",  # gRPC only: the browser port is not what is measured
        "--policies",
        str(policies),
        "--db",
        f"sqlite:///{db}",
        "--log-format",
        "json",
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    while True:
        line = (await proc.stderr.readline()).decode()
        if not line:
            raise RuntimeError("server exited before it started")
        m = re.search(r'"server.started".*"listen": "([^"]+)"', line)
        if m:
            break
    # Drain the log so the server never blocks on a full pipe.
    asyncio.get_running_loop().create_task(_drain(proc.stderr))
    return proc, m.group(1)


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


def _request(i: int) -> pb.common.ActionRequest:
    r = pb.common.ActionRequest()
    r.action.name = "refund.issue"
    r.action.params.update({"amount": (120, 750, 25_000)[i % 3], "currency": "EUR"})
    r.principal.id = "bench-bot"
    r.principal.kind = "agent"
    return r


async def load(call, concurrency: int, duration: float) -> dict[str, float]:
    """Run `call(i)` from `concurrency` workers for `duration` seconds."""
    latencies: list[float] = []
    stop = time.perf_counter() + duration

    async def worker(w: int) -> None:
        i = w
        while time.perf_counter() < stop:
            t = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - t)
            i += concurrency

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - t0
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
    }


async def run() -> dict:
    """Measure both calls at every concurrency, alternating, ROUNDS times; keep medians."""
    with tempfile.TemporaryDirectory() as tmp:
        proc, target = await start_server(Path(tmp) / "bench.db")
        try:
            async with grpc.aio.insecure_channel(target) as ch:
                decide = decision_pb2_grpc.DecisionServiceStub(ch).Evaluate
                check = health_pb2_grpc.HealthStub(ch).Check
                hreq = health_pb2.HealthCheckRequest()
                reqs = [_request(i) for i in range(3)]
                calls = {
                    "evaluate": lambda i: decide(reqs[i % 3]),
                    "health_check": lambda i: check(hreq),
                }
                for c in calls.values():  # warm-up
                    await load(c, 8, 0.5)
                rows = []
                for conc in CONCURRENCY:
                    samples: dict[str, list[dict[str, float]]] = {k: [] for k in calls}
                    for _ in range(ROUNDS):
                        for name, c in calls.items():
                            samples[name].append(await load(c, conc, DURATION / ROUNDS))
                    row: dict = {"concurrency": conc}
                    for name, runs in samples.items():
                        row[name] = {k: round(median([r[k] for r in runs]), 3) for k in runs[0]}
                    row["ratio"] = round(row["evaluate"]["rps"] / row["health_check"]["rps"], 2)
                    rows.append(row)
                    ev = row["evaluate"]
                    print(
                        f"c={conc:<3} evaluate {ev['rps']:8.0f}/s "
                        f"p50 {ev['p50_ms']:6.2f} ms p99 {ev['p99_ms']:6.2f} ms"
                        f" | check {row['health_check']['rps']:8.0f}/s "
                        f"p99 {row['health_check']['p99_ms']:6.2f} ms | ratio {row['ratio']:.2f}",
                        flush=True,
                    )
                return {"rows": rows, "duration_s": DURATION, "rounds": ROUNDS}
        finally:
            proc.terminate()
            await proc.wait()


def main() -> int:
    """Run the end-to-end benchmark and write results/e2e.json."""
    data = asyncio.run(run())
    print(f"wrote {write('e2e', data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
