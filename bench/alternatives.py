"""The example refund policy's decisions with cel-python (pure Python CEL) against
cel-expr-python (Google's C++ CEL) as the server runs it, in the same run.

Both sides compile the same CEL text once: the `when` and `reason_expr` programs of
policies/refunds.yaml as the loader produced them (variables inlined). The cel-expr-python
side uses signoff.policy.cel (compile, Activation, Program.eval), as the server does.
The cel-python side gets the same request converted to CEL values. A decision on either side
is: build the request's variables, evaluate every rule's `when` in file order, and the
`reason_expr` of each rule that matched; then the same Python code picks the outcome
(deny > review > allow, shadow rules never decide). Inputs are bench/engine.py's
refund_request with the amount, tags, resource tier and fraud flag varied so that every
rule matches somewhere. Every input is checked first: any difference in a `when` result,
the outcome or a reason fails the run; the one known difference (cel-python's
string(double) writes 750.0 where the C++ engine writes 750) is checked to be the only
one and reported.

Prints and writes results/alternatives.json: median µs per decision over REPEATS
repetitions (min and max for the spread), the ratio of the medians, and the lowest and
highest ratio of one repetition (both sides are timed back to back in each).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import celpy
from common import median, write
from engine import refund_request
from google.protobuf import json_format

from signoff import pb
from signoff.core.decide import DefaultDecision, Evaluation, evaluate
from signoff.policy import cel, load_bundle

POLICIES = Path(__file__).resolve().parent.parent / "policies"
ACTION = "refund.issue"
REPEATS = 7
# The server's engine as it runs: one CEL program per policy, the outcome and reasons picked
# by signoff.core.decide (MatchedRule, Evaluation). Checked on outcome and deciding rule.
ENGINE = "signoff engine"
CALLS = {"cel-expr-python": 5_000, "cel-python": 300, ENGINE: 5_000}
SEVERITY = {"allow": 0, "review": 1, "deny": 2}

# (rule name, shadow, decision, when text, reason_expr text or None)
RuleText = tuple[str, bool, str, str, str | None]


def refund_rules() -> list[RuleText]:
    """The refund policy's rules with variables inlined, exactly what the server compiles."""
    bundle = load_bundle(POLICIES)
    (policy,) = (p for p in bundle.policies_for(ACTION) if p.name == "refunds")
    return [
        (
            r.name,
            r.shadow,
            r.decision,
            r.when_program.expr,
            r.reason_program.expr if r.reason_program else None,
        )
        for r in policy.rules
    ]


def inputs() -> list[pb.common.ActionRequest]:
    """bench/engine.py's refund request, varied to reach every rule (24 requests)."""
    out = []
    for amount in (120, 750, 6_000, 25_000):
        for vip in (True, False):
            for extra in ("", "fraud", "tier"):
                r = refund_request(ACTION)
                r.action.params["amount"] = amount
                if not vip:
                    del r.principal.tags[:]
                r.resource.kind = "account"
                r.resource.id = "acct_42"
                if extra == "fraud":
                    r.context.update({"fraud_flag": True})
                elif extra == "tier":
                    r.resource.attributes.update({"tier": "vip"})
                out.append(r)
    return out


# A decision's raw results: per rule (name, when value or "error: ...", reason or None).
Results = list[tuple[str, Any, Any]]


def outcome(rules: list[RuleText], results: Results) -> tuple[str, str]:
    """(outcome, deciding rule): deny > review > allow, first in file order, no shadows."""
    best: tuple[str, str] = ("review", "default")
    for (name, shadow, decision, _, _), (_, value, _) in zip(rules, results, strict=True):
        first = best[1] == "default"
        if value is True and not shadow and (first or SEVERITY[decision] > SEVERITY[best[0]]):
            best = (decision, name)
    return best


