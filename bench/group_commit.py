"""The write path's changes (group commit linger, chain checked by the writer), each against
its baseline in one run.

Variants of the same server, measured by bench/e2e.py's `measure` (Evaluate and the health
Check at concurrency 1, 8 and 64, alternating, medians of rounds), in turn and ROUNDS_ALL
times over so that a noisy minute of a shared machine hits every variant alike:

- ``base``: the server of BASE_SOURCE (a checkout of the commit before these changes, given
  by the environment: ``BASE_SOURCE=/tmp/base/service``), when it is given;
- ``no_trigger``: this tree, commit linger off (``SIGNOFF_STORE__COMMIT_LINGER=0``): the
  chain checked by the writer instead of a trigger, temp_store=MEMORY;
- ``linger``: this tree as shipped (``store.commit_linger`` at its default, 2 ms);
- ``linger_5ms``: the same with a 5 ms bound, for the trade-off.

``BENCH_VARIANTS=base,linger`` runs only those (e.g. a later change of this tree, such as the
auditors' side index, against BASE_SOURCE = the commit before it).

Writes results/group_commit.json: per variant and concurrency, Evaluate /s, p50, p99,
decisions per commit (from the server's /metrics), Check /s and the ratio.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from common import median, write
from e2e import CONCURRENCY, measure

ROUNDS_ALL = int(os.environ.get("BENCH_REPEATS", "2"))


def variants() -> dict[str, dict[str, str]]:
    """Environment of each variant's server, by name."""
    out: dict[str, dict[str, str]] = {}
    base = os.environ.get("BASE_SOURCE")
    if base:
        client = str(Path(base).parent / "clients" / "python")
        out["base"] = {"PYTHONPATH": f"{base}:{client}"}
    out["no_trigger"] = {"SIGNOFF_STORE__COMMIT_LINGER": "0"}
    out["linger"] = {}
    out["linger_5ms"] = {"SIGNOFF_STORE__COMMIT_LINGER": "0.005"}
    # BENCH_VARIANTS=base,linger: only these (a later change against its baseline).
    only = [name for name in os.environ.get("BENCH_VARIANTS", "").split(",") if name]
    return {name: env for name, env in out.items() if not only or name in only}


async def run() -> dict:
    """Every variant, ROUNDS_ALL times in turn; medians per variant and concurrency."""
    runs: dict[str, list[list[dict]]] = {name: [] for name in variants()}
    saved = dict(os.environ)
    for _ in range(ROUNDS_ALL):
        for name, env in variants().items():
            print(f"== {name}", flush=True)
            os.environ.update(env)
            try:
                runs[name].append(await measure(1, CONCURRENCY))
            finally:
                os.environ.clear()
                os.environ.update(saved)
    rows = []
    for name, measured in runs.items():
        for i, conc in enumerate(CONCURRENCY):
            at = [m[i] for m in measured]
            ev = [r["evaluate"] for r in at]
            rows.append(
                {
                    "variant": name,
                    "concurrency": conc,
                    "evaluate_rps": round(median([e["rps"] for e in ev]), 1),
                    "p50_ms": round(median([e["p50_ms"] for e in ev]), 2),
                    "p99_ms": round(median([e["p99_ms"] for e in ev]), 2),
                    "per_commit": round(median([e.get("ops_per_commit", 0.0) for e in ev]), 2),
                    "cpu_us": round(median([e["cpu_us_total"] for e in ev]), 0),
                    "check_rps": round(median([r["health_check"]["rps"] for r in at]), 1),
                    "ratio": round(median([r["ratio"] for r in at]), 3),
                }
            )
    return {"rows": rows, "repeats": ROUNDS_ALL}


def main() -> int:
    """Run the comparison and write results/group_commit.json."""
    data = asyncio.run(run())
    for r in data["rows"]:
        print(
            f"{r['variant']:<11} c={r['concurrency']:<3} {r['evaluate_rps']:6.0f}/s "
            f"p50 {r['p50_ms']:6.2f} ms  {r['per_commit']:5.1f}/commit  ratio {r['ratio']:.2f}"
        )
    print(f"wrote {write('group_commit', data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
