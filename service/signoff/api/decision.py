"""DecisionService: Evaluate, EvaluateBatch, Explain, Screen."""

from __future__ import annotations

from signoff import pb
from signoff.api.methods import Method
from signoff.app.decisions import Signoff
from signoff.app.reviews.desk import Identity
from signoff.app.screening import screen

SERVICE = "signoff.v1.DecisionService"
D = pb.decision


def methods(app: Signoff) -> list[Method]:
    """The DecisionService methods."""

    async def evaluate(who: Identity, req: pb.common.ActionRequest) -> pb.common.Decision:
        return await app.evaluate(who, req)

    async def evaluate_batch(who: Identity, req: D.EvaluateBatchRequest) -> D.EvaluateBatchResponse:
        decisions = await app.evaluate_batch(who, list(req.requests))
        return D.EvaluateBatchResponse(decisions=decisions)

    async def explain(who: Identity, req: pb.common.ActionRequest) -> D.Explanation:
        return app.explain(who, req)

    async def screen_actions(who: Identity, req: D.ScreenRequest) -> D.ScreenResponse:
        return screen(app, who, req)

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
