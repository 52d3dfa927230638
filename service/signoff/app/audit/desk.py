"""Audit use cases: query, export, verify, signed checkpoints. Knows the store, not gRPC."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from google.protobuf import unknown_fields

from signoff import export, pb
from signoff.app.audit import proofs, receipt_proofs, witness
from signoff.app.audit import tables as audit_tables
from signoff.app.paging import fit_budget
from signoff.app.reviews.desk import Identity
from signoff.core import checkpoints, log_tree, reviews, wire
from signoff.core.audit import ENTRY_TYPES, GENESIS, AuditEntry, verify_chain
from signoff.core.witness import Cosignature
from signoff.errors import InvalidArgument, PermissionDenied
from signoff.ids import Clock
from signoff.logs import event
from signoff.policy import globs
from signoff.store.base import AuditQuery, Checkpoint, CheckpointSuperseded, Store

log = logging.getLogger("signoff.audit")
A = pb.audit
PAGE = 1000
MAX_PAGE = 1000
CHUNK_BYTES = 64 * 1024
REVIEW_STATES = tuple(reviews.state_name(s) for s in pb.review.ReviewState.values() if s)


@dataclass(frozen=True)
class Signer:
    """The server's checkpoint key, and the other public keys whose checkpoints count."""

    key: Ed25519PrivateKey
    also_trusted: tuple[Ed25519PublicKey, ...] = ()

    @property
    def trusted(self) -> checkpoints.TrustedKeys:
        """This key's public half and `also_trusted` (earlier keys, after a rotation)."""
        return checkpoints.TrustedKeys([self.key, *self.also_trusted])

    @property
    def key_id(self) -> str:
        """Identifier of the public key."""
        return checkpoints.key_id(self.key.public_key())

    def sign(self, seq: int, head_hash: str, now: dt.datetime, root_hash: str = "") -> Checkpoint:
        """A checkpoint of (seq, head_hash) at `now`, and of the tree head (seq, root_hash)
        when given (version 2)."""
        return checkpoints.sign(self.key, seq, head_hash, now, root_hash=root_hash)


def require_auditor(who: Identity) -> None:
    """Audit RPCs are for auditors."""
    if "auditor" not in who.roles:
        raise PermissionDenied(f"{who.id} needs the role auditor")


def to_query(f: A.AuditFilter) -> AuditQuery:
    """Validate an AuditFilter and turn it into a store query."""
    unknown = unknown_fields.UnknownFieldSet(f)
    if len(unknown):
        numbers = sorted({u.field_number for u in unknown})
        raise InvalidArgument("filter", f"unknown field number(s) {numbers}: not a filter here")
    since = wire.timestamp(f.since, "filter.since") if f.HasField("since") else None
    until = wire.timestamp(f.until, "filter.until") if f.HasField("until") else None
    if since and until and until <= since:
        raise InvalidArgument("filter.until", f"{until.isoformat()} is not after filter.since")
    for t in f.types:
        if t not in ENTRY_TYPES:
            known = ", ".join(sorted(ENTRY_TYPES))
            raise InvalidArgument("filter.types", f"unknown entry type {t!r} (known: {known})")
    outcomes = []
    for o in f.outcomes:
        if o == pb.common.OUTCOME_UNSPECIFIED or o not in pb.common.Outcome.values():
            raise InvalidArgument("filter.outcomes", f"{o} is not an outcome")
        outcomes.append(pb.common.Outcome.Name(o).removeprefix("OUTCOME_"))
    globs.check("filter.action", f.action)  # bounded: it is matched against every name
    state = f.review_state.upper()
    if state and state not in REVIEW_STATES:
        raise InvalidArgument(
            "filter.review_state", f"{f.review_state!r} is not one of {', '.join(REVIEW_STATES)}"
        )
    return AuditQuery(
        since=since,
        until=until,
        types=tuple(f.types),
        action_glob=f.action,
        outcomes=tuple(outcomes),
        principal=f.principal,
        reviewer=f.reviewer,
        reviewer_group=f.reviewer_group,
        rule=f.rule,
        review_state=state,
        policy_version=f.policy_version,
        decision_id=f.decision_id,
        review_id=f.review_id,
        request_id=f.request_id,
    )


def entry_proto(e: AuditEntry) -> A.AuditEntry:
    """An audit entry as its API message."""
    out = A.AuditEntry(
        seq=e.seq,
        type=e.type,
        actor=e.actor,
        request_id=e.request_id,
        decision_id=e.decision_id,
        review_id=e.review_id,
        action_name=e.action_name,
        outcome=pb.common.Outcome.Value(f"OUTCOME_{e.outcome}") if e.outcome else 0,
        policy_version=e.policy_version,
        payload_json=e.payload_json,
        prev_hash=e.prev_hash,
        hash=e.hash,
    )
    out.time.FromDatetime(e.time)
    return out


