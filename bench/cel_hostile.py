"""Hostile CEL: what the worst expressions cost on the worst requests Signoff accepts.

The figures behind docs/policies.md "Runaway expressions". Each case is one compiled
expression evaluated through the policy layer's engine (signoff.policy.cel) against one
request built at the limits the server enforces (params up to 256 KiB); the baseline is
`action.name != ""` on the same request, in the same rounds, so a shared machine's drift
hits both alike. A case either runs to its end, stops on the engine's iteration budget
(10,000 comprehension iterations per evaluation) or is refused before it runs by the guards
in cel.py (lists over 1,000 elements for map/filter/transformList; strings over 1,000
characters for a program that loops and calls split/replace/join/format). Medians of
ROUNDS rounds, in ms; results/cel_hostile.json.

Run: .venv/bin/python bench/cel_hostile.py
"""

from __future__ import annotations

import datetime as dt
import time

from common import median, write
from google.protobuf import json_format

from signoff import pb
from signoff.policy import cel

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
        "10,000 x split('') of 1,000 chars (the string bound)",
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
        "(not guarded) 10,000 x contains() on 200 KiB",
        f'{P}.xs.exists(x, {P}.s.contains(x + "b"))',
        {"s": "a" * BIG, "xs": ["a"] * 10000},
    ),
]


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
        outcome = (
            "refused"
            if "runs only on" in str(exc) or "run only on" in str(exc)
            else ("budget" if "Iteration budget" in str(exc) else f"error: {exc}")
        )
    return (time.perf_counter() - started) * 1000, outcome


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
    print(write("cel_hostile", {"rounds": ROUNDS, "cases": rows}))


if __name__ == "__main__":
    main()
