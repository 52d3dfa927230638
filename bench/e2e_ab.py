"""This tree's server against an older checkout's, end to end, in one run.

`bench/e2e.py` compares calls within one server; across commits its figures are not
comparable, because the machine's load differs from run to run (the health Check alone
moved from 2,900 to 5,500/s between two days). This runs e2e.py's single-process measure
(Evaluate, the no-op floor and Check at 1, 8 and 64 in flight) against the server of each
tree in turn, AB_RUNS times, alternating, and writes every run to results/e2e_ab.json.

    BASE_SOURCE=/path/to/older/checkout python bench/e2e_ab.py

The older tree's server runs with PYTHONPATH set to its service/ and clients/python/ and
its own policies/; the load generator is this tree's, the same for both.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import e2e
from common import median, write

RUNS = int(os.environ.get("AB_RUNS", "2"))


def _label(root: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return out.stdout.strip() or str(root)


async def run(base: Path) -> dict:
    """Alternate the two trees' servers, RUNS times; medians per tree and concurrency."""
    trees = {"base": base, "new": e2e.REPO}
    runs: dict[str, list[list[dict]]] = {"base": [], "new": []}
    load_before = [round(x, 2) for x in os.getloadavg()]
    for _ in range(RUNS):
        for name, root in trees.items():
            if name == "base":
                os.environ["PYTHONPATH"] = f"{root / 'service'}:{root / 'clients' / 'python'}"
            else:
                os.environ.pop("PYTHONPATH", None)
            print(f"== {name} ({_label(root)})", flush=True)
            # Each tree's server with its own example policies (a newer file may use rule
            # keys the older loader refuses).
            runs[name].append(await e2e.measure(1, e2e.CONCURRENCY, root / "policies"))
    os.environ.pop("PYTHONPATH", None)
    summary = []
    for conc in e2e.CONCURRENCY:
        row: dict = {"concurrency": conc}
        for name, tree_runs in runs.items():
            rows = [next(r for r in one if r["concurrency"] == conc) for one in tree_runs]
            for call in ("evaluate", "noop_evaluate", "health_check"):
                for key in ("rps", "p50_ms", "cpu_us_total"):
                    row[f"{name}_{call}_{key}"] = round(median([r[call][key] for r in rows]), 2)
            per_commit = [r["evaluate"].get("ops_per_commit", 0.0) for r in rows]
            row[f"{name}_ops_per_commit"] = round(median(per_commit), 1)
            row[f"{name}_ratio"] = round(median([r["ratio"] for r in rows]), 2)
        summary.append(row)
    return {
        "base": _label(base),
        "new": _label(e2e.REPO),
        "runs_per_tree": RUNS,
        "duration_s": e2e.DURATION,
        "summary": summary,
        "runs": runs,
        "loadavg_before": load_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> int:
    """Run the A/B and write results/e2e_ab.json."""
    base = os.environ.get("BASE_SOURCE")
    if not base:
        print("set BASE_SOURCE to the older checkout (its root)", file=sys.stderr)
        return 2
    data = asyncio.run(run(Path(base).resolve()))
    for row in data["summary"]:
        c = row["concurrency"]
        print(
            f"c={c:<3} Evaluate/s {row['base_evaluate_rps']:7.0f} -> {row['new_evaluate_rps']:7.0f}"
            f"  p50 ms {row['base_evaluate_p50_ms']:6.2f} -> {row['new_evaluate_p50_ms']:6.2f}"
            f"  CPU µs {row['base_evaluate_cpu_us_total']:6.0f} -> "
            f"{row['new_evaluate_cpu_us_total']:6.0f}"
            f"  per commit {row['base_ops_per_commit']:4.1f} -> {row['new_ops_per_commit']:4.1f}"
            f"  ratio to Check {row['base_ratio']:.2f} -> {row['new_ratio']:.2f}"
        )
    print(f"wrote {write('e2e_ab', data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
