"""Policy time only (no I/O): decision time as the bundle grows from 10 to 10,000 rules.

Each bundle has 10 rules per action name (so 10,000 rules cover 1,000 action names); a
request touches one action. With the action index, time per decision must stay flat.
Prints medians of repeated runs and the ratio to the 10-rule bundle measured in this run.
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import tempfile
import time
from pathlib import Path

from common import median, write

from signoff import pb
from signoff.core.decide import DefaultDecision, evaluate
from signoff.policy import load_bundle

SIZES = (10, 100, 1_000, 10_000)
RULES_PER_ACTION = 10
REPEATS = 7
CALLS = 2_000


def make_bundle(root: Path, rules: int) -> None:
    """Write rules/10 policy files, one action each, with refund-like rules."""
    for a in range(rules // RULES_PER_ACTION):
        lines = [f"name: p{a}", f'actions: ["svc{a}.act"]', "rules:"]
        for r in range(RULES_PER_ACTION):
            limit = 100 * (r + 1)
            decision = ("allow", "review", "deny")[r % 3]
            extra = "\n    reviewers: finance" if decision == "review" else ""
            lines.append(
                f"  - name: r{r}\n    when: action.params.amount > {limit} && "
                f'"vip" in principal.tags\n    decision: {decision}{extra}\n'
                f"    reason: rule {r}"
            )
        (root / f"p{a:05d}.yaml").write_text("\n".join(lines) + "\n")


def refund_request(action: str) -> pb.common.ActionRequest:
    """A typical request: a refund with a few params, a tagged principal."""
    r = pb.common.ActionRequest()
    r.action.name = action
    r.action.params.update({"amount": 750, "currency": "EUR", "order": "o-123"})
    r.principal.id = "bot"
    r.principal.tags.append("vip")
    return r


def measure(bundle_dir: Path, actions: int) -> tuple[float, float]:
    """Load a bundle, then return (load seconds, median µs per decision)."""
    t0 = time.perf_counter()
    bundle = load_bundle(bundle_dir)
    load_s = time.perf_counter() - t0
    default = DefaultDecision()
    now = dt.datetime.now(dt.UTC)
    rng = random.Random(1)
    reqs = [refund_request(f"svc{rng.randrange(actions)}.act") for _ in range(CALLS)]
    for r in reqs[:200]:  # warm the index cache and the engine
        evaluate(bundle, r, now, default)
    runs = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        for r in reqs:
            evaluate(bundle, r, now, default)
        runs.append((time.perf_counter() - t) / CALLS * 1e6)
    return load_s, median(runs)


def example_policy_time() -> float:
    """Median µs per decision on the example refund policy."""
    root = Path(__file__).resolve().parent.parent / "policies"
    bundle = load_bundle(root)
    now = dt.datetime.now(dt.UTC)
    req = refund_request("refund.issue")
    for _ in range(200):
        evaluate(bundle, req, now, DefaultDecision())
    runs = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        for _ in range(CALLS):
            evaluate(bundle, req, now, DefaultDecision())
        runs.append((time.perf_counter() - t) / CALLS * 1e6)
    return median(runs)


def main() -> int:
    """Run the engine benchmark and write results/engine.json."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            root = Path(tmp) / f"b{size}"
            root.mkdir()
            make_bundle(root, size)
            load_s, us = measure(root, size // RULES_PER_ACTION)
            rows.append(
                {
                    "rules": size,
                    "actions": size // RULES_PER_ACTION,
                    "load_s": round(load_s, 2),
                    "median_us": round(us, 2),
                }
            )
            print(f"{size:>6} rules  load {load_s:6.2f}s  decision {us:7.2f} µs", flush=True)
    base = rows[0]["median_us"]
    for row in rows:
        row["ratio_to_10"] = round(row["median_us"] / base, 2)
    example = example_policy_time()
    print(f"example refund policy: {example:.2f} µs per decision (median)")
    path = write("engine", {"bundles": rows, "example_refund_policy_us": round(example, 2)})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
