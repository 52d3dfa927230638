"""Hostile CEL: what the worst expressions cost on the worst requests Signoff accepts.

The figures behind docs/policies.md "Runaway expressions". Each case is one compiled
expression evaluated through the policy layer's engine (signoff.policy.cel) against one
request built at the limits the server enforces (params up to 256 KiB); the baseline is
`action.name != ""` on the same request, in the same rounds, so a shared machine's drift
hits both alike. A case either runs to its end, stops on the engine's iteration budget
(10,000 comprehension iterations per evaluation) or is refused before it runs by the guards
in cel.py (lists over 1,000 elements for map/filter/transformList; strings over 1,000
characters for a program that loops and calls split/replace/join/format; the cost bound of
policy/cost.py, over cel.MAX_EVAL_COST). Medians of ROUNDS rounds, in ms.

Then the ordinary path, with the cost bound and without it (Program._check_cost replaced by
a no-op), in alternating rounds: Evaluate (core.decide.evaluate) of the example bundle on
the README's refund request, and of a rule that loops (a contains() per element of a
100-item list) on an ordinary request, in µs per call. Results: results/cel_hostile.json.

Run: .venv/bin/python bench/cel_hostile.py
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

from common import median, write
from google.protobuf import json_format

from signoff import pb
from signoff.core.decide import DefaultDecision, evaluate
from signoff.policy import Bundle, cel, load_bundle

ROUNDS = 5
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BIG = 200 * 1024  # a string that leaves room in 256 KiB of params for a list beside it

P = "action.params"
CASES: list[tuple[str, str, dict]] = [
    (
        "triple all() over 1,000",
        f"{P}.xs.all(x, {P}.xs.all(y, {P}.xs.all(z, true)))",
        {"xs": list(range(1000))},
    ),
    (
        "map() over 1,000 (the list bound)",
        f"{P}.xs.map(x, x * 2.0).size() > 0",
        {"xs": list(range(1000))},
    ),
    ("map() over 1,001: refused", f"{P}.xs.map(x, x * 2.0).size() > 0", {"xs": list(range(1001))}),
    ("split('') of 200 KiB, once", f'{P}.s.split("").size() > 0', {"s": "a" * BIG}),
    ("replace('', '-') of 200 KiB, once", f'{P}.s.replace("", "-").size() > 0', {"s": "a" * BIG}),
    ("lowerAscii() of 200 KiB, once", f"{P}.s.lowerAscii().size() > 0", {"s": "a" * BIG}),
    (
        "10,000 x split('') of 1,000 chars (the string bound; the cost bound refuses it)",
        f'{P}.xs.exists(x, x in {P}.s.split(""))',
        {"s": "a" * 1000, "xs": ["b"] * 10000},
    ),
    (
        "10,000 x split('') of 1,001 chars: refused",
        f'{P}.xs.exists(x, x in {P}.s.split(""))',
        {"s": "a" * 1001, "xs": ["b"] * 10000},
    ),
    (
        "split('') of 1,000 chars, then map()",
        f'{P}.s.split("").map(c, c + c).size() > 0',
        {"s": "a" * 1000},
    ),
    (
        "split('') of 1,000 chars, then transformList()",
        f'{P}.s.split("").transformList(i, c, c + c).size() > 0',
        {"s": "a" * 1000},
    ),
    (
        "two-variable exists() over a 1,000-key map, nested twice",
        f"{P}.m.exists(k, v, {P}.m.exists(k2, v2, k + k2 == v))",
        {"m": {str(i): "v" for i in range(1000)}},
    ),
    (
        "10,000 x contains() on 200 KiB: refused (the cost bound)",
        f'{P}.xs.exists(x, {P}.s.contains(x + "b"))',
        {"s": "a" * BIG, "xs": ["a"] * 10000},
    ),
    (
        "24 x contains() on 200 KiB (under the cost bound)",
        f'{P}.xs.exists(x, {P}.s.contains(x + "b"))',
        {"s": "a" * BIG, "xs": ["a"] * 24},
    ),
    (
        "25 x contains() on 200 KiB: refused",
        f'{P}.xs.exists(x, {P}.s.contains(x + "b"))',
        {"s": "a" * BIG, "xs": ["a"] * 25},
    ),
    (
        "nested exists() over 100 x 100, contains() on 20 characters",
        f"{P}.xs.exists(x, {P}.ys.exists(y, x.contains(y)))",
        {"xs": ["a" * 20] * 100, "ys": ["b" * 20] * 100},
    ),
    (
        "10,000 x endsWith() + indexOf() on 200 KiB: refused",
        f"{P}.xs.all(x, !{P}.s.endsWith(x) || {P}.s.indexOf(x) >= 0)",
        {"s": "a" * BIG, "xs": ["b"] * 10000},
    ),
]
# The ordinary path: the example bundle, and one rule that loops.
EXAMPLES = Path(__file__).resolve().parents[1] / "policies"
LOOPING = """\
name: outbound-email
rules:
  - name: mentions-a-recipient
    when: action.params.to.exists(r, action.params.body.contains(r))
    decision: deny
    reason: the body names a recipient