def cel_expr_side(rules: list[RuleText]) -> Callable[[pb.common.ActionRequest], Results]:
    """cel-expr-python through signoff.policy.cel, compiled once."""
    progs = [(name, cel.compile(w), cel.compile(r) if r else None) for name, _, _, w, r in rules]
    now = dt.datetime.now(dt.UTC)

    def decide(req: pb.common.ActionRequest) -> Results:
        act = cel.Activation(req, now)
        out: Results = []
        for name, when, reason in progs:
            try:
                value = when.eval(act)
            except cel.CelEvalError as exc:
                out.append((name, f"error: {exc}", None))
                continue
            text = reason.eval(act) if value is True and reason is not None else None
            out.append((name, value, text))
        return out

    return decide


def engine_side() -> Callable[[pb.common.ActionRequest], Evaluation]:
    """signoff.decide.evaluate on the loaded bundle, as Signoff.evaluate calls it."""
    bundle = load_bundle(POLICIES)
    now = dt.datetime.now(dt.UTC)
    default = DefaultDecision()
    return lambda req: evaluate(bundle, req, now, default)


def _struct_fields(msg: Any, structs: tuple[str, ...]) -> dict[str, Any]:
    d = json_format.MessageToDict(
        msg, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
    )
    for s in structs:  # unset Struct fields: empty maps, as the C++ side sees them
        d.setdefault(s, {})
    return d


def cel_python_side(rules: list[RuleText]) -> Callable[[pb.common.ActionRequest], Results]:
    """cel-python (celpy), compiled once, the request converted to CEL values per decision.

    Its default InterpretedRunner: the CompiledRunner of cel-python 0.5.0 evaluates
    `has(m.f) && m.f == x` to an error when `f` is missing (no short-circuit on the error),
    and cannot compile after an InterpretedRunner did in the same process.
    """
    env = celpy.Environment()
    progs = [
        (name, env.program(env.compile(w)), env.program(env.compile(r)) if r else None)
        for name, _, _, w, r in rules
    ]
    now = celpy.celtypes.TimestampType(dt.datetime.now(dt.UTC))

    def decide(req: pb.common.ActionRequest) -> Results:
        act = {
            "action": celpy.json_to_cel(_struct_fields(req.action, ("params",))),
            "principal": celpy.json_to_cel(_struct_fields(req.principal, ("attributes",))),
            "resource": celpy.json_to_cel(_struct_fields(req.resource, ("attributes",))),
            "context": celpy.json_to_cel(json_format.MessageToDict(req.context)),
            "now": now,
        }
        out: Results = []
        for name, when, reason in progs:
            try:
                value = when.evaluate(act)
            except celpy.CELEvalError as exc:
                value = exc
            if isinstance(value, celpy.CELEvalError):
                out.append((name, f"error: {value.args[0]}", None))
                continue
            value = bool(value) if isinstance(value, celpy.celtypes.BoolType) else value
            text = str(reason.evaluate(act)) if value is True and reason is not None else None
            out.append((name, value, text))
        return out

    return decide


_DOUBLE_DOT_ZERO = re.compile(r"(\d)\.0\b")


def check(rules: list[RuleText], sides: dict[str, Callable], reqs: list) -> dict[str, Any]:
    """Every input on every side: same `when` values and outcomes, reasons as documented."""
    ref_name = "cel-expr-python"
    counts = {"inputs": len(reqs), "outcomes": {}, "reason_format_differences": 0}
    for i, req in enumerate(reqs):
        ref = sides[ref_name](req)
        if any(isinstance(v, str) for _, v, _ in ref):
            raise SystemExit(f"input {i}: cel-expr-python failed to evaluate: {ref}")
        decided = outcome(rules, ref)
        counts["outcomes"][decided[0]] = counts["outcomes"].get(decided[0], 0) + 1
        for name, side in sides.items():
            if name == ENGINE:
                ev = side(req)
                got_outcome = (ev.outcome, ev.deciding_rule.name if ev.deciding_rule else "default")
                if got_outcome != decided:
                    raise SystemExit(f"MISMATCH input {i}: {name} {got_outcome} != {decided}")
                continue
            if name == ref_name:
                continue
            got = side(req)
            for (rule, want_v, want_r), (_, got_v, got_r) in zip(ref, got, strict=True):
                if want_v != got_v:
                    raise SystemExit(
                        f"MISMATCH input {i} rule {rule}: {ref_name} when={want_v!r}, "
                        f"{name} when={got_v!r}\n{req}"
                    )
                if want_r != got_r:
                    # The one known difference: string(750.0) is "750" in the C++ engine,
                    # "750.0" in cel-python. Anything else fails.
                    if got_r is None or _DOUBLE_DOT_ZERO.sub(r"\1", got_r) != want_r:
                        raise SystemExit(
                            f"MISMATCH input {i} rule {rule}: {ref_name} reason={want_r!r}, "
                            f"{name} reason={got_r!r}"
                        )
                    counts["reason_format_differences"] += 1
            if outcome(rules, got) != decided:
                raise SystemExit(f"MISMATCH input {i}: outcome {outcome(rules, got)} != {decided}")
    return counts


