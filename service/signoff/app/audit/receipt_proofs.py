"""GetReceiptProof: a receipt upgraded with the proof that the audit log records its allow.

A receipt says "the server allowed this action"; signed by the server's key alone, it
cannot show that the allow was logged where auditors look. The upgrade adds the entry that
recorded it (a decision's "decision" entry, or the act that approved a review), the entry's
inclusion proof, and a version 2 checkpoint whose tree head witnesses co-signed. A third
party then checks, offline and with no trust in the server beyond its key and the
witnesses' keys (`signoff_client.receipt_proofs.verify`), that the receipt's allow is in
the log the witnesses saw: a server that later cut or rewrote that entry would have to fork
the log, which the witnesses catch.

Who may ask: auditors, and the principal the receipt's action was for (or a gateway that
acts for others). The leaf carries the entry as the log holds it -- the request as shown to
reviewers, with the policy's `redact` paths masked -- which that principal sent itself.
"""

from __future__ import annotations

from signoff import pb
from signoff.app.audit import proofs, witness
from signoff.app.audit.checkpoints import checkpoint_proto
from signoff.app.reviews.desk import Identity
from signoff.core import checkpoints, log_tree
from signoff.core.audit import AuditEntry
from signoff.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from signoff.store.base import AuditQuery, Checkpoint, Store
from signoff_client import receipts
from signoff_client.receipts import VerifiedReceipt

A = pb.audit
WINDOW = 10_000  # entries of checkpoints read at a time, back from the head
WINDOWS = 8  # windows looked at before giving up (a checkpoint can still be named)
APPROVING = {"APPROVED": "review.approved", "MODIFIED": "review.modified"}


async def receipt_proof(
    store: Store,
    trusted: checkpoints.TrustedKeys,
    who: Identity,
    req: A.GetReceiptProofRequest,
) -> A.ReceiptProof:
    """The receipt of `req`, its allow's entry and the path to a (witnessed) checkpoint."""
    if not {"auditor", "agent"} & who.roles:
        raise PermissionDenied(f"{who.id} needs the role auditor or agent")
    if req.min_cosignatures < 0:
        raise InvalidArgument("min_cosignatures", f"must be 0 or more, not {req.min_cosignatures}")
    stated = _read(trusted, req.receipt)
    entry = await _entry(store, stated)
    if "auditor" not in who.roles and entry.principal != who.id and not who.act_for_others:
        raise PermissionDenied(
            f"the receipt's action was for principal {entry.principal!r}, not {who.id!r}"
        )
    cp = await _checkpoint(store, entry.seq, req)
    ranges = log_tree.inclusion_ranges(entry.seq - 1, cp.tree_size)
    *path, root = await proofs.read(store, [*ranges, (0, cp.tree_size)])
    if root.hex() != cp.root_hash:
        raise FailedPrecondition(
            f"the stored audit tree's root of size {cp.tree_size} is not the one the "
            "checkpoint signs: run `signoff audit verify`",
            current_state="tree mismatch",
        )
    leaf = log_tree.leaf_bytes(entry)
    if leaf is None:
        raise FailedPrecondition(
            f"audit entry seq {entry.seq} no longer hashes to its chain hash (altered): run "
            "`signoff audit verify`",
            current_state="altered",
        )
    out = A.ReceiptProof(leaf=leaf, leaf_index=entry.seq - 1, proof=path)
    out.receipt.CopyFrom(req.receipt)
    out.checkpoint.CopyFrom(checkpoint_proto(cp))
    witness.attach([out.checkpoint], await store.cosignatures(cp.seq, cp.seq))
    return out


def _read(trusted: checkpoints.TrustedKeys, raw: pb.common.Receipt) -> VerifiedReceipt:
    """What the receipt states, if a key of this server signed it."""
    if not raw.payload:
        raise InvalidArgument("receipt", "is missing (only AUTO_ALLOW and approvals carry one)")
    key = trusted.get(raw.key_id)
    if key is None:
        raise InvalidArgument(
            "receipt.key_id", f"{raw.key_id[:40]!r} is not a signing key of this server"
        )
    try:
        return receipts.read(raw, key)
    except receipts.ReceiptError as exc:
        raise InvalidArgument("receipt", str(exc)) from None


async def _entry(store: Store, stated: VerifiedReceipt) -> AuditEntry:
    """The entry that recorded the receipt's allow: its decision's, or its review's
    approving act."""
    if not stated.review_id:
        q = AuditQuery(types=("decision",), decision_id=stated.decision_id)
    elif stated.outcome in APPROVING:
        q = AuditQuery(
            types=(APPROVING[stated.outcome],),
            review_id=stated.review_id,
            review_state=stated.outcome,
        )
    else:
        raise InvalidArgument("receipt", f"outcome {stated.outcome!r} allows nothing")
    # The review's resolving act is its last approving entry (earlier ones left it pending).
    found = await store.query_audit(q, descending=True, limit=1)
    if not found:
        what = f"review {stated.review_id}" if stated.review_id else "decision"
        raise NotFound(f"no audit entry records the allow of {what} {stated.decision_id}")
    return found[0]


async def _checkpoint(store: Store, seq: int, req: A.GetReceiptProofRequest) -> Checkpoint:
    """The version 2 checkpoint to prove entry `seq` into."""
    if req.tree_size:
        size = proofs.check_size("tree_size", req.tree_size, await proofs.signed_size(store))
        if size < seq:
            raise InvalidArgument("tree_size", f"{size} is before the receipt's entry (seq {seq})")
        named = [c for c in await store.checkpoints(size, size) if c.root_hash]
        if not named:
            raise InvalidArgument("tree_size", f"no version 2 checkpoint signs {size} entries")
        return named[0]
    need = 0 if req.unwitnessed else max(1, req.min_cosignatures)
    last = await store.last_checkpoint()
    if last is None or last.tree_size < seq:
        raise FailedPrecondition(
            f"no checkpoint signs a tree head up to entry seq {seq} yet: ask again later",
            current_state="not signed",
        )
    # Witnesses co-sign the newest checkpoint as they poll: it almost always serves. Else
    # windows of the log back from the head, so that what one call reads stays bounded
    # however old the receipt (an older checkpoint can be named by `tree_size`).
    hi, has = last.seq, 0
    for _ in range(WINDOWS):
        lo = max(seq, hi - WINDOW + 1)
        cps = [c for c in await store.checkpoints(lo, hi) if c.root_hash]
        counts = await store.cosignatures(lo, hi) if cps and need else {}
        for cp in reversed(cps):
            if len(counts.get(cp.seq, ())) >= need:
                return cp
        if hi == last.seq:  # the first window holds the newest: for the refusal below
            has = len(counts.get(last.seq, ()))
        if lo == seq:
            break
        hi = lo - 1
    raise FailedPrecondition(
        f"no checkpoint covering entry seq {seq} within the newest {WINDOW * WINDOWS} "
        f"entries carries {need} co-signature(s) (the newest, seq {last.seq}, has {has}): "
        "witnesses co-sign checkpoints as they poll; ask again later",
        current_state="not witnessed",
    )
