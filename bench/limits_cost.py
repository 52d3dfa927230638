"""What issue 19's per-request checks cost an Evaluate, against the floor, in one process.

Each check runs on the tour's refund request (examples/tour.py; its serialized bytes, as a
handler gets them): the field bound table (`api/bounds.py` decodes the bytes again, then
`validate_fields.check_fields`), `wire.no_nul`, the pre-authentication peer bucket
(`PeerGate.admit`), and the per-identity caps (`Limiter.enter`/`leave`, which also count
the server-wide cap as before). The floor is a no-op call of the same shape, measured in
the same rounds. Rounds alternate the cases, so drift on a shared machine hits all alike.
The sum is set against the server CPU per Evaluate (all threads) of bench/e2e.py's last
result (results/e2e.json, concurrency 1), when there is one: the figure to read is that
share.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from common import RESULTS, median, write

from signoff import pb
from signoff.api.errors import parse
from signoff.auth.identity import Identity
from signoff.core import wire
from signoff.core.validate import Limits
from signoff.core.validate_fields import check_fields
from signoff.limits.config import LimitSettings
from signoff.limits.ingress import PeerLimits
from signoff.limits.limiter import Limiter
from signoff.limits.peers import PeerGate

CALLS = 20_000
ROUNDS = 7


def _request() -> bytes:
    req = pb.common.ActionRequest(request_id="T-1234:b94c45c0", justification="double charge")
    req.action.name = "refund.issue"
    req.action.params.update({"amount": 750, "currency": "EUR", "card_number": "4111 1111"})
    req.principal.id = "support-bot"
    req.principal.kind = "agent"
    req.principal.tags.extend(["eu"])
    req.resource.kind, req.resource.id = "account", "acct_42"
    req.context.update({"ticket": "T-1234", "channel": "chat"})
    return req.SerializeToString()


def _per_call_us(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    for _ in range(CALLS):
        fn()
    return (time.perf_counter() - started) / CALLS * 1e6


def main() -> None:
    """Measure each check and the floor; write results/limits_cost.json."""
    data = _request()
    request = pb.common.ActionRequest.FromString(data)
    sizes = Limits().sizes
    # One peer at 1,000 calls/s, under its rate: its clock moves 1 ms per call.
    ticks = iter(range(10**9))
    gate = PeerGate(PeerLimits(), clock=lambda: next(ticks) / 1000)
    limiter = Limiter(LimitSettings())
    who = Identity("support-bot", frozenset({"agent"}))

    def enter_leave() -> None:
        limiter.enter(who)
        limiter.leave(who)

    cases: dict[str, Callable[[], object]] = {
        "floor (no-op call)": lambda: None,
        "field bounds (decode + check_fields)": lambda: check_fields(
            parse(pb.common.ActionRequest, data), sizes
        ),
        "no NUL in strings (wire.no_nul)": lambda: wire.no_nul(request),
        "peer bucket (PeerGate.admit)": lambda: gate.admit("127.0.0.1"),
        "per-identity caps (Limiter.enter + leave)": enter_leave,
    }
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(ROUNDS):
        for name, fn in cases.items():
            runs[name].append(_per_call_us(fn))
    floor = median(runs["floor (no-op call)"])
    out = {name: round(median(xs) - floor, 2) for name, xs in runs.items() if "floor" not in name}
    total = round(sum(out.values()), 2)
    result: dict[str, object] = {"floor_us": round(floor, 3), "above_floor_us": out}
    result["total_us"] = total
    cpu_us = _evaluate_cpu_us()
    if cpu_us:
        result["evaluate_server_cpu_us"] = cpu_us
        result["share_of_evaluate_cpu"] = round(total / cpu_us, 4)
    write("limits_cost", result)
    width = max(map(len, out))
    print(f"{'check':<{width}}  us per call above the floor ({floor:.3f} us)")
    for name, us in out.items():
        print(f"{name:<{width}}  {us:8.2f}")
    print(f"{'total':<{width}}  {total:8.2f}")
    if cpu_us:
        share = total / cpu_us
        print(f"share of the server CPU per Evaluate ({cpu_us:.0f} us, e2e.json): {share:.1%}")


def _evaluate_cpu_us() -> float | None:
    """The server CPU per Evaluate at concurrency 1 in e2e.py's result file, if any."""
    try:
        doc = json.loads(RESULTS.joinpath("e2e.json").read_text())
        row = next(r for r in doc["rows"] if r["concurrency"] == 1 and r["workers"] == 1)
        return float(row["evaluate"]["cpu_us_total"])
    except (OSError, KeyError, StopIteration, TypeError, ValueError):
        return None


if __name__ == "__main__":
    main()
