"""Services whose API is designed but not built yet: every method answers UNIMPLEMENTED."""

from __future__ import annotations

import grpc

from signoff import pb

PLANNED = {
    "signoff.v1.AuditService": pb.audit.DESCRIPTOR.services_by_name["AuditService"],
}


class Unimplemented(grpc.GenericRpcHandler):
    """Answers every method of the planned services with UNIMPLEMENTED and a pointer."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        """Return an UNIMPLEMENTED handler for methods of planned services."""
        service, _, method = details.method.lstrip("/").partition("/")
        desc = PLANNED.get(service)
        if desc is None or method not in desc.methods_by_name:
            return None
        m = desc.methods_by_name[method]

        async def abort(request: bytes, context: grpc.aio.ServicerContext) -> None:
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED, f"{service}.{method} is not implemented yet"
            )

        if m.server_streaming:
            return grpc.unary_stream_rpc_method_handler(abort)
        return grpc.unary_unary_rpc_method_handler(abort)
