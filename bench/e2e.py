"""End to end: Evaluate (with its durable audit append) against the same server's no-op
grpc.health.v1 Check and its no-op Evaluate, at concurrency 1, 8 and 64, measured in the
same run; then the same with `serve --workers 2`.

The no-op Evaluate (signoff.bench.v1.Bench/NoopEvaluate, service/signoff/api/bench.py) is
the floor: it parses the same ActionRequest and answers a Decision of the real one's size
(matched rules, a receipt) through the same transport, authentication, limits and field
bounds, and evaluates, writes and signs nothing. The server serves it only because the bench
starts it with SIGNOFF_BENCH_NOOP=1. Evaluate / no-op is what deciding and recording cost;
no-op / Check is what the request's and the Decision's size cost.

The server runs as its own process (`signoff serve`, SQLite, example policies); the load
generator is this grpc.aio process, bounded in time (DURATION) and spread over CHANNELS
connections (a worker serves whole connections). Each Evaluate carries a fresh request_id,
as the Python client sends. On a 2-core machine the load generator and the server compete
for the cores, so the ratio Evaluate/Check is the figure to read, not the absolute rate.

Where the time goes: the server's CPU time per call, by thread (from /proc), for each
measured run: the event loop (gRPC's Python layer, the handlers, the engine), the audit
writer, gRPC's C-core threads, and the rest.

Decisions per commit: the group commit's own histogram (signoff_audit_batch_size on the
server's /metrics), read before and after each Evaluate run: operations committed over
commits. One process only: with `--workers 2` each worker keeps its own /metrics.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from common import median, percentile, write
from grpc_health.v1 import health_pb2, health_pb2_grpc

from signoff import pb
from signoff_client._gen import decision_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
CONCURRENCY = (1, 8, 64)
WORKERS_CONCURRENCY = (8, 64)  # where 2 worker processes are compared with 1
CHANNELS = 8
DURATION = float(os.environ.get("BENCH_DURATION", "4"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
TICK = os.sysconf("SC_CLK_TCK")
NOOP_PATH = "/signoff.bench.v1.Bench/NoopEvaluate"  # served only with SIGNOFF_BENCH_NOOP=1


@dataclass
class Server:
    """A `signoff serve` started for the bench."""

    proc: asyncio.subprocess.Process
    target: str  # the gRPC address
    pids: list[int]  # the processes that serve (the workers under a supervisor)
    metrics_url: str  # its /metrics, "" when it has none (several workers)


async def start_server(
    db: Path, policies: Path = REPO / "policies", workers: int = 1, *, metrics: bool = False
) -> Server:
    """Start `signoff serve` (SQLite at `db`): gRPC only, or with `metrics` an HTTP port too
    that only /metrics is read from (one process: each worker keeps its own counts)."""
    if metrics and workers != 1:
        raise ValueError("metrics: one process only")
    http = "127.0.0.1:0" if metrics else ""  # the browser port is not what is measured
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "signoff.cli.main", "serve",
        "--listen", "127.0.0.1:0",
        "--http-listen", http,
        "--policies", str(policies), "--db", f"sqlite:///{db}",
        "--log-format", "json", "--workers", str(workers),
        stderr=asyncio.subprocess.PIPE,
        # A throwaway server: its signing key goes with its database, not to ~/.local/state.
        # SIGNOFF_BENCH_NOOP=1: serve the no-op Evaluate, the floor (api/bench.py).
        # SIGNOFF_LIMITS__PEERS__RATE=0: the load generator is one peer address, and the
        # per-peer rate limit (2,000 calls/s) would refuse the Check runs it is compared with.
        env={**os.environ, "SIGNOFF_STATE_DIR": str(db.parent / "state"),
             "SIGNOFF_BENCH_NOOP": "1", "SIGNOFF_LIMITS__PEERS__RATE": "0"},
    )  # fmt: skip
    assert proc.stderr is not None
    while True:
        line = (await proc.stderr.readline()).decode()
        if not line:
            raise RuntimeError("server exited before it started")
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("event") == "server.started" and (workers == 1 or "workers" in entry):
            break
    # Drain the log so the server never blocks on a full pipe.
    asyncio.get_running_loop().create_task(_drain(proc.stderr))
    metrics = f"http://{entry['http']}/metrics" if http else ""
    return Server(proc, entry["listen"], entry.get("pids", [proc.pid]), metrics)


def batch_counts(metrics_url: str) -> tuple[float, float]:
    """(operations, commits) so far, from the group commit's batch-size histogram."""
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("signoff_audit_batch_size_sum", "signoff_audit_batch_size_count"):
            found[name] = float(value)
    return found.get("signoff_audit_batch_size_sum", 0.0), found.get(
        "signoff_audit_batch_size_count", 0.0
    )


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


