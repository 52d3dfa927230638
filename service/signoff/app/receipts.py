"""Signed receipts: proof, checkable offline, that exactly this action may execute.

Signing contract (version 1) -- `signoff_client.receipts.verify` and the TypeScript
`verifyReceipt` check it:

* ``payload`` is the RFC 8785 canonical JSON (UTF-8) of::

      {"v": 1, "type": "signoff.receipt", "decision_id": "..", "review_id": ".." or "",
       "action_digest": "<64 hex>", "redacted_paths": [..], "outcome": "AUTO_ALLOW" |
       "APPROVED" | "MODIFIED", "approvers": [ids, sorted], "issued_at": "<RFC 3339 UTC>",
       "expires_at": "<RFC 3339 UTC>", "key_id": "<16 hex>"}

* ``action_digest`` is the action digest (`signoff_client.canonical.action_digest`) of what
  may execute: the request for AUTO_ALLOW, the review's ``final_digest`` (the edited action
  for MODIFIED) for a review. Review digests are over the request with the policy's
  ``redact`` paths masked; a verifier masks the same ``redacted_paths`` first.
* ``signature`` is the raw 64-byte Ed25519 signature over ``payload``, with the server's
  checkpoint key (`signoff.core.checkpoints`); the ``type`` member keeps a receipt from being
  replayed as a checkpoint or an export signature, and the other way round.

Review receipts are signed when read (GetReview, WatchReview, SubmitReview(s)), with
``issued_at`` = the review's ``resolved_at``: Ed25519 is deterministic, so every read (and
every worker process) returns the same bytes, and nothing extra is stored. A decision's
receipt is issued at ``evaluated_at`` and stored with the decision, so a replay returns it.

Version 2 -- decisions' receipts, signed once per write batch:

* ``payload`` is the same document with ``"v": 2``: the leaf of a Merkle tree over the
  receipts of one group commit (RFC 9162 hashing, `signoff.core.merkle`), in the batch's
  order; ``leaf_index``, ``tree_size`` and ``path`` (the inclusion path, RFC 9162 2.1.3.1)
  place it in the tree. A batch of one is a tree of size 1 with an empty path.
* ``signature`` is over the batch's root document, the canonical JSON of
  ``{"v": 2, "type": "signoff.receipt.batch", "tree_size": n, "root": "<64 hex>",
  "key_id": ".."}``: its own ``type``, so it can never pass for a receipt, a checkpoint or
  an export signature (nor they for it). A verifier recomputes the root from the payload,
  index, size and path (RFC 9162 2.1.3.2), rebuilds this document and checks the signature:
  offline, as for version 1. The size is signed, so a path cannot be replayed against a
  tree of another size; the leaf hash covers the whole payload, so a path proves nothing for
  another leaf's action.

Why per batch: one Ed25519 signature (about 50 us of CPU) per decision was the largest
single cost of a decision's receipt; under load the group commit (store/linger.py) gathers
dozens of decisions, which now share one signature and pay a few SHA-256 each. Where:
the store's writer knows the batch, so it calls `seal` (injected as a plain callable,
`Store.use_sealer`: the store does not import the app) with the batch's leaves once,
before the batch's transaction, and appends each receipt to its decision's stored bytes
(`Decision(receipt=r)` serialized: protobuf bytes concatenate as a merge), so a replay
returns the receipt unchanged. A leaf whose operation then does not store its decision (a
replay, a used-up standing approval, a failed batch) leaves its receipt unreturned: only its
hash appears, as a sibling, in the others' paths. Review receipts stay version 1, signed
when read (deterministic, nothing stored).
"""

from __future__ import annotations

import datetime as dt

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff import pb
from signoff.core import checkpoints, merkle, reviews
from signoff.core.audit import format_time
from signoff.core.jsonify import RequestView
from signoff_client.canonical import canonical_json

RECEIPT_VERSION = 1
BATCH_VERSION = 2  # receipts of decisions, sealed per write batch
RECEIPT_TYPE = "signoff.receipt"
BATCH_TYPE = "signoff.receipt.batch"
S = pb.review


