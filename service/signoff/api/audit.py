"""AuditService: QueryAudit, ExportAudit, VerifyAudit, GetCheckpoints (auditors only)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from signoff import pb
from signoff.api.errors import Ctx, Guard, parse, stream_handler, unary_handler
from signoff.audit_app import AuditDesk
from signoff.review_app import Identity

SERVICE = "signoff.v1.AuditService"
A = pb.audit


def handler(desk: AuditDesk, guard: Guard) -> grpc.GenericRpcHandler:
    """The AuditService handlers."""

    async def query(who: Identity, data: bytes, _: Ctx) -> A.QueryAuditResponse:
        return await desk.query(who, parse(A.QueryAuditRequest, data))

    async def export(who: Identity, data: bytes, _: Ctx) -> AsyncIterator[A.ExportChunk]:
        # Each yield waits for gRPC flow control: a slow reader slows the export down
        # instead of the server buffering the log in memory.
        async for chunk in desk.export(who, parse(A.ExportAuditRequest, data)):
            yield chunk

    async def verify(who: Identity, data: bytes, _: Ctx) -> A.VerifyAuditResponse:
        return await desk.verify(who, parse(A.VerifyAuditRequest, data))

    async def get_checkpoints(who: Identity, data: bytes, _: Ctx) -> A.GetCheckpointsResponse:
        return await desk.list_checkpoints(who, parse(A.GetCheckpointsRequest, data))

    name = f"{SERVICE}/"
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "QueryAudit": unary_handler(
                guard.unary(name + "QueryAudit", query), A.QueryAuditResponse
            ),
            "ExportAudit": stream_handler(
                guard.stream(name + "ExportAudit", export), A.ExportChunk
            ),
            "VerifyAudit": unary_handler(
                guard.unary(name + "VerifyAudit", verify), A.VerifyAuditResponse
            ),
            "GetCheckpoints": unary_handler(
                guard.unary(name + "GetCheckpoints", get_checkpoints), A.GetCheckpointsResponse
            ),
        },
    )
