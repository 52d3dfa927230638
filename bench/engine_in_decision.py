"""Why `core.decide.evaluate` costs more inside a decision than in a loop of its own.

The split of bench/decision_inproc.py puts the engine at about 92 µs of loop CPU inside
`Signoff._decide`, while the same call on the same request in a loop takes about 20 µs. This
bench times the one call every way that could explain the difference, in the same process,
the same app and bundle (the example policies, the README's refund request), rounds
alternating the modes so that a shared machine's drift hits all alike:

- ``decision, perf_counter``: `evaluate` inside real decisions (`app.evaluate`), timed by
  two perf_counter_ns reads (about 0.07 µs each);
- ``decision, thread_time``: the same timed as the split times it (thread_time, 0.35 µs);
- ``decision, gc off``: the first with the garbage collector disabled for the round;
- ``alone, same request``: one request and its view, `evaluate` called again and again;
- ``alone, fresh requests``: a new request (and view) for each call, as a decision has;
- ``alone, fresh, touched first``: as the last, after `validate_request` and the view read
  the request as the decision does before the engine;
- ``alone, after a decision``: each call right after a whole decision of another request
  (caches cooled by the decision's other work, the SQL and the commit), and the second
  call after one;
- ``alone, after 1 ms asleep / 1 ms spinning / 0.5 ms of Python / a thread hop``: which of
  the decision's parts cools it: the loop off the CPU while the fsync runs, time alone,
  other work on fresh memory, or the hand-off to the writer's thread;
- ``alone, after an audit append / a store read / another evaluate``: the write path alone
  (its SQL and the fsync'd COMMIT, no engine), a read on a thread, the engine itself.

It also counts how often the decision's view was taken as is (`view.request is request` and
the same redact paths) rather than masking again. Prints median µs per call per mode; writes
results/engine_in_decision.json.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import median, write
from decision_inproc import WHO, app_on, issuer, request

import signoff.app.decisions as decisions
from signoff import pb
from signoff.core.audit import AuditRecord
from signoff.core.decide import DefaultDecision, evaluate
from signoff.core.jsonify import request_view
from signoff.core.validate import Limits, validate_request

CALLS = 200
ROUNDS = 9
AMOUNT = 120  # auto-allow (policies/refunds.yaml)
LOADED = AuditRecord(type="policy.loaded", time=dt.datetime(2024, 5, 1, tzinfo=dt.UTC))


def _wrapped(clock: Callable[[], float], out: list[float], views: list[bool]) -> Callable[..., Any]:
    """`evaluate` that appends its own duration (µs, by `clock`) and whether the view held."""

    def timed(bundle: Any, req: Any, now: Any, default: Any, *a: Any, **kw: Any) -> Any:
        view = kw.get("view")
        applicable = bundle.applicable(req.action.name)
        views.append(
            view is not None and view.request is req and view.redacted_paths == applicable.redact
        )
        started = clock()
        try:
            return evaluate(bundle, req, now, default, *a, **kw)
        finally:
            out.append((clock() - started) * 1e6)

    return timed


async def run() -> dict[str, Any]:
    """All modes, ROUNDS times in turn; the median µs per call of each."""
    serial = iter(range(10**9))
    with tempfile.TemporaryDirectory() as tmp:
        app, store = app_on(Path(tmp) / "signoff.db", issuer())
        await store.open()
        try:
            await app.start()
            for _ in range(300):  # warm everything
                await app.evaluate(WHO, request(AMOUNT, next(serial)))
            default, limits = DefaultDecision(), Limits()
            views: list[bool] = []

            async def in_decision(clock: Callable[[], float], gc_off: bool = False) -> float:
                out: list[float] = []
                decisions.evaluate = _wrapped(clock, out, views)  # type: ignore[attr-defined]
                reqs = [request(AMOUNT, next(serial)) for _ in range(CALLS)]
                if gc_off:
                    gc.disable()
                try:
                    for req in reqs:
                        await app.evaluate(WHO, req)
                finally:
                    gc.enable()
                    decisions.evaluate = evaluate  # type: ignore[attr-defined]
                return median(out)

            def engine_us(req: pb.common.ActionRequest) -> float:
                # The engine alone on `req`, with the view the decision path builds (µs).
                bundle = app.bundle
                view = request_view(req, bundle.applicable(req.action.name).redact)
                now = app.clock.now()
                started = time.perf_counter()
                evaluate(bundle, req, now, default, view=view)
                return (time.perf_counter() - started) * 1e6

            def alone(reqs: list[pb.common.ActionRequest], touch: bool) -> float:
                out = []
                for req in reqs:
                    if touch:
                        validate_request(req, limits)
                    out.append(engine_us(req))
                return median(out)

            async def after_decision() -> float:
                out = []
                for _ in range(CALLS):
                    await app.evaluate(WHO, request(AMOUNT, next(serial)))
                    req = request(AMOUNT, next(serial))
                    validate_request(req, limits)
                    out.append(engine_us(req))
                return median(out)

            async def after(pause: Callable[[], Any], second: bool = False) -> float:
                out = []
                for _ in range(CALLS):
                    result = pause()
                    if asyncio.iscoroutine(result):
                        await result
                    req = request(AMOUNT, next(serial))
                    validate_request(req, limits)
                    if second:  # the first call after the pause, untimed
                        engine_us(req)
                    out.append(engine_us(req))
                return median(out)

            def spin() -> None:  # 1 ms on the CPU, touching almost nothing
                until = time.perf_counter() + 0.001
                while time.perf_counter() < until:
                    pass

            def busy() -> None:  # about 0.5 ms of Python on fresh memory, no waiting
                json.dumps([{"k": i, "v": str(i) * 3} for i in range(1500)])

            same = request(AMOUNT, next(serial))
            modes: dict[str, Callable[[], Any]] = {
                "decision, perf_counter": lambda: in_decision(time.perf_counter),
                "decision, thread_time": lambda: in_decision(time.thread_time),
                "decision, gc off": lambda: in_decision(time.perf_counter, gc_off=True),
                "alone, same request": lambda: alone([same] * CALLS, touch=False),
                "alone, fresh requests": lambda: alone(
                    [request(AMOUNT, next(serial)) for _ in range(CALLS)], touch=False
                ),
                "alone, fresh, touched first": lambda: alone(
                    [request(AMOUNT, next(serial)) for _ in range(CALLS)], touch=True
                ),
                "alone, after a decision": after_decision,
                "alone, after a decision, 2nd call": lambda: after(
                    lambda: app.evaluate(WHO, request(AMOUNT, next(serial))), second=True
                ),
                "alone, after 1 ms asleep": lambda: after(lambda: asyncio.sleep(0.001)),
                "alone, after 1 ms spinning": lambda: after(spin),
                "alone, after 0.5 ms of Python": lambda: after(busy),
                "alone, after a thread hop": lambda: after(lambda: asyncio.to_thread(int)),
                "alone, after an audit append": lambda: after(lambda: store.append([LOADED])),
                "alone, after a store read": lambda: after(lambda: store.read_audit(1, 10)),
                "alone, after another evaluate": lambda: after(
                    lambda: alone([request(750, next(serial))], touch=False)
                ),
            }
            runs: dict[str, list[float]] = {name: [] for name in modes}
            for _ in range(ROUNDS):
                for name, mode in modes.items():
                    result = mode()
                    if asyncio.iscoroutine(result):
                        result = await result
                    runs[name].append(result)
        finally:
            await store.close()
    return {
        "us_per_call": {name: round(median(v), 1) for name, v in runs.items()},
        "view_taken": f"{sum(views)} of {len(views)}",
        "calls": CALLS,
        "rounds": ROUNDS,
    }


def main() -> int:
    """Run the modes and write results/engine_in_decision.json."""
    data = asyncio.run(run())
    for name, us in data["us_per_call"].items():
        print(f"{name:<30} {us:7.1f} µs")
    print(f"view taken as is: {data['view_taken']}")
    print(f"wrote {write('engine_in_decision', data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
