"""PolicyService: GetBundle, ReloadBundle."""

from __future__ import annotations

import grpc

from signoff import pb
from signoff.api.errors import mapped, parse
from signoff.app import Signoff

SERVICE = "signoff.v1.PolicyService"


def handler(app: Signoff) -> grpc.GenericRpcHandler:
    """The PolicyService handlers."""

    @mapped
    async def GetBundle(data: bytes, context: grpc.aio.ServicerContext) -> pb.policy.BundleInfo:
        parse(pb.policy.GetBundleRequest, data)
        return app.bundle_info()

    @mapped
    async def ReloadBundle(
        data: bytes, context: grpc.aio.ServicerContext
    ) -> pb.policy.ReloadBundleResponse:
        parse(pb.policy.ReloadBundleRequest, data)
        accepted, errs = await app.reload()
        out = pb.policy.ReloadBundleResponse(accepted=accepted, bundle=app.bundle_info())
        for e in errs:
            out.errors.add(
                file=e.file, line=e.line, column=e.column, rule=e.rule or "", message=e.message
            )
        return out

    def unary(fn: object, out: type) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(fn, response_serializer=out.SerializeToString)

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "GetBundle": unary(GetBundle, pb.policy.BundleInfo),
            "ReloadBundle": unary(ReloadBundle, pb.policy.ReloadBundleResponse),
        },
    )
