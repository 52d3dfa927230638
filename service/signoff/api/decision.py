"""DecisionService: Evaluate, EvaluateBatch, Explain."""

from __future__ import annotations

import grpc

from signoff import pb
from signoff.api.errors import Ctx, Guard, parse, unary_handler
from signoff.app import Signoff
from signoff.review_app import Identity

SERVICE = "signoff.v1.DecisionService"


def handler(app: Signoff, guard: Guard) -> grpc.GenericRpcHandler:
    """The DecisionService handlers."""

    async def evaluate(who: Identity, data: bytes, _: Ctx) -> pb.common.Decision:
        return await app.evaluate(who, parse(pb.common.ActionRequest, data))

    async def evaluate_batch(
        who: Identity, data: bytes, _: Ctx
    ) -> pb.decision.EvaluateBatchResponse:
        req = parse(pb.decision.EvaluateBatchRequest, data)
        decisions = await app.evaluate_batch(who, list(req.requests))
        return pb.decision.EvaluateBatchResponse(decisions=decisions)

    async def explain(who: Identity, data: bytes, _: Ctx) -> pb.decision.Explanation:
        return app.explain(who, parse(pb.common.ActionRequest, data))

    methods = {
        "Evaluate": (evaluate, pb.common.Decision),
        "EvaluateBatch": (evaluate_batch, pb.decision.EvaluateBatchResponse),
        "Explain": (explain, pb.decision.Explanation),
    }
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            name: unary_handler(guard.unary(f"{SERVICE}/{name}", fn), out)
            for name, (fn, out) in methods.items()
        },
    )
