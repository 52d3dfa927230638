"""A no-op Evaluate for the end-to-end bench: the floor that real Evaluate is measured against.

It parses the real ActionRequest and answers a Decision of the real one's shape (two matched
rules, a reason, a policy version, a receipt with a signed payload's size) through the same
transport, Guard (authentication, limits) and field bounds, but evaluates, writes and signs
nothing. It lives on its own service, which no client stub names, and the server registers
it only when the bench starts it with SIGNOFF_BENCH_NOOP=1 (serving/server.py): a normal
server answers UNIMPLEMENTED for it.
"""

from __future__ import annotations

from signoff import pb
from signoff.api.methods import Method
from signoff.app.reviews.desk import Identity
from signoff.ids import new_id

SERVICE = "signoff.bench.v1.Bench"
ENV_FLAG = "SIGNOFF_BENCH_NOOP"


def _template() -> pb.common.Decision:
    """An AUTO_ALLOW Decision as the example refund policy gives one, receipt included."""
    d = pb.common.Decision(
        outcome=pb.common.OUTCOME_AUTO_ALLOW,
        reason="Small refund within policy.",
        policy_version="sha256:" + "0" * 64,
    )
    for name, line, decision, reason in (
        ("small-refund", 43, pb.common.RULE_DECISION_ALLOW, "Small refund within policy."),
        (
            "very-large-refund-two-approvers",
            49,
            pb.common.RULE_DECISION_REVIEW,
            "Refund above 5,000 would need two finance approvers.",
        ),
    ):
        d.matched_rules.add(
            file="refunds.yaml",
            policy="refunds",
            rule=name,
            decision=decision,
            reason=reason,
            line=line,
            shadow=decision == pb.common.RULE_DECISION_REVIEW,
        )
    # The sizes of a real receipt: its canonical JSON payload, a 64-byte Ed25519 signature.
    d.receipt.payload = b"x" * 420
    d.receipt.signature = b"s" * 64
    d.receipt.key_id = "0123456789abcdef"
    return d


def methods() -> list[Method]:
    """The bench-only service: NoopEvaluate."""
    template = _template()

    async def noop_evaluate(who: Identity, req: pb.common.ActionRequest) -> pb.common.Decision:
        d = pb.common.Decision()
        d.CopyFrom(template)
        d.decision_id = new_id()
        d.request_id = req.request_id
        d.evaluated_at.GetCurrentTime()
        return d

    return [
        Method(SERVICE, "NoopEvaluate", pb.common.ActionRequest, pb.common.Decision, noop_evaluate)
    ]
