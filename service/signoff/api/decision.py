"""DecisionService: Evaluate, EvaluateBatch, Explain, Screen."""

from __future__ import annotations

from signoff import pb
from signoff.api.errors import parse
from signoff.api.methods import Method
from signoff.app.decisions import Signoff
from signoff.app.reviews.desk import Identity
from signoff.app.screening import screen

SERVICE = "signoff.v1.DecisionService"
D = pb.decision


def methods(app: Signoff) -> list[Method]:
    """The DecisionService methods."""

    async def evaluate(who: Identity, data: bytes) -> pb.common.Decision:
        return await app.evaluate(who, parse(pb.common.ActionRequest, data))

    async def evaluate_batch(who: Identity, data: bytes) -> D.EvaluateBatchResponse:
        req = parse(D.EvaluateBatchRequest, data)
        decisions = await app.evaluate_batch(who, list(req.requests))
        return D.EvaluateBatchResponse(decisions=decisions)

    async def explain(who: Identity, data: bytes) -> D.Explanation:
        return app.explain(who, parse(pb.common.ActionRequest, data))

    async def screen_actions(who: Identity, data: bytes) -> D.ScreenResponse:
        return screen(app, who, parse(D.ScreenRequest, data))

    return [
        Method(SERVICE, "Evaluate", pb.common.ActionRequest, pb.common.Decision, evaluate),
        Method(
            SERVICE,
            "EvaluateBatch",
            D.EvaluateBatchRequest,
            D.EvaluateBatchResponse,
            evaluate_batch,
        ),
        Method(SERVICE, "Explain", pb.common.ActionRequest, D.Explanation, explain),
        Method(SERVICE, "Screen", D.ScreenRequest, D.ScreenResponse, screen_actions),
    ]