def time_side(decide: Callable, reqs: list, calls: int) -> float:
    """µs per decision for `calls` decisions over the inputs in turn."""
    n = len(reqs)
    t = time.perf_counter()
    for i in range(calls):
        decide(reqs[i % n])
    return (time.perf_counter() - t) / calls * 1e6


def main() -> int:
    """Check, then time both engines alternately; write results/alternatives.json."""
    rules = refund_rules()
    reqs = inputs()
    compile_s: dict[str, float] = {}
    sides: dict[str, Callable] = {}
    makers = {
        "cel-expr-python": lambda: cel_expr_side(rules),
        "cel-python": lambda: cel_python_side(rules),
        ENGINE: engine_side,
    }
    for name, make in makers.items():
        t = time.perf_counter()
        sides[name] = make()
        compile_s[name] = time.perf_counter() - t
    checked = check(rules, sides, reqs)
    print(
        f"checked {checked['inputs']} inputs x {len(rules)} rules: same results on every side "
        f"(outcomes {checked['outcomes']}; {checked['reason_format_differences']} reasons "
        "differ only in string(double): cel-python 750.0, C++ 750)",
        flush=True,
    )
    for name, decide in sides.items():  # warm-up
        time_side(decide, reqs, CALLS[name] // 10)
    runs: dict[str, list[float]] = {name: [] for name in sides}
    for rep in range(REPEATS):
        for name, decide in sides.items():
            runs[name].append(time_side(decide, reqs, CALLS[name]))
        print(
            f"rep {rep + 1}/{REPEATS}: " + "  ".join(f"{n} {runs[n][-1]:8.1f} µs" for n in sides),
            flush=True,
        )
    base = median(runs["cel-expr-python"])
    rows = []
    for name, xs in runs.items():
        # Each repetition times both sides back to back: its own ratio shows the spread.
        per_rep = [x / y for x, y in zip(xs, runs["cel-expr-python"], strict=True)]
        row = {
            "engine": name,
            "version": importlib.metadata.version(
                "cel-python" if name.startswith("cel-python") else "cel-expr-python"
            ),
            "ratio_of_cel_python": round(median(runs["cel-python"]) / median(xs), 1),
            "decisions_per_rep": CALLS[name],
            "median_us": round(median(xs), 2),
            "min_us": round(min(xs), 2),
            "max_us": round(max(xs), 2),
            "compile_ms": round(compile_s[name] * 1e3, 2),
            "ratio_to_cel_expr_python": round(median(xs) / base, 1),
            "ratio_per_rep_min": round(min(per_rep), 1),
            "ratio_per_rep_max": round(max(per_rep), 1),
        }
        rows.append(row)
        print(
            f"{name:<20} median {row['median_us']:8.1f} µs/decision "
            f"(min {row['min_us']:.1f}, max {row['max_us']:.1f}; compile {row['compile_ms']} ms)"
            f"  x{row['ratio_to_cel_expr_python']} (per repetition "
            f"x{row['ratio_per_rep_min']} to x{row['ratio_per_rep_max']})",
            flush=True,
        )
    path = write(
        "alternatives",
        {
            "policy": "policies/refunds.yaml",
            "rules": len(rules),
            "repeats": REPEATS,
            "check": checked,
            "rows": rows,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
