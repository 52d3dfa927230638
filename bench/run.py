"""Run every benchmark and write bench/results/*.json plus the table docs/benchmarks.md quotes."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
# The guide that quotes the table, between its bench markers.
GUIDE = HERE.parent / "docs" / "benchmarks.md"

# Every result file latest.json gathers, by its name in latest.json.
PARTS = (
    "engine",
    "e2e",
    "alternatives",
    "replicas",
    "audit_query",
    "audit_append",
    "memory",
)
PACKAGES = ("grpcio", "protobuf", "cel-expr-python", "cel-python", "matplotlib")


def table() -> str:
    """Render results/*.json as the markdown table quoted in docs/benchmarks.md."""
    eng = json.loads((RESULTS / "engine.json").read_text())
    e2e = json.loads((RESULTS / "e2e.json").read_text())
    m = eng["machine"]
    # Results from before bench/e2e.py recorded the load average have none.
    before, after = e2e.get("loadavg_before"), e2e.get("loadavg_after")
    load = (
        f"load average {before[0]} before, {after[0]} after"
        if before and after
        else "load not recorded"
    )
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
        f"**End to end** ({e2e['machine']['date']}, {load}; medians of rounds). Evaluate "
        "with durable audit append against the same server's no-op Evaluate, the floor (the "
        "same request and a Decision of the same size through the same transport, "
        "authentication and limits; nothing decided, written or signed), and its health "
        "Check:",
        "",
        "| concurrency | Evaluate /s | p50 ms | p99 ms | decisions / commit | no-op /s "
        "| Check /s | Check p99 ms | Evaluate / Check | Evaluate / no-op | no-op / Check |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in e2e["rows"]:
        ev, hc = r["evaluate"], r["health_check"]
        # From the server's /metrics; results from before bench/e2e.py read it have none.
        per_commit = f"{ev['ops_per_commit']:.1f}" if "ops_per_commit" in ev else "n/a"
        # Results from before the no-op series have none of its columns.
        nop = r.get("noop_evaluate")
        nop_cells = (
            f"{nop['rps']:.0f} | {hc['rps']:.0f} | {hc['p99_ms']:.2f} | {r['ratio']:.2f} "
            f"| {r['ratio_evaluate_noop']:.2f} | {r['ratio_noop_check']:.2f}"
            if nop
            else f"n/a | {hc['rps']:.0f} | {hc['p99_ms']:.2f} | {r['ratio']:.2f} | n/a | n/a"
        )
        out.append(
            f"| {r['concurrency']} | {ev['rps']:.0f} | {ev['p50_ms']:.2f} | {ev['p99_ms']:.2f} "
            f"| {per_commit} | {nop_cells} |"
        )
    out += cpu_table(e2e)
    gc_path = RESULTS / "group_commit.json"
    if gc_path.exists():
        out += group_commit_table(json.loads(gc_path.read_text()))
    insert_path = RESULTS / "audit_insert.json"
    if insert_path.exists():
        out += audit_insert_lines(json.loads(insert_path.read_text()))
    out += workers_table(e2e)
    append_path = RESULTS / "audit_append.json"
    if append_path.exists():
        out += durability_lines(json.loads(append_path.read_text()), e2e)
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
    alt_path = RESULTS / "alternatives.json"
    if alt_path.exists():
        out += alternatives_table(json.loads(alt_path.read_text()))
    mem_path = RESULTS / "memory.json"
    if mem_path.exists():
        out += memory_table(json.loads(mem_path.read_text()))
    audit_path = RESULTS / "audit_query.json"
    if audit_path.exists():
        out += audit_table(json.loads(audit_path.read_text()))
    grant_path = RESULTS / "grant_lookup.json"
    if grant_path.exists():
        out += grant_lines(json.loads(grant_path.read_text()))
    mcp_path = RESULTS / "mcp_proxy.json"
    if mcp_path.exists():
        out += mcp_lines(json.loads(mcp_path.read_text()))
    limits_path = RESULTS / "limits_cost.json"
    if limits_path.exists():
        out += limits_lines(json.loads(limits_path.read_text()))
    decision_path = RESULTS / "decision_inproc.json"
    if decision_path.exists():
        out += decision_lines(json.loads(decision_path.read_text()))
    return "\n".join(out) + "\n"


ROLES = ("event_loop", "audit_writer", "grpc_core", "other")


def cpu_table(e2e: dict) -> list[str]:
    """The server's CPU time per call by thread: where the time goes (bench/e2e.py)."""
    out = [
        "",
        "**Where the time goes** (the server's CPU µs per call, by thread, from /proc; the "
        "event loop runs gRPC's Python layer, the handlers and the engine):",
        "",
        "| concurrency | call | event loop | audit writer | gRPC core | other | total |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    calls = (
        ("Evaluate", "evaluate"),
        ("no-op Evaluate", "noop_evaluate"),
        ("Check", "health_check"),
    )
    for r in e2e["rows"]:
        for name, key in calls:
            if key not in r:
                continue  # results from before the no-op series
            c = r[key]
            cells = " | ".join(f"{c.get(f'cpu_us_{role}', 0):.0f}" for role in ROLES)
            out.append(f"| {r['concurrency']} | {name} | {cells} | {c['cpu_us_total']:.0f} |")
        added = r.get("evaluate_minus_noop_cpu_us")
        if added:
            cells = " | ".join(f"{added.get(role, 0):+.0f}" for role in ROLES)
            out.append(
                f"| {r['concurrency']} | *Evaluate minus no-op* | {cells} | {added['total']:+.0f} |"
            )
    return out


def workers_table(e2e: dict) -> list[str]:
    """`serve --workers 2` against one process, same load generator (bench/e2e.py)."""
    if not e2e.get("scaling"):
        return []
    out = [
        "",
        f"**Several processes** (`serve --workers 2` vs 1; load over {e2e['channels']} "
        "connections from one load generator on the same 2 cores):",
        "",
        "| concurrency | Evaluate /s, 1 | Evaluate /s, 2 | speed-up | Check /s, 1 "
        "| Check /s, 2 | speed-up | Evaluate p99 ms, 2 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    p99 = {r["concurrency"]: r["evaluate"]["p99_ms"] for r in e2e["workers_rows"]}
    for r in e2e["scaling"]:
        out.append(
            f"| {r['concurrency']} | {r['evaluate_1']:.0f} | {r['evaluate_2']:.0f} "
            f"| {r['evaluate_speedup']:.2f} | {r['check_1']:.0f} | {r['check_2']:.0f} "
            f"| {r['check_speedup']:.2f} | {p99[r['concurrency']]:.1f} |"
        )
    return out


GROUP_COMMIT_VARIANTS = {
    "base": "before (chain trigger, no linger)",
    "no_trigger": "chain checked by the writer, temp_store=MEMORY",
    "linger": "... and commit_linger 2 ms (default)",
    "linger_5ms": "... with commit_linger 5 ms",
}


def group_commit_table(gc: dict) -> list[str]:
    """The write path's changes, each against its baseline in one run (bench/group_commit.py)."""
    m = gc["machine"]
    out = [
        "",
        f"**Group commit and the chain check** (bench/group_commit.py, {m['date']}: the "
        f"variants in turn, {gc['repeats']} times over, medians; decisions per commit from "
        "the server's /metrics):",
        "",
        "| variant | concurrency | Evaluate /s | p50 ms | p99 ms | decisions / commit "
        "| server CPU µs / Evaluate | ratio to Check |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in gc["rows"]:
        name = GROUP_COMMIT_VARIANTS.get(r["variant"], r["variant"])
        out.append(
            f"| {name} | {r['concurrency']} | {r['evaluate_rps']:.0f} | {r['p50_ms']:.2f} "
            f"| {r['p99_ms']:.2f} | {r['per_commit']:.1f} | {r['cpu_us']:.0f} "
            f"| {r['ratio']:.2f} |"
        )
    return out


def audit_insert_lines(ins: dict) -> list[str]:
    """One audit INSERT with and without the chain trigger (bench/audit_insert.py)."""
    us = {(r["trigger"], r["temp_store"]): r["us_per_entry"] for r in ins["rows"]}
    return [
        "",
        f"**One audit INSERT** (bench/audit_insert.py, in process, {ins['batch']} per "
        f"transaction after {ins['prefill']:,} entries): {us[True, 'FILE']} µs with the "
        f"chain trigger (temp_store FILE, the default), {us[True, 'MEMORY']} µs with "
        f"temp_store=MEMORY, {us[False, 'MEMORY']} µs without the trigger (migration 0006; "
        f"{us[False, 'FILE']} µs with FILE: without the trigger no statement journal is kept).",
    ]


def durability_lines(append: dict, e2e: dict) -> list[str]:
    """The group-commit writer's capacity against the end-to-end decision rate."""
    writes = append["modes"].get("decision_writes_concurrent")
    if writes is None:
        return []
    peak = max(r["evaluate"]["rps"] for r in e2e["rows"])
    ratio = writes["median_ops_per_s"] / peak
    return [
        "",
        f"**Durability without a cap**: the group-commit writer stores "
        f"{writes['median_ops_per_s']:,.0f} decisions/s (decision row + audit entry, "
        f"synchronous=FULL, fsync {append['median_fsync_ms']} ms) = **{ratio:.1f}x** the "
        f"server's peak end-to-end rate ({peak:,.0f}/s); one transaction per append would "
        f"give {append['modes']['txn_per_append_concurrent']['median_ops_per_s']:,.0f}/s.",
    ]


def alternatives_table(alt: dict) -> list[str]:
    """cel-python against cel-expr-python on the refund policy (bench/alternatives.py)."""
    out = [
        "",
        f"**Against cel-python** (example refund policy, {alt['rules']} rules compiled once, "
        f"{alt['check']['inputs']} inputs checked equal; median of {alt['repeats']} "
        "repetitions, min to max):",
        "",
        "| engine | version | µs / decision | min to max µs | compile ms "
        "| ratio to cel-expr-python rule by rule | ratio per repetition "
        "| cel-python takes x this |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    out += [
        f"| {r['engine']} | {r['version']} | {r['median_us']:.1f} "
        f"| {r['min_us']:.1f} to {r['max_us']:.1f} | {r['compile_ms']} "
        f"| {r['ratio_to_cel_expr_python']} "
        f"| {r['ratio_per_rep_min']} to {r['ratio_per_rep_max']} "
        f"| {r.get('ratio_of_cel_python', '')} |"
        for r in alt["rows"]
    ]
    out += [
        "",
        "cel-expr-python and cel-python evaluate rule by rule; the signoff engine row is "
        "what the server runs (one CEL program per policy, the outcome picked by "
        "the decision semantics), checked to give the same outcome and deciding rule.",
    ]
    return out


def memory_table(mem: dict) -> list[str]:
    """Server RSS (bench/memory.py)."""
    return [
        "",
        f"**Server memory** (RSS of `signoff serve`, {mem['decisions']:,} decisions at "
        f"{mem['decisions_per_s']:,}/s from {mem['channels']} channels x "
        f"{mem['concurrency_per_channel']} in flight):",
        "",
        "| idle, example policies | idle, 10,000 rules | peak under load | after load "
        "| growth over the second half |",
        "|---:|---:|---:|---:|---:|",
        f"| {mem['rss_mib_idle']} MiB | {mem['rss_mib_10k_rules']} MiB "
        f"| {mem['rss_mib_peak_sample']} MiB | {mem['rss_mib_after']} MiB "
        f"| {mem['second_half_growth_mib']:+} MiB ({mem['verdict']}) |",
    ]


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


def titled_table(title: str, columns: list[str], rows: list[list[object]]) -> list[str]:
    """A bold title line and a markdown table, the first column text, the rest numbers."""
    return [
        "",
        title,
        "",
        "| " + " | ".join(columns) + " |",
        "|---|" + "---:|" * (len(columns) - 1),
        *("| " + " | ".join(str(v) for v in row) + " |" for row in rows),
    ]


def grant_lines(g: dict) -> list[str]:
    """The standing-approval lookup of every review-rule decision, read vs cached."""
    return titled_table(
        f"**Standing-approval lookup** per review-rule decision, in process "
        f"({g['machine']['date']}, medians of {g['rounds']} alternating rounds):",
        ["setting", "µs one at a time", f"µs each, {g['in_flight']} in flight"],
        [[r["setting"], r["sequential_us"], r["in_flight_us"]] for r in g["rows"]],
    )


def mcp_lines(m: dict) -> list[str]:
    """An allowed MCP tool call, direct vs through `signoff mcp-proxy`."""
    return titled_table(
        f"**MCP proxy** (an allowed read-only tool call over stdio, one at a time, "
        f"{m['machine']['date']}, {m['rounds']} alternating rounds of {m['calls']} calls):",
        ["path", "p50 ms", "p90 ms", "p99 ms"],
        [[r["path"], r["p50_ms"], r["p90_ms"], r["p99_ms"]] for r in m["rows"]],
    )


def limits_lines(c: dict) -> list[str]:
    """What issue 19's per-request checks add to an Evaluate, above a no-op floor."""
    share = c.get("share_of_evaluate_cpu")
    of_cpu = f"; {share:.1%} of the server CPU per Evaluate" if share is not None else ""
    return titled_table(
        f"**Per-request limits** (the checks every Evaluate passes, in process, "
        f"{c['machine']['date']}; floor {c['floor_us']} µs{of_cpu}):",
        ["check", "µs above the floor"],
        [*([k, v] for k, v in c["above_floor_us"].items()), ["total", c["total_us"]]],
    )


def decision_lines(c: dict) -> list[str]:
    """One Evaluate through the application layer per outcome, and the request's forms."""
    out = titled_table(
        f"**One decision in process** (`Signoff.evaluate`: SQLite store, example policies, "
        f"receipts; {c['machine']['date']}, medians of {c['rounds']} rounds of "
        f"{c['calls_per_round']}; floor {c['floor_loop_cpu_us']} µs):",
        ["outcome", "event-loop CPU µs", "wall µs (fsync included)"],
        [[k, v["loop_cpu_us"], v["wall_us"]] for k, v in c["cases"].items()],
    )
    split = c.get("split")
    if split:
        cases = list(split)
        parts = sorted({p for row in split.values() for p in row}, key=_split_order)
        out += titled_table(
            "**Where one decision's time goes** (event-loop CPU µs per decision by part of "
            "`Signoff._decide`, each part's own thread time; SQL on the loop is the store's "
            "`record_decision` awaited, the fsync not included; rest: awaits and glue):",
            ["part", *cases],
            [[p, *(split[case].get(p, 0.0) for case in cases)] for p in parts],
        )
    forms = c.get("request_forms")
    if forms:
        out += titled_table(
            "**The request's forms** (digests, masked copy, plain form, review bytes: each "
            "module converting again, the old way, against one `RequestView`; same "
            "rounds, above a no-op floor):",
            ["outcome", "re-converting µs", "one view µs", "saved µs"],
            [[k, v["re_converting_us"], v["one_view_us"], v["saved_us"]] for k, v in forms.items()],
        )
    return out


_SPLIT_ORDER = (
    "validation", "request view", "engine", "decision", "receipt", "review", "audit record",
    "size checks", "decision row", "SQL on the loop", "telemetry", "rest", "total (loop CPU)",
)  # fmt: skip


def _split_order(part: str) -> int:
    return _SPLIT_ORDER.index(part) if part in _SPLIT_ORDER else len(_SPLIT_ORDER)


def quote_in_guide(text: str, guide: Path = GUIDE) -> None:
    """Replace the table between the bench markers of the benchmarks guide."""
    start, end = "<!-- bench:start -->\n", "<!-- bench:end -->"
    doc = guide.read_text()
    head, found, rest = doc.partition(start)
    _, found_end, tail = rest.partition(end)
    # Without both markers the partition would drop the guide's text: refuse instead.
    if not (found and found_end):
        raise SystemExit(f"{guide}: no {start.strip()} ... {end} markers to write between")
    guide.write_text(f"{head}{start}{text}{end}{tail}")


def machine() -> dict[str, Any]:
    """The machine and the versions the figures were measured with."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_latest() -> Path:
    """results/latest.json: the machine and every result file of the run, in one file."""
    figures = {}
    for name in PARTS:
        path = RESULTS / f"{name}.json"
        if path.exists():
            figures[name] = json.loads(path.read_text())
    path = RESULTS / "latest.json"
    path.write_text(json.dumps({"machine": machine(), **figures}, indent=2) + "\n")
    return path


def chart() -> Path | None:
    """results/e2e.png: throughput and p99 against concurrency, Evaluate vs health Check."""
    if importlib.util.find_spec("matplotlib") is None:
        print("SKIPPED: e2e.png needs matplotlib (pip install -e '.[bench]')")
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e2e = json.loads((RESULTS / "e2e.json").read_text())
    conc = [r["concurrency"] for r in e2e["rows"]]
    series = {"Evaluate (audit append)": "evaluate", "health Check": "health_check"}
    if all("noop_evaluate" in r for r in e2e["rows"]):
        series["no-op Evaluate (the floor)"] = "noop_evaluate"
    fig, (rps_ax, p99_ax) = plt.subplots(1, 2, figsize=(10, 4))
    two = e2e.get("workers_rows", [])
    for label, key in series.items():
        line = rps_ax.plot(conc, [r[key]["rps"] for r in e2e["rows"]], marker="o", label=label)
        p99_ax.plot(conc, [r[key]["p99_ms"] for r in e2e["rows"]], marker="o", label=label)
        if two:  # the same call under `serve --workers 2`, dashed, in the same colour
            style = {"ls": "--", "marker": "s", "color": line[0].get_color()}
            two_conc = [r["concurrency"] for r in two]
            label2 = f"{label}, 2 workers"
            rps_ax.plot(two_conc, [r[key]["rps"] for r in two], label=label2, **style)
            p99_ax.plot(two_conc, [r[key]["p99_ms"] for r in two], label=label2, **style)
    for ax, title, unit in ((rps_ax, "Throughput", "calls / s"), (p99_ax, "p99 latency", "ms")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(conc, [str(c) for c in conc])
        ax.set_xlabel("concurrent calls")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend()
    m = e2e["machine"]
    fig.suptitle(
        f"signoff serve, SQLite, example policies: {m['cpus']} cores, Python {m['python']}, "
        f"{m['date']}"
    )
    fig.tight_layout()
    path = RESULTS / "e2e.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> int:
    """Run the benchmarks (unless --table-only), write the table, quote it in the guide."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--table-only", action="store_true", help="only render existing results")
    ap.add_argument(
        "--memory",
        action="store_true",
        help="also run bench/memory.py (server RSS under load; about 3 minutes)",
    )
    ap.add_argument("--memory-decisions", type=int, help="decisions for memory.py")
    args = ap.parse_args()
    if not args.table_only:
        scripts = [["engine.py"], ["e2e.py"]]
        if importlib.util.find_spec("celpy") is not None:
            scripts.append(["alternatives.py"])
        else:
            print("SKIPPED: alternatives.py needs cel-python (pip install -e '.[bench]')")
        scripts += [["audit_append.py"], ["replicas.py"], ["audit_query.py"], ["grant_lookup.py"]]
        scripts += [["limits_cost.py"], ["decision_inproc.py"], ["receipt_batches.py"]]
        if importlib.util.find_spec("mcp") is not None:
            scripts.append(["mcp_proxy.py"])
        else:
            print("SKIPPED: mcp_proxy.py needs the MCP SDK (pip install -e '.[mcp]')")
        if args.memory or args.memory_decisions:
            extra = [f"--decisions={args.memory_decisions}"] if args.memory_decisions else []
            scripts.append(["memory.py", *extra])
        for script, *rest in scripts:
            print(f"== {script}", flush=True)
            subprocess.run([sys.executable, str(HERE / script), *rest], check=True, cwd=HERE)
    text = table()
    (RESULTS / "README.md").write_text(text)
    quote_in_guide(text)
    print(text)
    print(f"wrote {write_latest()}")
    png = chart()
    if png:
        print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
