"""Receipts signed once per write batch (issue 21 item 5): signing cost per decision, before
(version 1: one Ed25519 signature per AUTO_ALLOW decision) and after (version 2: one per
write batch, a Merkle tree over the batch), at batches of 1, 8 and 64, in one run.

Two measures, both on the event loop thread's CPU clock (`time.thread_time`), medians of
rounds that alternate the variants so that drift on a shared machine hits all alike:

1. **receipt work alone**, per decision: v1 = the statement, its signature, the receipt
   attached and the Decision serialized with it; v2 = the leaf statement, the Decision
   serialized without it, the batch's seal (tree + one signature) shared by n, the bytes
   appended and the receipt merged into the response. "none" = the Decision serialized
   without a receipt; the figures are above it.
2. **whole decisions in process**: `Signoff.evaluate_batch` of n AUTO_ALLOW requests on a
   real SQLite store (each call's decisions reach the writer in one group commit), with
   receipts off, version 1 (the app as it was: signed in `_decide` before the store), and
   version 2 (sealed by the writer). Loop CPU per decision; the writer thread's commit is
   not on this clock, and the seal runs on the loop, so it is counted.

    .venv/bin/python bench/receipt_batches.py
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import median, write
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from decision_inproc import WHO, app_on, issuer, request

from signoff import pb
from signoff.app.decisions import Signoff
from signoff.app.receipts import ReceiptIssuer
from signoff.core.jsonify import RequestView
from signoff.store.base import DecisionRecord

SIZES = (1, 8, 64)
ROUNDS = 11
ALONE_DECISIONS = 512  # per size, variant and round
WHOLE_DECISIONS = 256
T0 = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
DIGEST = "ab" * 32


def _decision(n: int) -> pb.common.Decision:
    d = pb.common.Decision(
        decision_id=f"0193a1b2-c3d4-7e5f-8a9b-{n:012d}",
        request_id=f"T-{n}:b94c45c0",
        outcome=pb.common.OUTCOME_AUTO_ALLOW,
        reason="small refunds are fine",
        policy_version="sha256:" + "0" * 16,
    )
    d.evaluated_at.FromDatetime(T0)
    d.matched_rules.add(file="refunds.yaml", policy="refunds", rule="small-refund", line=12)
    return d


def _statement(issuer: ReceiptIssuer, version: int, d: pb.common.Decision) -> bytes:
    return issuer.document(
        version=version,
        decision_id=d.decision_id,
        review_id="",
        digest=DIGEST,
        redacted_paths=[],
        outcome="AUTO_ALLOW",
        approvers=[],
        issued_at=T0,
    )


def _none(issuer: ReceiptIssuer, ds: list[pb.common.Decision]) -> None:
    for d in ds:
        d.SerializeToString()


def _v1(issuer: ReceiptIssuer, ds: list[pb.common.Decision]) -> None:
    for d in ds:
        payload = _statement(issuer, 1, d)
        r = pb.common.Receipt(payload=payload, signature=issuer.key.sign(payload))
        r.key_id = issuer.key_id
        out = pb.common.Decision()
        out.CopyFrom(d)
        out.receipt.CopyFrom(r)
        out.SerializeToString()


def _v2(issuer: ReceiptIssuer, ds: list[pb.common.Decision]) -> None:
    leaves = [_statement(issuer, 2, d) for d in ds]
    sent = [d.SerializeToString() for d in ds]
    sealed = issuer.seal(leaves)
    for d, data, extra in zip(ds, sent, sealed, strict=True):
        stored = data + extra  # what the store writes
        out = pb.common.Decision()
        out.CopyFrom(d)
        out.MergeFromString(stored[len(data) :])  # what the app returns


def alone() -> dict[str, dict[str, float]]:
    """Receipt work per decision above the no-receipt floor (µs of CPU), by batch size."""
    issuer = ReceiptIssuer(Ed25519PrivateKey.generate(), dt.timedelta(minutes=15))
    variants: dict[str, Callable[[ReceiptIssuer, list[pb.common.Decision]], None]] = {
        "none": _none,
        "v1": _v1,
        "v2": _v2,
    }
    ds = [_decision(n) for n in range(max(SIZES))]
    out: dict[str, dict[str, float]] = {}
    for size in SIZES:
        batch = ds[:size]
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(ROUNDS):
            for name, fn in variants.items():
                started = time.thread_time()
                for _ in range(ALONE_DECISIONS // size):
                    fn(issuer, batch)
                times[name].append((time.thread_time() - started) / ALONE_DECISIONS * 1e6)
        floor = median(times["none"])
        v1, v2 = median(times["v1"]) - floor, median(times["v2"]) - floor
        out[str(size)] = {
            "v1_us": round(v1, 1),
            "v2_us": round(v2, 1),
            "v2_over_v1": round(v2 / v1, 3),
        }
    return out


class SignedAlone(Signoff):
    """The app as before version 2: each AUTO_ALLOW decision signed in `_decide`, before the
    store, and serialized with its receipt (built with receipts=None: no sealer, no leaf)."""

    v1: ReceiptIssuer

    def _decision_row(
        self, view: RequestView, decision: pb.common.Decision, now: dt.datetime
    ) -> DecisionRecord:
        if decision.outcome == pb.common.OUTCOME_AUTO_ALLOW:
            decision.receipt.CopyFrom(
                self.v1.sign(
                    decision_id=decision.decision_id,
                    review_id="",
                    digest=view.action_digest,
                    redacted_paths=[],
                    outcome="AUTO_ALLOW",
                    approvers=[],
                    issued_at=decision.evaluated_at.ToDatetime(tzinfo=dt.UTC),
                )
            )
        return super()._decision_row(view, decision, now)


async def whole(root: Path) -> dict[str, dict[str, float]]:
    """Loop CPU per decision of `evaluate_batch` (µs), by variant and batch size."""
    key = Ed25519PrivateKey.generate()
    apps: dict[str, Signoff] = {}
    stores = []
    for name in ("off", "v1", "v2"):
        cls = SignedAlone if name == "v1" else Signoff
        app, store = app_on(root / name / "signoff.db", issuer(key) if name == "v2" else None, cls)
        if isinstance(app, SignedAlone):
            app.v1 = issuer(key)
        await store.open()
        await app.start()
        apps[name], stores = app, [*stores, store]
    serial = iter(range(10**9))
    try:
        out: dict[str, dict[str, float]] = {}
        for size in SIZES:
            times: dict[str, list[float]] = {name: [] for name in apps}
            for round_ in range(ROUNDS + 1):  # the first round warms up
                for name, app in apps.items():
                    calls = [
                        [request(120, next(serial)) for _ in range(size)]
                        for _ in range(WHOLE_DECISIONS // size)
                    ]
                    started = time.thread_time()
                    for reqs in calls:
                        decisions = await app.evaluate_batch(WHO, reqs)
                    elapsed = time.thread_time() - started
                    assert (name == "off") != decisions[0].HasField("receipt")
                    if round_:
                        times[name].append(elapsed / WHOLE_DECISIONS * 1e6)
            off = median(times["off"])
            v1, v2 = median(times["v1"]), median(times["v2"])
            out[str(size)] = {
                "off_us": round(off, 1),
                "v1_us": round(v1, 1),
                "v2_us": round(v2, 1),
                "v1_receipt_us": round(v1 - off, 1),
                "v2_receipt_us": round(v2 - off, 1),
            }
        return out
    finally:
        for store in stores:
            await store.close()


def main() -> int:
    """Run both measures and write results/receipt_batches.json."""
    first = alone()
    with tempfile.TemporaryDirectory() as tmp:
        second = asyncio.run(whole(Path(tmp)))
    path = write(
        "receipt_batches",
        {
            "rounds": ROUNDS,
            "note": "machine shared with other jobs; medians of rounds, variants alternated",
            "receipt_work_per_decision": first,
            "evaluate_batch_loop_cpu_per_decision": second,
        },
    )
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
