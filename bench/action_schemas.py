"""Action schemas: what checking a request's params costs, beside evaluating it.

Three timings on the example policies (policies/, whose refunds.yaml declares the params
of refund.*), in the same rounds so a shared machine's drift hits all alike: evaluating a
refund.issue request (core.decide.evaluate, the baseline), checking its params against the
schema (policy.params.check_request: jsonschema), and the check for an action without a
schema (a glob match per schema, nothing else). Medians of ROUNDS rounds, in µs;
results/action_schemas.json.

Run: .venv/bin/python bench/action_schemas.py
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

from common import median, write

from signoff import pb
from signoff.core.decide import DefaultDecision, evaluate
from signoff.policy import load_bundle
from signoff.policy.params import check_request

ROUNDS = 9
CALLS = 2000
POLICIES = Path(__file__).resolve().parents[1] / "policies"


def _request(action: str) -> pb.common.ActionRequest:
    r = pb.common.ActionRequest()
    r.action.name = action
    r.action.params.update({"amount": 120, "currency": "EUR", "card_number": "4111111111111111"})
    r.principal.id = "support-bot"
    r.principal.kind = "agent"
    r.resource.kind = "account"
    r.resource.id = "acct_1"
    return r


def _per_call(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(CALLS):
        fn()
    return (time.perf_counter() - start) / CALLS * 1e6


def main() -> None:
    """Measure and write results/action_schemas.json."""
    bundle = load_bundle(POLICIES)
    refund, other = _request("refund.issue"), _request("email.send")
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    default = DefaultDecision()
    cases: dict[str, Callable[[], object]] = {
        "evaluate refund.issue": lambda: evaluate(bundle, refund, now, default),
        "check params, refund.issue (schema)": lambda: check_request(bundle.params, refund),
        "check params, email.send (no schema)": lambda: check_request(bundle.params, other),
    }
    rounds: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(ROUNDS):
        for name, fn in cases.items():
            rounds[name].append(_per_call(fn))
    base = median(rounds["evaluate refund.issue"])
    results = {}
    for name, values in rounds.items():
        us = median(values)
        results[name] = {"us": round(us, 2), "ratio_to_evaluate": round(us / base, 2)}
        print(f"{name:40} {us:8.2f} µs  {us / base:5.2f}x evaluate")
    write("action_schemas", results)


if __name__ == "__main__":
    main()