def thread_cpu(pids: list[int]) -> dict[str, float]:
    """CPU seconds so far of the serving processes, by thread role."""
    out: dict[str, float] = {}
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            except FileNotFoundError:
                continue  # a thread that ended meanwhile
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            seconds = (int(fields[11]) + int(fields[12])) / TICK
            role = (
                "event_loop"
                if tid == str(pid)
                else "audit_writer"
                if name.startswith("signoff-writer")
                else "grpc_core"
                if name in ("event_engine", "grpc_global_tim") or name.startswith("grpc")
                else "other"
            )
            out[role] = out.get(role, 0.0) + seconds
    return out


async def load(
    call: Callable[[int], Awaitable[object]],
    concurrency: int,
    duration: float,
    pids: list[int],
    metrics_url: str = "",
) -> dict[str, float]:
    """Run `call(i)` from `concurrency` workers for `duration` seconds; with the serving
    processes' CPU time per call, by thread role (µs), and the operations per group commit
    when `metrics_url` is given."""
    latencies: list[float] = []
    stop = time.perf_counter() + duration

    async def worker(w: int) -> None:
        i = w
        while time.perf_counter() < stop:
            t = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - t)
            i += concurrency

    ops_before = batch_counts(metrics_url) if metrics_url else (0.0, 0.0)
    before = thread_cpu(pids)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - t0
    after = thread_cpu(pids)
    n = len(latencies)
    cpu = {f"cpu_us_{k}": (after[k] - before.get(k, 0.0)) / n * 1e6 for k in after}
    out = {
        "rps": n / elapsed,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
        "cpu_us_total": sum(cpu.values()),
        **cpu,
    }
    if metrics_url:
        ops, commits = (a - b for a, b in zip(batch_counts(metrics_url), ops_before, strict=True))
        if commits:
            out["ops_per_commit"] = ops / commits
    return out


