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
"""

from __future__ import annotations

import datetime as dt

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff import pb
from signoff.core import checkpoints, reviews
from signoff.core.audit import format_time
from signoff.core.jsonify import RequestView, request_view
from signoff_client.canonical import canonical_json

RECEIPT_VERSION = 1
RECEIPT_TYPE = "signoff.receipt"
S = pb.review


class ReceiptIssuer:
    """Signs receipts with the server's checkpoint key."""

    def __init__(self, key: Ed25519PrivateKey, ttl: dt.timedelta) -> None:
        self.key = key
        self.ttl = ttl
        self.key_id = checkpoints.key_id(key.public_key())

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
        """Return the receipt of one final allow."""
        doc = {
            "v": RECEIPT_VERSION,
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
        payload = canonical_json(doc).encode("utf-8")
        return pb.common.Receipt(
            payload=payload, signature=self.key.sign(payload), key_id=self.key_id
        )

    def for_decision(
        self, req: pb.common.ActionRequest | RequestView, d: pb.common.Decision
    ) -> None:
        """Attach a receipt to an AUTO_ALLOW decision (nothing for any other outcome)."""
        if d.outcome != pb.common.OUTCOME_AUTO_ALLOW:
            return
        view = req if isinstance(req, RequestView) else request_view(req, ())
        d.receipt.CopyFrom(
            self.sign(
                decision_id=d.decision_id,
                review_id="",
                digest=view.action_digest,
                redacted_paths=[],
                outcome="AUTO_ALLOW",
                approvers=[],
                issued_at=d.evaluated_at.ToDatetime(tzinfo=dt.UTC),
            )
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
