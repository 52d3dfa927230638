"""The audit desk: the one entry point of the audit use cases (query, export, verify,
checkpoints, proofs, co-signatures), checking who asks before handing over to the module
that does the work. Knows the store, not gRPC."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator

from signoff import export, pb
from signoff.app.audit import checkpoints, proofs, query, receipt_proofs, verify, witness
from signoff.app.audit.checkpoints import Signer
from signoff.app.reviews.desk import Identity
from signoff.core import wire
from signoff.core.audit import AuditEntry
from signoff.core.witness import Cosignature
from signoff.errors import InvalidArgument, PermissionDenied
from signoff.ids import Clock
from signoff.logs import event
from signoff.store.base import AuditQuery, Checkpoint, Store

log = logging.getLogger("signoff.audit")
A = pb.audit
PAGE = 1000
CHUNK_BYTES = 64 * 1024


def require_auditor(who: Identity) -> None:
    """Audit RPCs are for auditors."""
    if "auditor" not in who.roles:
        raise PermissionDenied(f"{who.id} needs the role auditor")


class AuditDesk:
    """Everything auditors do: read, export, verify; and the checkpoints that anchor it."""

    def __init__(
        self, store: Store, clock: Clock, signer: Signer | None, page_bytes: int = 2 << 20
    ) -> None:
        self.store = store
        self.page_bytes = page_bytes  # a page's byte budget (limits.fields.max_page_bytes)
        self.clock = clock
        self.signer = signer
        self.trusted = checkpoints.trusted_keys(signer)

    async def query(self, who: Identity, req: A.QueryAuditRequest) -> A.QueryAuditResponse:
        """One page of entries matching a filter."""
        require_auditor(who)
        return await query.page(self.store, req, self.page_bytes)

    async def export(
        self, who: Identity, req: A.ExportAuditRequest
    ) -> AsyncIterator[A.ExportChunk]:
        """The matching entries as JSON Lines (with checkpoints and a signed end) or CSV."""
        require_auditor(who)
        if self.signer is None:
            raise InvalidArgument("format", "exports need the server's signing key")
        q = query.to_query(req.filter)
        csv = wire.enum(A.ExportFormat, req.format, "format") == A.EXPORT_FORMAT_CSV
        writer = export.ExportWriter(self.signer.key, filtered=q != AuditQuery())
        buf: list[bytes] = [export.csv_header()] if csv else []
        size = count = 0
        cosigned: dict[int, list[Cosignature]] = {}
        async for e, cps in self._walk(q, with_checkpoints=not csv):
            if cps:  # read per checkpoint met: memory stays flat however long the log
                cosigned = await self.store.cosignatures(cps[0].seq, cps[-1].seq)
            line = export.csv_row(e) if csv else writer.entry(e)
            if buf and size + len(line) > self.page_bytes:
                # The chunk would outgrow a message: send what is there first.
                yield A.ExportChunk(data=b"".join(buf), entries=count)
                buf, size = [], 0
            buf.append(line)
            size += len(line)
            buf.extend(writer.checkpoint(cp, cosigned.get(cp.seq, ())) for cp in cps)
            count += 1
            if size >= min(CHUNK_BYTES, self.page_bytes):
                yield A.ExportChunk(data=b"".join(buf), entries=count)
                buf, size = [], 0
        if not csv:
            buf.append(writer.end(self.clock.now()))
        yield A.ExportChunk(data=b"".join(buf), entries=count)
        event(log, "audit.exported", entries=count, format="csv" if csv else "jsonl", by=who.id)

    async def _walk(
        self, q: AuditQuery, *, with_checkpoints: bool
    ) -> AsyncIterator[tuple[AuditEntry, list[Checkpoint]]]:
        """Entries in seq order, a page at a time (flat memory), with their checkpoints."""
        after = None
        while True:
            rows = await self.store.query_audit(q, after_seq=after, limit=PAGE)
            if not rows:
                return
            cps: dict[int, list[Checkpoint]] = {}
            if with_checkpoints:
                for cp in await self.store.checkpoints(rows[0].seq, rows[-1].seq):
                    cps.setdefault(cp.seq, []).append(cp)
            for e in rows:
                yield e, cps.get(e.seq, [])
            after = rows[-1].seq

    async def verify(self, who: Identity, req: A.VerifyAuditRequest) -> A.VerifyAuditResponse:
        """Walk the chain and the checkpoints in a range; report the first inconsistency."""
        require_auditor(who)
        return await verify.check(self.store, self.trusted, req)

    async def list_checkpoints(
        self, who: Identity, req: A.GetCheckpointsRequest
    ) -> A.GetCheckpointsResponse:
        """Checkpoints (with their witnesses' co-signatures) and the public key, for anchoring
        outside the database."""
        witness.require_reader(who)
        return await checkpoints.listing(self.store, self.signer, req)

    async def inclusion_proof(
        self, who: Identity, req: A.GetInclusionProofRequest
    ) -> A.GetInclusionProofResponse:
        """The proof that entry `seq` is in the log of `tree_size` entries."""
        require_auditor(who)
        return await proofs.inclusion(self.store, req)

    async def consistency_proof(
        self, who: Identity, req: A.GetConsistencyProofRequest
    ) -> A.GetConsistencyProofResponse:
        """The proof that the log of `first` entries is a prefix of the log of `second`."""
        witness.require_reader(who)
        return await proofs.consistency(self.store, req)

    async def receipt_proof(self, who: Identity, req: A.GetReceiptProofRequest) -> A.ReceiptProof:
        """The receipt of `req` with the proof that the log records its allow."""
        return await receipt_proofs.receipt_proof(self.store, self.trusted, who, req)

    async def add_cosignature(
        self, who: Identity, req: A.AddCosignatureRequest
    ) -> A.AddCosignatureResponse:
        """Store a witness's checked co-signature of a stored checkpoint."""
        return await witness.add_cosignature(self.store, who, req)

    async def warn_if_untrusted(self) -> None:
        """Log a warning when the newest checkpoint's key is not trusted (a rotation without
        audit.trusted_keys, or a replica with a key of its own): verification will fail."""
        await checkpoints.warn_if_untrusted(self.store, self.trusted)

    async def checkpoint_if_due(self, every: int, interval: dt.timedelta) -> Checkpoint | None:
        """Sign the head if `every` entries or `interval` passed since the last checkpoint."""
        if self.signer is None:
            return None
        return await checkpoints.sign_if_due(self.store, self.clock, self.signer, every, interval)
