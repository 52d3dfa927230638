"""DecisionService: Evaluate, EvaluateBatch, Explain."""

from __future__ import annotations

import grpc

from signoff import pb
from signoff.api.errors import mapped, parse
from signoff.app import Signoff

SERVICE = "signoff.v1.DecisionService"


def handler(app: Signoff) -> grpc.GenericRpcHandler:
    """The DecisionService handlers; requests arrive as bytes so decoding errors are ours."""

    @mapped
    async def Evaluate(data: bytes, context: grpc.aio.ServicerContext) -> pb.common.Decision:
        return await app.evaluate(parse(pb.common.ActionRequest, data))

    @mapped
    async def EvaluateBatch(
        data: bytes, context: grpc.aio.ServicerContext
    ) -> pb.decision.EvaluateBatchResponse:
        req = parse(pb.decision.EvaluateBatchRequest, data)
        decisions = await app.evaluate_batch(list(req.requests))
        return pb.decision.EvaluateBatchResponse(decisions=decisions)

    @mapped
    async def Explain(data: bytes, context: grpc.aio.ServicerContext) -> pb.decision.Explanation:
        return app.explain(parse(pb.common.ActionRequest, data))

    def unary(fn: object, out: type) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(fn, response_serializer=out.SerializeToString)

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Evaluate": unary(Evaluate, pb.common.Decision),
            "EvaluateBatch": unary(EvaluateBatch, pb.decision.EvaluateBatchResponse),
            "Explain": unary(Explain, pb.decision.Explanation),
        },
    )