class ReceiptIssuer:
    """Signs receipts with the server's checkpoint key."""

    def __init__(self, key: Ed25519PrivateKey, ttl: dt.timedelta) -> None:
        self.key = key
        self.ttl = ttl
        self.key_id = checkpoints.key_id(key.public_key())

    def document(
        self,
        *,
        version: int,
        decision_id: str,
        review_id: str,
        digest: str,
        redacted_paths: list[str],
        outcome: str,
        approvers: list[str],
        issued_at: dt.datetime,
    ) -> bytes:
        """The payload of one final allow's receipt (canonical JSON), for `version`."""
        doc = {
            "v": version,
            "type": RECEIPT_TYPE,
            "decision_id": decision_id,
            "review_id": review_id,
            "action_digest": digest,
            "redacted_paths": redacted_paths,
            "outcome": outcome,
            "approvers": approvers,
            "issued_at": format_time(issued_at),
            "expires_at": format_time(issued_at + self.ttl),
            "key_id": self.key_id,
        }
        return canonical_json(doc).encode("utf-8")

    def sign(
        self,
        *,
        decision_id: str,
        review_id: str,
        digest: str,
        redacted_paths: list[str],
        outcome: str,
        approvers: list[str],
        issued_at: dt.datetime,
    ) -> pb.common.Receipt:
        """Return the version 1 receipt of one final allow, signed alone (reviews')."""
        payload = self.document(
            version=RECEIPT_VERSION,
            decision_id=decision_id,
            review_id=review_id,
            digest=digest,
            redacted_paths=redacted_paths,
            outcome=outcome,
            approvers=approvers,
            issued_at=issued_at,
        )
        return pb.common.Receipt(
            payload=payload, signature=self.key.sign(payload), key_id=self.key_id
        )

    def seal(self, leaves: list[bytes]) -> list[bytes]:
        """Sign one write batch's version 2 payloads once; return, for each, the serialized
        `Decision(receipt=...)` to append to its decision's bytes (the store's `Sealer`)."""
        root, paths = merkle.tree(leaves)
        size = len(leaves)
        signature = self.key.sign(batch_document(size, root, self.key_id))
        out = []
        for i, (payload, path) in enumerate(zip(leaves, paths, strict=True)):
            # Set in place: building a Receipt and copying it into a Decision cost twice.
            d = pb.common.Decision()
            r = d.receipt
            r.payload, r.signature, r.key_id = payload, signature, self.key_id
            r.leaf_index, r.tree_size = i, size
            r.path.extend(path)
            out.append(d.SerializeToString())
        return out

    def decision_leaf(self, view: RequestView, d: pb.common.Decision) -> bytes:
        """The version 2 payload of an AUTO_ALLOW decision's receipt, b"" for any other
        outcome: the store seals it with its write batch (`seal`)."""
        if d.outcome != pb.common.OUTCOME_AUTO_ALLOW:
            return b""
        return self.document(
            version=BATCH_VERSION,
            decision_id=d.decision_id,
            review_id="",
            digest=view.action_digest,
            redacted_paths=[],
            outcome="AUTO_ALLOW",
            approvers=[],
            issued_at=d.evaluated_at.ToDatetime(tzinfo=dt.UTC),
        )

    def for_review(self, r: pb.review.Review) -> pb.review.Review:
        """Return `r`, with a receipt when a person approved it (APPROVED or MODIFIED)."""
        if r.state not in (S.REVIEW_STATE_APPROVED, S.REVIEW_STATE_MODIFIED) or not (
            r.final_digest and r.outcome == pb.common.OUTCOME_AUTO_ALLOW
        ):
            return r
        out = S.Review()
        out.CopyFrom(r)  # the caller's copy may be shared (notifier, watchers)
        out.receipt.CopyFrom(
            self.sign(
                decision_id=r.decision_id,
                review_id=r.review_id,
                digest=r.final_digest,
                redacted_paths=list(r.redacted_paths),
                outcome=reviews.state_name(r.state),
                approvers=sorted(reviews.approvers(r)),
                issued_at=r.resolved_at.ToDatetime(tzinfo=dt.UTC),
            )
        )
        return out


def batch_document(tree_size: int, root: bytes, key_id: str) -> bytes:
    """The bytes a version 2 signature covers: one write batch's tree root, canonical JSON."""
    doc = {
        "v": BATCH_VERSION,
        "type": BATCH_TYPE,
        "tree_size": tree_size,
        "root": root.hex(),
        "key_id": key_id,
    }
    return canonical_json(doc).encode("utf-8")
