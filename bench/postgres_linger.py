"""Decisions per commit on PostgreSQL, end to end: Evaluate at concurrency 1, 8 and 64 against
one `signoff serve` on a fresh schema, with the commit linger at LINGERS (store.commit_linger,
0 = never wait), alternating settings round by round (and which goes first) so that each
sees the same load. Also the server process's CPU time per call (e2e.py's thread_cpu).

Decisions per commit come from the server's own /metrics (e2e.py's batch_counts), as in the
end-to-end table; the load generator is e2e.py's.

    BENCH_DURATION=2 BENCH_ROUNDS=2 python bench/postgres_linger.py
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

import grpc
import psycopg
from common import median, write
from e2e import REPO, _drain, _request, load

from signoff import pb
from signoff_client._gen import decision_pb2_grpc

PG = os.environ.get("SIGNOFF_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
DURATION = float(os.environ.get("BENCH_DURATION", "3"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
LINGERS = (0.0, 0.002)
CONCURRENCY = (1, 8, 64)


async def serve(
    url: str, linger: float, state: Path
) -> tuple[asyncio.subprocess.Process, str, str]:
    """Start `signoff serve` on `url` with commit_linger `linger`: (process, target, /metrics)."""
    env = {
        **os.environ,
        "SIGNOFF_STATE_DIR": str(state),
        "SIGNOFF_STORE__COMMIT_LINGER": str(linger),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "signoff.cli.main", "serve", "--listen", "127.0.0.1:0",
        "--http-listen", "127.0.0.1:0", "--policies", str(REPO / "policies"), "--db", url,
        "--log-format", "json", stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    while True:
        line = (await proc.stderr.readline()).decode()
        if not line:
            raise RuntimeError("server exited before it started")
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("event") == "server.started":
            break
    asyncio.get_running_loop().create_task(_drain(proc.stderr))
    return proc, entry["listen"], f"http://{entry['http']}/metrics"


async def one(linger: float, state: Path) -> dict[int, dict[str, float]]:
    """One round of every concurrency against a server on a fresh schema."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG else "?"
    proc, target, metrics = await serve(f"{PG}{sep}options=-csearch_path%3D{schema}", linger, state)
    channel = grpc.aio.insecure_channel(target)
    try:
        evaluate = decision_pb2_grpc.DecisionServiceStub(channel).Evaluate
        run_id = os.urandom(4).hex()

        def call(i: int) -> object:
            req = pb.common.ActionRequest()
            req.CopyFrom(_request(i))
            req.request_id = f"{run_id}-{i}"
            return evaluate(req)

        await load(call, 8, 0.5, [proc.pid])  # warm-up
        return {c: await load(call, c, DURATION, [proc.pid], metrics) for c in CONCURRENCY}
    finally:
        await channel.close()
        proc.terminate()
        await proc.wait()
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def run() -> dict:
    """Every linger, alternating, ROUNDS times; medians of the rounds."""
    samples: dict[float, list[dict[int, dict[str, float]]]] = {x: [] for x in LINGERS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(ROUNDS):
            for linger in LINGERS if r % 2 == 0 else LINGERS[::-1]:  # neither always first
                samples[linger].append(await one(linger, Path(tmp)))
    rows = []
    for linger, rounds in samples.items():
        for c in CONCURRENCY:
            row = {"commit_linger": linger, "concurrency": c}
            for key in ("rps", "p50_ms", "p99_ms", "ops_per_commit", "cpu_us_total"):
                row[key] = median([r[c].get(key, 0.0) for r in rounds])
            rows.append(row)
            print(
                f"linger {linger * 1e3:.0f} ms, c={c}: {row['rps']:.0f}/s, p50 "
                f"{row['p50_ms']:.2f} ms, {row['ops_per_commit']:.1f} decisions/commit, "
                f"server CPU {row['cpu_us_total']:.0f} µs/call"
            )
    return {"duration_s": DURATION, "rounds": ROUNDS, "rows": rows}


def main() -> int:
    """Run the bench and write results/postgres_linger.json."""
    print(f"load before: {os.getloadavg()}")
    data = asyncio.run(run())
    print(f"load after: {os.getloadavg()}")
    print(f"wrote {write('postgres_linger', data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
