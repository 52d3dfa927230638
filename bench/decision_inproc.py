"""One Evaluate through the application layer, in process: what a decision costs the server
beyond gRPC, against the floor.

`Signoff.evaluate` (what `server.py` builds: a real SQLite store in a temporary directory,
the example policies/, signed receipts on) decides the README's refund request three ways:
auto-allow (120), require-review (750: a review is opened) and deny (20,000). Every request
holds a card number, which the refund policy redacts, so each decision also masks. The
floor is an async no-op of the same shape (identity and request in, a Decision out),
awaited on the same event loop in the same rounds; rounds alternate the cases, so drift on
a shared machine hits all alike.

Two figures per case: the wall time of an awaited call (it includes the audit writer's
group commit and fsync, one decision per transaction here) and the event loop thread's CPU
time (`time.thread_time` on that thread): the work of the handler itself, where the
request's conversions run, without the fsync wait. The second is the figure to read.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from common import median, write
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff import pb
from signoff.app import Signoff
from signoff.auth.identity import Identity
from signoff.decide import DefaultDecision
from signoff.ids import SystemClock, new_id
from signoff.receipts import ReceiptIssuer
from signoff.store.sqlite import SqliteStore
from signoff.validate import Limits

POLICIES = Path(__file__).resolve().parent.parent / "policies"
CALLS = 400
ROUNDS = 11
WARMUP = 100
# Amounts the example refund policy decides each way (policies/refunds.yaml).
CASES = {"auto-allow": 120, "require-review": 750, "deny": 20_000}
WHO = Identity("support-bot", frozenset({"agent"}))

Call = Callable[[Identity, pb.common.ActionRequest], Awaitable[pb.common.Decision]]


def request(amount: float, n: int) -> pb.common.ActionRequest:
    """The README's refund request, for `amount`, with a request_id of its own."""
    req = pb.common.ActionRequest(request_id=f"T-{n}:b94c45c0", justification="double charge")
    req.action.name = "refund.issue"
    req.action.params.update({"amount": amount, "currency": "EUR", "card_number": "4111 1111"})
    req.principal.id = "support-bot"
    req.principal.kind = "agent"
    req.principal.tags.extend(["eu"])
    req.resource.kind, req.resource.id = "account", "acct_42"
    req.context.update({"ticket": "T-1234", "channel": "chat"})
    return req


async def per_call(call: Call, reqs: list[pb.common.ActionRequest]) -> tuple[float, float]:
    """(wall µs, event loop thread CPU µs) per awaited call, over `reqs` in turn."""
    wall, cpu = time.perf_counter(), time.thread_time()
    for req in reqs:
        await call(WHO, req)
    n = len(reqs)
    return (time.perf_counter() - wall) / n * 1e6, (time.thread_time() - cpu) / n * 1e6


async def measure(root: Path) -> dict[str, object]:
    """Run the rounds against an app on a store under `root`; medians above the floor."""
    clock = SystemClock()
    store = SqliteStore(root / "signoff.db", clock)
    receipts = ReceiptIssuer(Ed25519PrivateKey.generate(), dt.timedelta(minutes=15))
    app = Signoff(
        policies=POLICIES,
        store=store,
        clock=clock,
        new_id=new_id,
        limits=Limits(),
        default=DefaultDecision(),
        receipts=receipts,
    )
    await store.open()
    try:
        await app.start()
        done = pb.common.Decision(outcome=pb.common.OUTCOME_AUTO_ALLOW)

        async def floor(who: Identity, req: pb.common.ActionRequest) -> pb.common.Decision:
            return done

        calls: dict[str, Call] = {"floor (no-op call)": floor}
        calls.update(dict.fromkeys(CASES, app.evaluate))
        amounts = {"floor (no-op call)": 120, **CASES}
        serial = iter(range(10**9))

        def fresh(name: str, count: int) -> list[pb.common.ActionRequest]:
            # Built before the clock starts; a new request_id each, so nothing is a replay.
            return [request(amounts[name], next(serial)) for _ in range(count)]

        for name, call in calls.items():
            await per_call(call, fresh(name, WARMUP))
        walls: dict[str, list[float]] = {name: [] for name in calls}
        cpus: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(ROUNDS):
            for name, call in calls.items():
                wall, cpu = await per_call(call, fresh(name, CALLS))
                walls[name].append(wall)
                cpus[name].append(cpu)
        outcomes = {
            name: pb.common.Outcome.Name((await app.evaluate(WHO, fresh(name, 1)[0])).outcome)
            for name in CASES
        }
    finally:
        await store.close()
    floor_wall = median(walls["floor (no-op call)"])
    floor_cpu = median(cpus["floor (no-op call)"])
    return {
        "calls_per_round": CALLS,
        "rounds": ROUNDS,
        "floor_wall_us": round(floor_wall, 3),
        "floor_loop_cpu_us": round(floor_cpu, 3),
        "cases": {
            name: {
                "outcome": outcomes[name],
                "wall_us": round(median(walls[name]) - floor_wall, 1),
                "loop_cpu_us": round(median(cpus[name]) - floor_cpu, 1),
                # Whole per-call figures (floor included) of the fastest and slowest round.
                "loop_cpu_us_min_max": [round(min(cpus[name]), 1), round(max(cpus[name]), 1)],
            }
            for name in CASES
        },
    }


def main() -> int:
    """Measure; write results/decision_inproc.json (or the name given as the argument)."""
    name = sys.argv[1] if len(sys.argv) > 1 else "decision_inproc"
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(measure(Path(tmp)))
    path = write(name, result)
    print(
        f"floor: wall {result['floor_wall_us']} µs, loop CPU {result['floor_loop_cpu_us']} µs"
        " per call"
    )
    print(f"{'case':<16} {'outcome':<24} {'wall µs':>9} {'loop CPU µs':>12}  (above the floor)")
    for case, row in result["cases"].items():  # type: ignore[attr-defined]
        print(f"{case:<16} {row['outcome']:<24} {row['wall_us']:>9} {row['loop_cpu_us']:>12}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
