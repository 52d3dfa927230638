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
request's conversions run, without the fsync wait. The second is the figure to read; on a
shared machine it still moves by a tenth from run to run.

Then the request's forms alone (issue 20 item 2), on the same requests, against the same
kind of floor: what each outcome needs of the request (the wire digest of the replay check,
the masked copy for the engine's texts, the receipt's or the review's action digest, the
audit payload's plain form, and for a review its stored bytes) made as the modules made them
before the change, each converting again (app.py, decide.py, receipts.py, reviews.py and
review_records.py at 63d41cc), and once through `jsonify.RequestView`. Both run in the same
rounds: the difference is the saving, free of the drift that blurs it in the whole decision.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from common import median, write
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff import pb
from signoff.app.decisions import Signoff
from signoff.app.receipts import ReceiptIssuer
from signoff.app.reviews.records import stored_bytes
from signoff.auth.identity import Identity
from signoff.auth.principals import Directory
from signoff.core import reviews
from signoff.core.decide import DefaultDecision
from signoff.core.jsonify import principal_as_sent, request_to_dict, struct_to_dict
from signoff.core.redact import masked, redact
from signoff.core.validate import Limits
from signoff.ids import SystemClock, new_id
from signoff.policy import load_bundle
from signoff.store.sqlite.store import SqliteStore
from signoff_client.canonical import action_digest

try:
    from signoff.core.jsonify import request_view
except ImportError:  # a tree before issue 20 item 2: only the whole decision is measured
    request_view = None  # type: ignore[assignment]

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


def issuer(key: Ed25519PrivateKey | None = None) -> ReceiptIssuer:
    """A receipt issuer as the server's (a new key unless given; 15-minute receipts)."""
    return ReceiptIssuer(key or Ed25519PrivateKey.generate(), dt.timedelta(minutes=15))


def app_on(
    db: Path, receipts: ReceiptIssuer | None, cls: type[Signoff] = Signoff
) -> tuple[Signoff, SqliteStore]:
    """The application as the server builds it, on a SQLite store at `db` with the example
    policies; open the store, then start the app."""
    clock = SystemClock()
    store = SqliteStore(db, clock)
    app = cls(
        policies=POLICIES,
        store=store,
        clock=clock,
        new_id=new_id,
        limits=Limits(),
        default=DefaultDecision(),
        receipts=receipts,
    )
    return app, store


async def per_call(call: Call, reqs: list[pb.common.ActionRequest]) -> tuple[float, float]:
    """(wall µs, event loop thread CPU µs) per awaited call, over `reqs` in turn."""
    wall, cpu = time.perf_counter(), time.thread_time()
    for req in reqs:
        await call(WHO, req)
    n = len(reqs)
    return (time.perf_counter() - wall) / n * 1e6, (time.thread_time() - cpu) / n * 1e6


async def measure(root: Path) -> dict[str, object]:
    """Run the rounds against an app on a store under `root`; medians above the floor."""
    app, store = app_on(root / "signoff.db", issuer())
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


# -- the split: where one decision's time goes ------------------------------------------------

# The parts of `Signoff._decide`, by the names the app module calls them under: each is
# wrapped (in this process only) to add the event loop thread's CPU time (thread_time: a
# shared machine's preemptions are not counted) to its part. The store's record_decision
# is awaited; one decision runs at a time here, so what the loop runs meanwhile is its SQL
# (the fsync runs on the writer's thread and is not in it). Each wrapper adds about a
# microsecond; "rest" is the total less the parts (the awaits, the glue, the wrappers).
# What is timed as which part: a function of app/decisions.py, else a method of the app
# (either, so that older trees, where some were functions, split the same way).
SPLIT_PARTS = {
    "validate_request": "validation",
    "request_view": "request view",
    "evaluate": "engine",
    "_decision_row": "decision row",
    "check_entry_size": "size checks",
    "check_row_size": "size checks",
    "stored_bytes": "review",
    "audit_record": "review",
    "to_record": "review",
    "_to_decision": "decision",
    "_open_review": "review",
    "_decision_record": "audit record",
}
SPLIT_CALLS = 300


# Time spent in timed parts called from inside a timed part, per open call: a part's own
# time excludes them (the receipt's leaf is built inside the decision row, for one).
_NESTED: list[float] = []


def _timed(fn: Callable[..., object], part: str, spent: dict[str, float]) -> Callable[..., object]:
    def timed(*args: object, **kwargs: object) -> object:
        started = time.thread_time()
        _NESTED.append(0.0)
        try:
            return fn(*args, **kwargs)
        finally:
            elapsed = time.thread_time() - started
            inner = _NESTED.pop()
            spent[part] = spent.get(part, 0.0) + elapsed - inner
            if _NESTED:
                _NESTED[-1] += elapsed

    return timed


async def split(root: Path) -> dict[str, dict[str, float]]:
    """Per case, µs per decision in each part of `Signoff._decide` (medians of ROUNDS)."""
    import signoff.app.decisions as decisions

    receipts = issuer()
    app, store = app_on(root / "split.db", receipts)
    spent: dict[str, float] = {}
    for name, part in SPLIT_PARTS.items():
        owner = decisions if hasattr(decisions, name) else app
        setattr(owner, name, _timed(getattr(owner, name), part, spent))
    # The receipt's leaf on the loop (a tree before batch receipts: the whole signing).
    leaf = "decision_leaf" if hasattr(receipts, "decision_leaf") else "for_decision"
    setattr(receipts, leaf, _timed(getattr(receipts, leaf), "receipt", spent))
    app.telemetry.decided = _timed(app.telemetry.decided, "telemetry", spent)  # type: ignore[method-assign]
    record = store.record_decision

    async def recorded(*args: object, **kwargs: object) -> object:
        started = time.thread_time()
        try:
            return await record(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            spent["SQL on the loop"] = spent.get("SQL on the loop", 0.0) + (
                time.thread_time() - started
            )

    store.record_decision = recorded  # type: ignore[method-assign]
    await store.open()
    serial = iter(range(10**9))
    runs: dict[str, dict[str, list[float]]] = {case: {} for case in CASES}
    try:
        await app.start()
        for amount in CASES.values():
            for _ in range(WARMUP):
                await app.evaluate(WHO, request(amount, next(serial)))
        for _ in range(ROUNDS):
            for case, amount in CASES.items():
                reqs = [request(amount, next(serial)) for _ in range(SPLIT_CALLS)]
                spent.clear()
                cpu = time.thread_time()
                for req in reqs:
                    await app.evaluate(WHO, req)
                total = time.thread_time() - cpu
                parts = {k: v / SPLIT_CALLS * 1e6 for k, v in spent.items()}
                parts["total (loop CPU)"] = total / SPLIT_CALLS * 1e6
                parts["rest"] = parts["total (loop CPU)"] - sum(
                    v for k, v in parts.items() if k != "total (loop CPU)"
                )
                for k, v in parts.items():
                    runs[case].setdefault(k, []).append(v)
    finally:
        await store.close()
        importlib.reload(decisions)  # unwrap, for anything run after
    return {
        case: {k: round(median(v), 1) for k, v in sorted(parts.items())}
        for case, parts in runs.items()
    }


FORMS_CALLS = 2_000
FORMS_ROUNDS = 9
PENDING = pb.common.Decision(
    decision_id="d-1", outcome=pb.common.OUTCOME_REQUIRE_REVIEW, reviewer_group="finance"
)


def _review(shown: pb.common.ActionRequest, digest: str = "") -> pb.review.Review:
    return reviews.open_review(
        review_id="r-1",
        decision=PENDING,
        shown=shown,
        redacted_paths=["action.params.card_number"],
        approvals=1,
        timeout=dt.timedelta(hours=1),
        on_timeout="deny",
        now=dt.datetime(2026, 12, 4, tzinfo=dt.UTC),
        shown_digest=digest,
    )


def _digest_before(r: pb.common.ActionRequest) -> str:
    """reviews.digest as it was: the whole plain request for its resource, params again."""
    doc = request_to_dict(r)
    params = struct_to_dict(r.action.params)
    return action_digest(r.action.name, params, principal_as_sent(r.principal), doc["resource"])


def reconverting(case: str, req: pb.common.ActionRequest, paths: tuple[str, ...]) -> None:
    """The request's forms as one decision made them before: each module converting again."""
    hashlib.sha256(req.SerializeToString(deterministic=True)).hexdigest()  # app: replay check
    masked(req, paths)  # decide.evaluate: the texts' request
    if case == "auto-allow":
        _digest_before(req)  # receipts.for_decision
    if case == "require-review":
        shown = redact(req, paths)  # app._open_review, then reviews.open_review's digest
        review = _review(shown, _digest_before(shown))
        stored_bytes(review)  # review_records.to_record
        hashlib.sha256(stored_bytes(review)).hexdigest()  # review_records.audit_record
    request_to_dict(redact(req, paths))  # app._decision_record


def one_view(case: str, req: pb.common.ActionRequest, paths: tuple[str, ...]) -> None:
    """The same forms from one `RequestView`, each derived once."""
    view = request_view(req, paths)
    view.wire_digest  # noqa: B018 -- a cached property: reading it derives it
    if case == "auto-allow":
        view.action_digest  # noqa: B018
    if case == "require-review":
        encoded = stored_bytes(_review(view.shown, view.shown_digest))
        hashlib.sha256(encoded).hexdigest()
    view.shown_plain  # noqa: B018


def forms() -> dict[str, object]:
    """Per outcome: µs above the floor of the request's forms, re-converted and viewed once."""
    paths = load_bundle(POLICIES).applicable("refund.issue").redact
    vouched = {}
    for case, amount in CASES.items():
        req = request(amount, 0)
        Directory().vouch(WHO, req.principal)  # as decided: the caller's word under `claimed`
        vouched[case] = req
    variants: dict[str, Callable[[str, pb.common.ActionRequest, tuple[str, ...]], None]] = {
        "floor": lambda case, req, paths: None,
        "re-converting": reconverting,
        "one view": one_view,
    }
    runs: dict[tuple[str, str], list[float]] = {}
    for _ in range(FORMS_ROUNDS):
        for case, req in vouched.items():
            for name, fn in variants.items():
                started = time.perf_counter()
                for _ in range(FORMS_CALLS):
                    fn(case, req, paths)
                us = (time.perf_counter() - started) / FORMS_CALLS * 1e6
                runs.setdefault((case, name), []).append(us)
    out: dict[str, object] = {}
    for case in CASES:
        floor = median(runs[(case, "floor")])
        before = median(runs[(case, "re-converting")]) - floor
        after = median(runs[(case, "one view")]) - floor
        out[case] = {
            "floor_us": round(floor, 3),
            "re_converting_us": round(before, 1),
            "one_view_us": round(after, 1),
            "saved_us": round(before - after, 1),
        }
    return out


def child() -> dict[str, object]:
    """One measurement of the tree `signoff` is imported from: the whole decision, its split."""
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(measure(Path(tmp)))
        result["split"] = asyncio.run(split(Path(tmp)))
    return result


COMPARE_RUNS = int(os.environ.get("BENCH_COMPARE_RUNS", "3"))


def compare(base: str) -> dict[str, object]:
    """This tree and BASE_SOURCE's, each measured COMPARE_RUNS times in alternation (child
    processes), so that both see the same machine; medians of the runs."""
    here = Path(__file__).resolve().parent.parent
    trees = {
        "before": f"{base}:{Path(base).parent / 'clients' / 'python'}",
        "after": f"{here / 'service'}:{here / 'clients' / 'python'}",
    }
    runs: dict[str, list[dict[str, object]]] = {k: [] for k in trees}
    for _ in range(COMPARE_RUNS):
        for label, path in trees.items():
            env = {**os.environ, "PYTHONPATH": path}
            env.pop("BASE_SOURCE", None)
            out = subprocess.run(
                [sys.executable, __file__, "--child"],
                env=env, check=True, capture_output=True, text=True,
            )  # fmt: skip
            runs[label].append(json.loads(out.stdout))
    result: dict[str, object] = {}
    for label, measured in runs.items():
        result[label] = {
            "cases": {
                case: {
                    "loop_cpu_us": round(
                        median([m["cases"][case]["loop_cpu_us"] for m in measured]), 1
                    ),  # type: ignore[index]
                    "wall_us": round(median([m["cases"][case]["wall_us"] for m in measured]), 1),  # type: ignore[index]
                }
                for case in CASES
            },
            "split": {
                case: {
                    part: round(median([m["split"][case].get(part, 0.0) for m in measured]), 1)  # type: ignore[index]
                    for part in measured[0]["split"][case]  # type: ignore[index]
                }
                for case in CASES
            },
        }
    return {"runs": COMPARE_RUNS, **result}


def main() -> int:
    """Measure; write results/decision_inproc.json (or the name given as the argument).

    With BASE_SOURCE=<checkout of the commit before>/service: both trees, alternating."""
    if sys.argv[1:] == ["--child"]:
        print(json.dumps(child()))
        return 0
    name = sys.argv[1] if len(sys.argv) > 1 else "decision_inproc"
    base = os.environ.get("BASE_SOURCE")
    if base:
        result = compare(base)
        path = write(name, result)
        print_compare(result)
        print(f"wrote {path}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(measure(Path(tmp)))
        result["split"] = asyncio.run(split(Path(tmp)))
    if request_view is not None:
        result["request_forms"] = forms()
    path = write(name, result)
    print(
        f"floor: wall {result['floor_wall_us']} µs, loop CPU {result['floor_loop_cpu_us']} µs"
        " per call"
    )
    print(f"{'case':<16} {'outcome':<24} {'wall µs':>9} {'loop CPU µs':>12}  (above the floor)")
    for case, row in result["cases"].items():  # type: ignore[attr-defined]
        print(f"{case:<16} {row['outcome']:<24} {row['wall_us']:>9} {row['loop_cpu_us']:>12}")
    if "request_forms" in result:
        print(f"\n{'request forms':<16} {'re-converting µs':>17} {'one view µs':>12} {'saved':>7}")
        for case, row in result["request_forms"].items():  # type: ignore[attr-defined]
            print(
                f"{case:<16} {row['re_converting_us']:>17} {row['one_view_us']:>12}"
                f" {row['saved_us']:>7}"
            )
    print_split(result["split"])  # type: ignore[arg-type]
    print(f"wrote {path}")
    return 0


def print_split(split_us: dict[str, dict[str, float]], other: dict | None = None) -> None:
    """The split table (with `other`: before -> after)."""
    print(f"\n{'µs per decision':<22}" + "".join(f"{c:>22}" for c in split_us))
    parts = sorted({p for row in split_us.values() for p in row})
    for part in parts:
        cells = []
        for case, row in split_us.items():
            now = row.get(part, 0.0)
            if other is None:
                cells.append(f"{now:>22}")
            else:
                cells.append(f"{other[case].get(part, 0.0):>10} -> {now:<9}")
        print(f"{part:<22}" + "".join(cells))


def print_compare(result: dict[str, object]) -> None:
    """Before and after, side by side."""
    before, after = result["before"], result["after"]
    print(
        f"{'case':<16} {'loop CPU µs before':>19} {'after':>8} {'wall µs before':>15} {'after':>8}"
    )
    for case in CASES:
        b, a = before["cases"][case], after["cases"][case]  # type: ignore[index]
        cpu = f"{b['loop_cpu_us']:>19} {a['loop_cpu_us']:>8}"
        print(f"{case:<16} {cpu} {b['wall_us']:>15} {a['wall_us']:>8}")
    print_split(after["split"], before["split"])  # type: ignore[index]


if __name__ == "__main__":
    sys.exit(main())