def checkpoint_proto(cp: Checkpoint) -> A.Checkpoint:
    """A checkpoint as its API message."""
    out = A.Checkpoint(
        seq=cp.seq,
        head_hash=cp.head_hash,
        key_id=cp.key_id,
        signature=cp.signature,
        tree_size=cp.tree_size,
        root_hash=cp.root_hash,
    )
    out.time.FromDatetime(cp.time)
    return out


def _cursor(seq: int, descending: bool, q: AuditQuery) -> str:
    # Bound to the filter: a token reused with another filter would skip or repeat entries.
    digest = hashlib.sha256(repr(q).encode()).hexdigest()[:16]
    raw = f"v1:{seq}:{int(descending)}:{digest}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _uncursor(token: str, descending: bool, q: AuditQuery) -> int:
    try:
        v, seq, desc, digest = base64.urlsafe_b64decode(token.encode()).decode().split(":")
        if v != "v1" or int(desc) != int(descending):
            raise ValueError
        if digest != hashlib.sha256(repr(q).encode()).hexdigest()[:16]:
            raise InvalidArgument("page_token", "was issued for another filter or order")
        return int(seq)
    except InvalidArgument:
        raise
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("page_token", "is not a token this server issued") from None


def _disagrees(
    found: audit_tables.Mismatch, checked: int, start: int, cps_ok: int
) -> A.VerifyAuditResponse:
    """A verification that failed on a table row; `first_bad_seq` is the entry it contradicts."""
    event(log, "chain.mismatch", logging.ERROR, table=found.table, key=found.key, seq=found.seq)
    return A.VerifyAuditResponse(
        ok=False,
        entries_checked=checked,
        first_bad_seq=found.seq,
        problem=f"table mismatch: {found}",
        checkpoints_verified=cps_ok,
        from_seq=start,
    )


def _tree_roots(
    tree: log_tree.Frontier | None, page: list[AuditEntry], cps: list[Checkpoint]
) -> dict[int, str] | None:
    """Grow `tree` by the verified `page`; the roots at the seqs of version 2 checkpoints
    (None: no tree to grow, or an entry without a leaf)."""
    if tree is None:
        return None
    wanted = {cp.seq for cp in cps if cp.root_hash}
    roots: dict[int, str] = {}
    for e in page:
        leaf = log_tree.entry_leaf_hash(e)
        if leaf is None or e.seq != tree.size + 1:
            return None
        tree.append(leaf)
        if e.seq in wanted:
            roots[e.seq] = tree.root().hex()
    return roots