async def measure(
    workers: int, concurrency: tuple[int, ...], policies: Path = REPO / "policies"
) -> list[dict]:
    """Both calls at every concurrency, alternating, ROUNDS times; medians of the rounds."""
    with tempfile.TemporaryDirectory() as tmp:
        server = await start_server(
            Path(tmp) / "bench.db", policies, workers=workers, metrics=workers == 1
        )
        target, pids = server.target, server.pids
        # A local subchannel pool per channel: CHANNELS distinct connections.
        channels = [
            grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(CHANNELS)
        ]
        try:
            decide = [decision_pb2_grpc.DecisionServiceStub(ch).Evaluate for ch in channels]
            noop = [
                ch.unary_unary(
                    NOOP_PATH,
                    request_serializer=pb.common.ActionRequest.SerializeToString,
                    response_deserializer=pb.common.Decision.FromString,
                )
                for ch in channels
            ]
            check = [health_pb2_grpc.HealthStub(ch).Check for ch in channels]
            hreq = health_pb2.HealthCheckRequest()
            reqs = [_request(i) for i in range(3)]
            run_id = os.urandom(4).hex()

            def request(i: int) -> pb.common.ActionRequest:
                req = pb.common.ActionRequest()
                req.CopyFrom(reqs[i % 3])
                req.request_id = f"{run_id}-{i}"  # fresh per call, as the client sends
                return req

            calls = {
                "evaluate": lambda i: decide[i % CHANNELS](request(i)),
                "noop_evaluate": lambda i: noop[i % CHANNELS](request(i)),
                "health_check": lambda i: check[i % CHANNELS](hreq),
            }
            for c in calls.values():  # warm-up
                await load(c, 8, 0.5, pids)
            rows = []
            for conc in concurrency:
                samples: dict[str, list[dict[str, float]]] = {k: [] for k in calls}
                for _ in range(ROUNDS):
                    for name, c in calls.items():
                        run_id = os.urandom(4).hex()
                        samples[name].append(
                            await load(c, conc, DURATION / ROUNDS, pids, server.metrics_url)
                        )
                row: dict = {"concurrency": conc, "workers": workers}
                for name, runs in samples.items():
                    keys = sorted({k for r in runs for k in r})
                    row[name] = {k: round(median([r.get(k, 0.0) for r in runs]), 3) for k in keys}
                ev, nop, hc = row["evaluate"], row["noop_evaluate"], row["health_check"]
                row["ratio"] = round(ev["rps"] / hc["rps"], 2)
                row["ratio_evaluate_noop"] = round(ev["rps"] / nop["rps"], 2)
                row["ratio_noop_check"] = round(nop["rps"] / hc["rps"], 2)
                # What real Evaluate adds to the floor, per call and thread (µs of server CPU).
                row["evaluate_minus_noop_cpu_us"] = {
                    k.removeprefix("cpu_us_"): round(ev.get(k, 0.0) - nop.get(k, 0.0), 1)
                    for k in sorted({*ev, *nop})
                    if k.startswith("cpu_us_")
                }
                for k in ("health_check", "noop_evaluate"):
                    row[k].pop("ops_per_commit", None)  # neither writes
                rows.append(row)
                per_commit = ev.get("ops_per_commit")
                print(
                    f"workers={workers} c={conc:<3} evaluate {ev['rps']:6.0f}/s "
                    f"p50 {ev['p50_ms']:6.2f} ms p99 {ev['p99_ms']:6.2f} ms "
                    f"cpu {ev['cpu_us_total']:5.0f} µs | no-op {nop['rps']:6.0f}/s "
                    f"cpu {nop['cpu_us_total']:4.0f} µs | check {hc['rps']:6.0f}/s "
                    f"p99 {hc['p99_ms']:6.2f} ms cpu {hc['cpu_us_total']:4.0f} µs "
                    f"| ratio {row['ratio']:.2f}, to no-op {row['ratio_evaluate_noop']:.2f}, "
                    f"no-op/check {row['ratio_noop_check']:.2f}"
                    + (f" | {per_commit:.1f} decisions/commit" if per_commit else ""),
                    flush=True,
                )
            return rows
        finally:
            for ch in channels:
                await ch.close()
            server.proc.terminate()
            await server.proc.wait()


async def run() -> dict:
    """One process at every concurrency, then two worker processes."""
    # The machine may be shared: the load average before and after says how much it was.
    load_before = [round(x, 2) for x in os.getloadavg()]
    rows = await measure(1, CONCURRENCY)
    two = await measure(2, WORKERS_CONCURRENCY)
    scaling = []
    for row in two:
        one = next(r for r in rows if r["concurrency"] == row["concurrency"])
        scaling.append(
            {
                "concurrency": row["concurrency"],
                "evaluate_1": one["evaluate"]["rps"],
                "evaluate_2": row["evaluate"]["rps"],
                "evaluate_speedup": round(row["evaluate"]["rps"] / one["evaluate"]["rps"], 2),
                "check_1": one["health_check"]["rps"],
                "check_2": row["health_check"]["rps"],
                "check_speedup": round(row["health_check"]["rps"] / one["health_check"]["rps"], 2),
                "ratio_2": row["ratio"],
            }
        )
    return {
        "rows": rows,
        "workers_rows": two,
        "scaling": scaling,
        "channels": CHANNELS,
        "duration_s": DURATION,
        "rounds": ROUNDS,
        "loadavg_before": load_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> int:
    """Run the end-to-end benchmark and write results/e2e.json."""
    data = asyncio.run(run())
    print(f"wrote {write('e2e', data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
