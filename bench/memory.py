"""Server memory: RSS of a `signoff serve` process at idle, with a 10,000-rule bundle, and
while and after N decisions are driven through it.

Each server is a subprocess (gRPC on 127.0.0.1:0, no HTTP port, SQLite in a temp dir);
RSS is VmRSS from /proc/<pid>/status. Phases:

1. idle: the example policies (policies/), nothing asked yet;
2. 10k rules: a fresh server on bench/engine.py's 10,000-rule bundle (1,000 action names),
   nothing asked yet;
3. load: N Evaluate calls on that server from several grpc.aio channels, each request for a
   random action name of the bundle, RSS printed every 10%;
4. after: RSS once the load stopped and the server sat idle for a few seconds.

Growth is judged on the second half of the run (RSS at 50% of N against RSS at 100%): a
process that leaks keeps growing there, one that reached its working set is flat.

Usage: python bench/memory.py [--decisions N] [--channels C] [--concurrency K]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from common import write
from e2e import REPO, start_server
from engine import RULES_PER_ACTION, make_bundle, refund_request

from signoff_client._gen import decision_pb2_grpc

RULES = 10_000
SETTLE_S = 2.0  # after a server starts or the load stops, before RSS is read
# Growth of RSS from 50% to 100% of the decisions, above which memory "keeps growing".
GROWTH_LIMIT_MIB = 5.0


def rss_mib(pid: int) -> float:
    """Resident set size of a process, MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def _stop(proc: asyncio.subprocess.Process) -> None:
    proc.terminate()
    await proc.wait()


async def idle_rss(policies: Path, db: Path) -> tuple[float, float]:
    """(seconds to start, RSS MiB) of a server on `policies` that was asked nothing."""
    t = time.perf_counter()
    proc = (await start_server(db, policies)).proc
    started = time.perf_counter() - t
    try:
        await asyncio.sleep(SETTLE_S)
        return started, rss_mib(proc.pid)
    finally:
        await _stop(proc)


async def drive(
    target: str, pid: int, decisions: int, channels: int, concurrency: int
) -> list[dict[str, float]]:
    """Send `decisions` Evaluate calls; sample RSS at every 10%; return the samples."""
    actions = RULES // RULES_PER_ACTION
    rng = random.Random(1)
    reqs = [refund_request(f"svc{rng.randrange(actions)}.act") for _ in range(1_000)]
    chans = [grpc.aio.insecure_channel(target) for _ in range(channels)]
    stubs = [decision_pb2_grpc.DecisionServiceStub(ch).Evaluate for ch in chans]
    step = max(1, decisions // 10)
    samples = [{"decisions": 0, "seconds": 0.0, "rss_mib": round(rss_mib(pid), 1)}]
    print(f"{0:>10,} decisions  rss {samples[0]['rss_mib']:7.1f} MiB", flush=True)
    started = done = 0
    t0 = time.perf_counter()

    async def worker(w: int) -> None:
        nonlocal started, done
        call = stubs[w % channels]
        while started < decisions:
            i = started
            started += 1
            await call(reqs[i % len(reqs)])
            done += 1
            if done % step == 0:
                elapsed = time.perf_counter() - t0
                rss = rss_mib(pid)
                samples.append(
                    {"decisions": done, "seconds": round(elapsed, 1), "rss_mib": round(rss, 1)}
                )
                print(
                    f"{done:>10,} decisions  rss {rss:7.1f} MiB  {done / elapsed:6.0f}/s "
                    f"({elapsed:.0f} s)",
                    flush=True,
                )

    try:
        await asyncio.gather(*(worker(w) for w in range(channels * concurrency)))
    finally:
        for ch in chans:
            await ch.close()
    return samples


async def run(decisions: int, channels: int, concurrency: int) -> dict[str, Any]:
    """All four phases; figures in MiB."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start_s, idle = await idle_rss(REPO / "policies", root / "idle.db")
        print(f"idle (example policies): rss {idle:.1f} MiB (started in {start_s:.1f} s)")
        bundle = root / "bundle"
        bundle.mkdir()
        make_bundle(bundle, RULES)
        t = time.perf_counter()
        server = await start_server(root / "load.db", bundle)
        proc, target = server.proc, server.target
        start_10k = time.perf_counter() - t
        try:
            await asyncio.sleep(SETTLE_S)
            loaded = rss_mib(proc.pid)
            print(f"{RULES:,} rules: rss {loaded:.1f} MiB (started in {start_10k:.1f} s)")
            t = time.perf_counter()
            samples = await drive(target, proc.pid, decisions, channels, concurrency)
            elapsed = time.perf_counter() - t
            await asyncio.sleep(SETTLE_S)
            after = rss_mib(proc.pid)
        finally:
            await _stop(proc)
    half = min(samples, key=lambda s: abs(s["decisions"] - decisions / 2))
    end = samples[-1]
    growth = end["rss_mib"] - half["rss_mib"]
    verdict = "keeps growing" if growth > GROWTH_LIMIT_MIB else "levels off"
    print(
        f"after {decisions:,} decisions ({decisions / elapsed:.0f}/s): rss {after:.1f} MiB; "
        f"{half['decisions']:,} -> {end['decisions']:,} decisions: {growth:+.1f} MiB "
        f"({verdict})"
    )
    return {
        "rules": RULES,
        "decisions": decisions,
        "channels": channels,
        "concurrency_per_channel": concurrency,
        "decisions_per_s": round(decisions / elapsed),
        "rss_mib_idle": round(idle, 1),
        "rss_mib_10k_rules": round(loaded, 1),
        "start_s_10k_rules": round(start_10k, 1),
        "rss_mib_after": round(after, 1),
        "rss_mib_peak_sample": max(s["rss_mib"] for s in samples),
        "second_half_growth_mib": round(growth, 1),
        "verdict": verdict,
        "samples": samples,
    }


def main() -> int:
    """Measure and write results/memory.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decisions", type=int, default=100_000, help="decisions to drive")
    ap.add_argument("--channels", type=int, default=4, help="gRPC channels (connections)")
    ap.add_argument("--concurrency", type=int, default=16, help="calls in flight per channel")
    args = ap.parse_args()
    data = asyncio.run(run(args.decisions, args.channels, args.concurrency))
    print(f"wrote {write('memory', data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