class AuditDesk:
    """Everything auditors do: read, export, verify; and the checkpoints that anchor it."""

    def __init__(
        self, store: Store, clock: Clock, signer: Signer | None, page_bytes: int = 2 << 20
    ) -> None:
        self.store = store
        self.page_bytes = page_bytes  # a page's byte budget (limits.fields.max_page_bytes)
        self.clock = clock
        self.signer = signer
        # Without a signing key no key is trusted: every checkpoint then fails verification.
        self.trusted = signer.trusted if signer is not None else checkpoints.TrustedKeys()

    async def query(self, who: Identity, req: A.QueryAuditRequest) -> A.QueryAuditResponse:
        """One page of entries matching a filter."""
        require_auditor(who)
        q = to_query(req.filter)
        size = req.page_size or 100
        if not 0 < size <= MAX_PAGE:
            raise InvalidArgument("page_size", f"must be 1-{MAX_PAGE}")
        after = _uncursor(req.page_token, req.descending, q) if req.page_token else None
        rows = await self.store.query_audit(
            q, descending=req.descending, after_seq=after, limit=size + 1
        )
        out = A.QueryAuditResponse()
        taken = fit_budget(out.entries, (entry_proto(e) for e in rows[:size]), self.page_bytes)
        if len(rows) > taken:
            out.next_page_token = _cursor(rows[taken - 1].seq, req.descending, q)
        return out

    async def export(
        self, who: Identity, req: A.ExportAuditRequest
    ) -> AsyncIterator[A.ExportChunk]:
        """The matching entries as JSON Lines (with checkpoints and a signed end) or CSV."""
        require_auditor(who)
        if self.signer is None:
            raise InvalidArgument("format", "exports need the server's signing key")
        q = to_query(req.filter)
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
        start = max(req.from_seq, 1)
        if req.from_last_checkpoint:
            last = await self.store.last_checkpoint()
            start = last.seq if last else 1
        if req.to_seq and req.to_seq < start:
            raise InvalidArgument("to_seq", f"{req.to_seq} is before the start {start}")
        prev = GENESIS
        if start > 1:
            before = await self.store.query_audit(AuditQuery(from_seq=start - 1), limit=1)
            if not before or before[0].seq != start - 1:
                return A.VerifyAuditResponse(
                    ok=False, first_bad_seq=start - 1, problem="missing", from_seq=start
                )
            prev = before[0].hash
        q = AuditQuery(from_seq=start, to_seq=req.to_seq)
        checked, head_seq, head_hash, cps_ok = 0, start - 1, prev, 0
        # From seq 1 the tree is recomputed from the verified entries, and every version 2
        # checkpoint's signed root compared with it (a range cannot show the tree).
        tree: log_tree.Frontier | None = log_tree.Frontier() if start == 1 else None
        async for page, cps in self._pages(q):
            result = verify_chain(page, head_hash, head_seq + 1)
            checked += result.checked
            if not result.ok:
                return A.VerifyAuditResponse(
                    ok=False,
                    entries_checked=checked,
                    first_bad_seq=result.first_bad_seq or 0,
                    problem=f"{result.problem}: {result.detail}",
                    head_seq=result.head_seq,
                    head_hash=result.head_hash,
                    checkpoints_verified=cps_ok,
                    from_seq=start,
                )
            by_seq = {e.seq: e.hash for e in page}
            roots = _tree_roots(tree, page, cps)
            if roots is None:
                tree = None
            for cp in cps:
                problem = self._check_checkpoint(cp, by_seq.get(cp.seq), (roots or {}).get(cp.seq))
                if problem:
                    return A.VerifyAuditResponse(
                        ok=False,
                        entries_checked=checked,
                        first_bad_seq=cp.seq,
                        problem=problem,
                        checkpoints_verified=cps_ok,
                        from_seq=start,
                    )
                cps_ok += 1
            head_seq, head_hash = result.head_seq, result.head_hash
            # The rule index is outside the chain: what `rule=` queries find must be what
            # the verified entries say.
            if (found := await audit_tables.check_rule_index(self.store, page)) is not None:
                return _disagrees(found, checked, start, cps_ok)
        beyond = await self.store.checkpoints(head_seq + 1, 0) if not req.to_seq else []
        # Only a trusted checkpoint past the end shows a cut tail; any other is itself forged.
        forged = next(((cp, p) for cp in beyond if (p := self.trusted.problem(cp))), None)
        if forged:
            return A.VerifyAuditResponse(
                ok=False,
                entries_checked=checked,
                first_bad_seq=forged[0].seq,
                problem=f"bad signature: {forged[1]}",
                checkpoints_verified=cps_ok,
                from_seq=start,
            )
        if beyond:
            return A.VerifyAuditResponse(
                ok=False,
                entries_checked=checked,
                first_bad_seq=head_seq + 1,
                problem=f"truncated: a checkpoint covers seq {beyond[-1].seq} but the log "
                f"ends at {head_seq}",
                checkpoints_verified=cps_ok,
                from_seq=start,
            )
        # Up to the head: the rows that decide (reviews, grants, decisions) must be what the
        # chain recorded. A range that stops short of the head leaves them to the last one.
        if not req.to_seq and (found := await audit_tables.check_tables(self.store)) is not None:
            return _disagrees(found, checked, start, cps_ok)
        return A.VerifyAuditResponse(
            ok=True,
            entries_checked=checked,
            head_seq=head_seq,
            head_hash=head_hash,
            checkpoints_verified=cps_ok,
            from_seq=start,
        )

    async def _pages(
        self, q: AuditQuery
    ) -> AsyncIterator[tuple[list[AuditEntry], list[Checkpoint]]]:
        after = None
        while True:
            rows = await self.store.query_audit(q, after_seq=after, limit=PAGE * 5)
            if not rows:
                return
            yield rows, await self.store.checkpoints(rows[0].seq, rows[-1].seq)
            after = rows[-1].seq

    def _check_checkpoint(self, cp: Checkpoint, entry_hash: str | None, root: str | None) -> str:
        # A checkpoint vouches for the chain only if a trusted key signed it: anyone who can
        # write the database can also write a checkpoint naming a key id of their own.
        if problem := self.trusted.problem(cp):
            return f"bad signature: {problem}"
        if entry_hash is not None and entry_hash != cp.head_hash:
            return (
                f"checkpoint mismatch: the signed checkpoint at seq {cp.seq} does not match "
                "the chain (entries were rewritten)"
            )
        if root is not None and cp.root_hash and root != cp.root_hash:
            return (
                f"checkpoint mismatch: the signed checkpoint at seq {cp.seq} signs tree root "
                f"{cp.root_hash[:12]}..., the entries give {root[:12]}... (the tree head "
                "does not match the log)"
            )
        return ""

    async def list_checkpoints(
        self, who: Identity, req: A.GetCheckpointsRequest
    ) -> A.GetCheckpointsResponse:
        """Checkpoints (with their witnesses' co-signatures) and the public key, for anchoring
        outside the database."""
        witness.require_reader(who)
        limit = req.limit or 100
        if not 0 < limit <= 10_000:
            raise InvalidArgument("limit", "must be 1-10000")
        cps = (await self.store.checkpoints(req.from_seq, 0))[-limit:]
        out = A.GetCheckpointsResponse(checkpoints=[checkpoint_proto(c) for c in cps])
        if cps:
            witness.attach(out.checkpoints, await self.store.cosignatures(cps[0].seq, cps[-1].seq))
        if self.signer is not None:
            out.public_key_pem = checkpoints.public_pem(self.signer.key.public_key()).decode()
            out.key_id = self.signer.key_id
        return out

    async def inclusion_proof(
        self, who: Identity, req: A.GetInclusionProofRequest
    ) -> A.GetInclusionProofResponse:
        """The proof that entry `seq` is in the log of `tree_size` entries."""
        require_auditor(who)
        return await proofs.inclusion(self.store, req, entry_proto)

    async def consistency_proof(
        self, who: Identity, req: A.GetConsistencyProofRequest
    ) -> A.GetConsistencyProofResponse:
        """The proof that the log of `first` entries is a prefix of the log of `second`."""
        witness.require_reader(who)
        return await proofs.consistency(self.store, req)

    async def receipt_proof(self, who: Identity, req: A.GetReceiptProofRequest) -> A.ReceiptProof:
        """The receipt of `req` with the proof that the log records its allow."""
        return await receipt_proofs.receipt_proof(
            self.store, self.trusted, who, req, checkpoint_proto
        )

    async def add_cosignature(
        self, who: Identity, req: A.AddCosignatureRequest
    ) -> A.AddCosignatureResponse:
        """Store a witness's checked co-signature of a stored checkpoint."""
        return await witness.add_cosignature(self.store, who, req)

    async def warn_if_untrusted(self) -> None:
        """Log a warning when the newest checkpoint's key is not trusted (a rotation without
        audit.trusted_keys, or a replica with a key of its own): verification will fail."""
        last = await self.store.last_checkpoint()
        if last is None or self.trusted.get(last.key_id) is not None:
            return
        event(
            log,
            "audit.untrusted_checkpoint",
            logging.WARNING,
            seq=last.seq,
            key_id=last.key_id,
            trusted=", ".join(self.trusted.ids),
            hint="VerifyAudit fails on checkpoints no trusted key signed; if this is an earlier "
            "signing key of this deployment, add its public key to audit.trusted_keys",
        )

    async def checkpoint_if_due(self, every: int, interval: dt.timedelta) -> Checkpoint | None:
        """Sign the head if `every` entries or `interval` passed since the last checkpoint."""
        if self.signer is None:
            return None
        # A version 2 checkpoint signs the chain head and the tree head of the same log, so
        # it signs as far as the tree is built: first build it up to the head (a step's
        # worth under load; an existing log's whole tree once, after the upgrade).
        seq = await self.store.build_tree()
        last = await self.store.last_checkpoint()
        if seq == 0 or (last is not None and last.seq >= seq):
            return None
        now = self.clock.now()
        if last is not None and seq - last.seq < every and now - last.time < interval:
            return None
        [entry] = await self.store.read_audit(seq, 1)
        root = await proofs.root(self.store, seq)
        cp = self.signer.sign(seq, entry.hash, now, root.hex())
        try:
            await self.store.add_checkpoint(cp)
        except CheckpointSuperseded as exc:
            # Replicas on one database check at the same moments: one signs, the others
            # find its checkpoint. Nothing failed, so one quiet event, no traceback.
            event(log, "audit.checkpoint_by_another", logging.DEBUG, seq=seq, last=exc.last)
            return None
        event(log, "audit.checkpoint", seq=seq, key_id=cp.key_id)
        return cp
