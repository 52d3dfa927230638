"""AuditService: QueryAudit, ExportAudit, VerifyAudit, GetCheckpoints, GetInclusionProof,
GetConsistencyProof (auditors; checkpoints and consistency proofs also witnesses),
AddCosignature (witnesses), GetReceiptProof (auditors, and agents for their own receipts)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from signoff import pb
from signoff.api.methods import Method
from signoff.app.audit.desk import AuditDesk
from signoff.app.reviews.desk import Identity

SERVICE = "signoff.v1.AuditService"
A = pb.audit


def methods(desk: AuditDesk) -> list[Method]:
    """The AuditService methods."""

    async def query(who: Identity, req: A.QueryAuditRequest) -> A.QueryAuditResponse:
        return await desk.query(who, req)

    async def export(who: Identity, req: A.ExportAuditRequest) -> AsyncIterator[A.ExportChunk]:
        # Each yield waits for the transport's flow control: a slow reader slows the export
        # down instead of the server buffering the log in memory.
        async for chunk in desk.export(who, req):
            yield chunk

    async def verify(who: Identity, req: A.VerifyAuditRequest) -> A.VerifyAuditResponse:
        return await desk.verify(who, req)

    async def get_checkpoints(
        who: Identity, req: A.GetCheckpointsRequest
    ) -> A.GetCheckpointsResponse:
        return await desk.list_checkpoints(who, req)

    async def inclusion(
        who: Identity, req: A.GetInclusionProofRequest
    ) -> A.GetInclusionProofResponse:
        return await desk.inclusion_proof(who, req)

    async def consistency(
        who: Identity, req: A.GetConsistencyProofRequest
    ) -> A.GetConsistencyProofResponse:
        return await desk.consistency_proof(who, req)

    async def add_cosignature(
        who: Identity, req: A.AddCosignatureRequest
    ) -> A.AddCosignatureResponse:
        return await desk.add_cosignature(who, req)

    async def receipt_proof(who: Identity, req: A.GetReceiptProofRequest) -> A.ReceiptProof:
        return await desk.receipt_proof(who, req)

    return [
        Method(SERVICE, "QueryAudit", A.QueryAuditRequest, A.QueryAuditResponse, query),
        Method(SERVICE, "ExportAudit", A.ExportAuditRequest, A.ExportChunk, stream=export),
        Method(SERVICE, "VerifyAudit", A.VerifyAuditRequest, A.VerifyAuditResponse, verify),
        Method(
            SERVICE,
            "GetCheckpoints",
            A.GetCheckpointsRequest,
            A.GetCheckpointsResponse,
            get_checkpoints,
        ),
        Method(
            SERVICE,
            "GetInclusionProof",
            A.GetInclusionProofRequest,
            A.GetInclusionProofResponse,
            inclusion,
        ),
        Method(
            SERVICE,
            "GetConsistencyProof",
            A.GetConsistencyProofRequest,
            A.GetConsistencyProofResponse,
            consistency,
        ),
        Method(
            SERVICE,
            "AddCosignature",
            A.AddCosignatureRequest,
            A.AddCosignatureResponse,
            add_cosignature,
        ),
        Method(SERVICE, "GetReceiptProof", A.GetReceiptProofRequest, A.ReceiptProof, receipt_proof),
    ]
