"""What a review change is written as: the review's store row and its audit entry."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping

from signoff import pb
from signoff.core import reviews
from signoff.core.audit import AuditRecord
from signoff.core.jsonify import struct_to_dict
from signoff.store.base import ReviewRecord

S = pb.review


def to_record(r: pb.review.Review, stored: bytes | None = None) -> ReviewRecord:
    """The store row of a review (`stored`: its `stored_bytes`, if the caller has them)."""
    return ReviewRecord(
        review_id=r.review_id,
        decision_id=r.decision_id,
        principal_id=r.request.principal.id,
        on_behalf_of=r.request.principal.on_behalf_of,
        action_name=r.request.action.name,
        reviewer_group=r.reviewer_group,
        state=reviews.state_name(r.state),
        version=r.version,
        created_at=r.created_at.ToDatetime(tzinfo=dt.UTC),
        updated_at=(r.resolved_at if r.HasField("resolved_at") else r.created_at).ToDatetime(
            tzinfo=dt.UTC
        ),
        expires_at=(r.expires_at.ToDatetime(tzinfo=dt.UTC) if r.state == reviews.PENDING else None),
        review=stored_bytes(r) if stored is None else stored,
    )


def stored_bytes(r: pb.review.Review) -> bytes:
    """The review as its row stores it; its audit entries record the SHA-256 of these bytes."""
    # Deterministic, so that the row and the entry's digest cannot differ by map order.
    return r.SerializeToString(deterministic=True)


def audit_record(
    r: pb.review.Review,
    kind: str,
    actor: str,
    now: dt.datetime,
    roles: frozenset[str] = frozenset(),
    extra: Mapping[str, object] | None = None,
    stored: bytes | None = None,
) -> AuditRecord:
    """The audit entry of a review change: who, what, and the review as it now stands
    (`stored`: its `stored_bytes`, if the caller has them)."""
    payload: dict[str, object] = {
        "state": reviews.state_name(r.state),
        "version": r.version,
        "reviewer_group": r.reviewer_group,
        "action_digest": r.action_digest,
    }
    if kind in ("review.opened", "review.escalated"):
        payload["approvals_required"] = r.approvals_required
        payload["expires_at"] = r.expires_at.ToJsonString()
    if r.final_digest:
        payload["final_digest"] = r.final_digest
    if r.acts and kind in ("review.approved", "review.modified", "review.rejected"):
        act = r.acts[-1]
        payload["act"] = {
            "reviewer": act.reviewer,
            "roles": list(act.roles),
            "verdict": S.Verdict.Name(act.verdict).removeprefix("VERDICT_"),
            "comment": act.comment,
        }
        if act.in_band:
            # Filterable (`.payload.in_band == "requester"` in an export): separation of
            # duties gave way here because the policy said so.
            payload["act"]["in_band"] = True  # type: ignore[index]
            payload["in_band"] = "requester"
            payload["in_band_note"] = f"{kind.removeprefix('review.')} by the requester in band"
        if act.channel:
            # Filterable (`.payload.channel == "slack"`): which door the act came through.
            payload["act"]["channel"] = act.channel  # type: ignore[index]
            payload["channel"] = act.channel
        if act.HasField("params"):
            payload["act"]["params"] = struct_to_dict(act.params)  # type: ignore[index]
            payload["requested_params"] = struct_to_dict(r.request.action.params)
    if roles:
        payload["actor_roles"] = sorted(roles)
    if r.escalated_from:
        payload["escalated_from"] = list(r.escalated_from)
    if r.resolution_note:
        payload["note"] = r.resolution_note
    if extra:
        payload.update(extra)
    # The whole stored message, so that a review row changed outside signoff (an outcome,
    # an act, a digest) is told apart from the one this entry recorded (chain_check).
    row = stored_bytes(r) if stored is None else stored
    payload["review_digest"] = hashlib.sha256(row).hexdigest()
    return AuditRecord(
        type=kind,
        actor=actor,
        time=now,
        request_id=r.request.request_id,
        decision_id=r.decision_id,
        review_id=r.review_id,
        action_name=r.request.action.name,
        principal=r.request.principal.id,
        reviewer=actor if kind in ("review.approved", "review.modified", "review.rejected") else "",
        reviewer_group=r.reviewer_group,
        review_state=reviews.state_name(r.state),
        policy_version=r.policy_version,
        payload=payload,
    )