"""
CALLS = 2000


def _activation(params: dict) -> cel.Activation:
    req = json_format.ParseDict(
        {"action": {"name": "a", "params": params}}, pb.common.ActionRequest()
    )
    return cel.Activation(req, NOW)


def _time(program: cel.Program, params: dict) -> tuple[float, str]:
    activation = _activation(params)  # a fresh one: the sizes the guards read are cached
    started = time.perf_counter()
    try:
        program.eval(activation)
        outcome = "ran"
    except cel.CelEvalError as exc:
        text = str(exc)
        outcome = (
            "refused"
            if any(r in text for r in ("runs only on", "run only on", "over the limit of"))
            else ("budget" if "Iteration budget" in text else f"error: {exc}")
        )
    return (time.perf_counter() - started) * 1000, outcome


def _refund() -> pb.common.ActionRequest:
    return json_format.ParseDict(
        {
            "request_id": "r1",
            "principal": {"id": "support-bot", "kind": "agent"},
            "action": {"name": "refund.issue", "params": {"amount": 120, "order": "A-1001"}},
            "resource": {"kind": "order", "id": "A-1001"},
        },
        pb.common.ActionRequest(),
    )


def _email() -> pb.common.ActionRequest:
    to = [f"person-{i}@example.com" for i in range(100)]
    body = "Hello, your refund of 120 EUR for order A-1001 is on its way. " * 4
    req = json_format.ParseDict(
        {"action": {"name": "email.send", "params": {"to": to, "body": body}}},
        pb.common.ActionRequest(),
    )
    return req


def _per_call_us(bundle: Bundle, request: pb.common.ActionRequest) -> float:
    default = DefaultDecision("review", "default")
    started = time.perf_counter()
    for _ in range(CALLS):
        evaluate(bundle, request, NOW, default)
    return (time.perf_counter() - started) / CALLS * 1e6


def ordinary_path() -> list[dict]:
    """Evaluate with the cost bound and without it, alternating; µs per call."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "email.yaml").write_text(LOOPING)
        workloads = [
            ("example bundle, refund request", load_bundle(EXAMPLES), _refund()),
            ("a rule looping over 100 items", load_bundle(Path(tmp)), _email()),
        ]
    checked = cel.Program._check_cost
    times: dict[tuple[str, bool], list[float]] = {}
    for round_ in range(ROUNDS * 2):
        for name, bundle, request in workloads:
            for on in (True, False) if round_ % 2 else (False, True):  # neither always first
                cel.Program._check_cost = checked if on else (lambda self, activation: None)  # type: ignore[method-assign]
                try:
                    times.setdefault((name, on), []).append(_per_call_us(bundle, request))
                finally:
                    cel.Program._check_cost = checked  # type: ignore[method-assign]
    rows = []
    for name, _, _ in workloads:
        on, off = median(times[(name, True)]), median(times[(name, False)])
        rows.append({"workload": name, "bound_us": round(on, 2), "no_bound_us": round(off, 2)})
        print(f"{on:>8.2f} µs with the bound, {off:>8.2f} µs without  {name}")
    return rows


def main() -> None:
    """Time every case against the baseline, in alternating rounds; print and save."""
    baseline = cel.compile('action.name != ""')
    programs = [(name, cel.compile(expr), params) for name, expr, params in CASES]
    times: dict[str, list[float]] = {name: [] for name, _, _ in CASES}
    base: dict[str, list[float]] = {name: [] for name, _, _ in CASES}
    outcomes: dict[str, str] = {}
    for _ in range(ROUNDS):
        for name, program, params in programs:
            base[name].append(_time(baseline, params)[0])
            ms, outcomes[name] = _time(program, params)
            times[name].append(ms)
    rows = []
    for name, expr, _ in CASES:
        row = {
            "case": name,
            "expr": expr,
            "outcome": outcomes[name],
            "ms": round(median(times[name]), 3),
            "baseline_ms": round(median(base[name]), 4),
        }
        rows.append(row)
        print(
            f"{row['ms']:>10.3f} ms  {row['outcome']:<8} (baseline {row['baseline_ms']} ms)  {name}"
        )
    ordinary = ordinary_path()
    print(write("cel_hostile", {"rounds": ROUNDS, "cases": rows, "ordinary": ordinary}))


if __name__ == "__main__":
    main()
