"""Run every benchmark and write bench/results/*.json plus the table the README quotes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def table() -> str:
    """Render results/*.json as the markdown table quoted in the README."""
    eng = json.loads((RESULTS / "engine.json").read_text())
    e2e = json.loads((RESULTS / "e2e.json").read_text())
    m = eng["machine"]
    out = [
        f"Measured {m['date']} on {m['cpus']} cores, Python {m['python']}.",
        "",
        "**Policy time** (engine only, median per decision, 10 rules per action name):",
        "",
        "| rules | action names | load | µs / decision | ratio to 10 rules |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in eng["bundles"]:
        out.append(
            f"| {r['rules']:,} | {r['actions']:,} | {r['load_s']} s | {r['median_us']} "
            f"| {r['ratio_to_10']} |"
        )
    out += [
        "",
        f"Example refund policy: {eng['example_refund_policy_us']} µs per decision.",
        "",
        "**End to end** (Evaluate with durable audit append vs the same server's "
        "health Check, medians of rounds):",
        "",
        "| concurrency | Evaluate /s | p50 ms | p99 ms | Check /s | Check p99 ms | ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in e2e["rows"]:
        ev, hc = r["evaluate"], r["health_check"]
        out.append(
            f"| {r['concurrency']} | {ev['rps']:.0f} | {ev['p50_ms']:.2f} | {ev['p99_ms']:.2f} "
            f"| {hc['rps']:.0f} | {hc['p99_ms']:.2f} | {r['ratio']:.2f} |"
        )
    return "\n".join(out) + "\n"


def quote_in_readme(text: str) -> None:
    """Replace the table between the bench markers of the top-level README."""
    readme = HERE.parent / "README.md"
    start, end = "<!-- bench:start -->\n", "<!-- bench:end -->"
    doc = readme.read_text()
    head, _, rest = doc.partition(start)
    _, _, tail = rest.partition(end)
    readme.write_text(f"{head}{start}{text}{end}{tail}")


def main() -> int:
    """Run engine.py and e2e.py (unless --table-only), write the table, quote it."""
    if "--table-only" not in sys.argv:
        for script in ("engine.py", "e2e.py"):
            print(f"== {script}", flush=True)
            subprocess.run([sys.executable, str(HERE / script)], check=True, cwd=HERE)
    text = table()
    (RESULTS / "README.md").write_text(text)
    quote_in_readme(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
