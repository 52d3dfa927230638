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
    replicas_path = RESULTS / "replicas.json"
    if replicas_path.exists():
        rep = json.loads(replicas_path.read_text())
        out += [
            "",
            f"**Replicas** (Evaluate at concurrency {rep['concurrency']}, one load generator, "
            "all on this 2-core machine):",
            "",
            "| setup | decisions /s | p50 ms | p99 ms |",
            "|---|---:|---:|---:|",
        ]
        out += [
            f"| {r['setup']} | {r['rps']:.0f} | {r['p50_ms']} | {r['p99_ms']} |"
            for r in rep["rows"]
        ]
    audit_path = RESULTS / "audit_query.json"
    if audit_path.exists():
        out += audit_table(json.loads(audit_path.read_text()))
    return "\n".join(out) + "\n"


def audit_table(aq: dict) -> list[str]:
    """The audit query and export figures (bench/audit_query.py)."""
    out = [
        "",
        f"**Audit log at {aq['entries']:,} entries** (SQLite {aq['sqlite']}, "
        f"{aq['db_mib']:.0f} MiB; first page of 100, median of {aq['runs_per_median']} runs):",
        "",
        "| query | asc ms | desc ms |",
        "|---|---:|---:|",
    ]
    for q in aq["queries"]:
        name = q["query"].replace("|", " or ")
        out.append(f"| {name} | {q['asc_ms']} | {q['desc_ms']} |")
    for name, page in aq.get("deep_page", {}).items():
        out.append(
            f"| page after seq {page['after_seq']:,} ({name}) | {page['asc_ms']} "
            f"| {page['desc_ms']} |"
        )
    for key in ("export", "export_deny"):
        ex = aq.get(key)
        if ex:
            out.append("")
            out.append(
                f"Export walk, filter {ex['filter']}: {ex['entries']:,} entries in "
                f"{ex['seconds']} s ({ex['entries_per_s']:,}/s); RSS {ex['rss_mib_before']} "
                f"-> {ex['rss_mib_after']} MiB (flat)."
            )
    return out


def quote_in_readme(text: str) -> None:
    """Replace the table between the bench markers of the top-level README."""
    readme = HERE.parent / "README.md"
    start, end = "<!-- bench:start -->\n", "<!-- bench:end -->"
    doc = readme.read_text()
    head, _, rest = doc.partition(start)
    _, _, tail = rest.partition(end)
    readme.write_text(f"{head}{start}{text}{end}{tail}")


def main() -> int:
    """Run the benchmarks (unless --table-only), write the table, quote it in the README."""
    if "--table-only" not in sys.argv:
        for script in ("engine.py", "e2e.py", "replicas.py", "audit_query.py"):
            print(f"== {script}", flush=True)
            subprocess.run([sys.executable, str(HERE / script)], check=True, cwd=HERE)
    text = table()
    (RESULTS / "README.md").write_text(text)
    quote_in_readme(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
