"""Builders for review tests: a REQUIRE_REVIEW decision with its review, and review changes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

from signoff.core.audit import AuditRecord
from signoff.store import DecisionRecord, ReviewRecord, Store

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)

ENTRY_TYPE = {
    "APPROVED": "review.approved",
    "MODIFIED": "review.modified",
    "REJECTED": "review.rejected",
    "EXPIRED": "review.expired",
    "CANCELLED": "review.cancelled",
    "PENDING": "review.escalated",
}


@dataclasses.dataclass(frozen=True)
class Opening:
    """Everything `record_decision` gets to open one review."""

    decision: DecisionRecord
    audit: AuditRecord
    review: ReviewRecord
    review_audit: AuditRecord


def opening(
    n: int,
    *,
    group: str = "finance",
    principal: str = "agent-1",
    action: str = "refund.issue",
    created: dt.datetime = T0,
    expires: dt.datetime | None = None,
    request_id: str | None = None,
) -> Opening:
    """Decision `dec-n` (request `req-n`) opening review `rev-n`, with both audit records."""
    rid = f"req-{n}" if request_id is None else request_id
    dec = DecisionRecord(
        decision_id=f"dec-{n}",
        principal_id=principal,
        request_id=rid,
        request_digest=hashlib.sha256(f"{principal} {rid}".encode()).hexdigest(),
        action_name=action,
        outcome="REQUIRE_REVIEW",
        created_at=created,
        decision=f"decision {n}".encode(),
    )
    review = ReviewRecord(
        review_id=f"rev-{n}",
        decision_id=dec.decision_id,
        principal_id=principal,
        on_behalf_of="user-7",
        action_name=action,
        reviewer_group=group,
        state="PENDING",
        version=1,
        created_at=created,
        updated_at=created,
        expires_at=expires,
        review=f"review {n} v1".encode(),
    )
    common = {
        "time": created,
        "actor": principal,
        "request_id": rid,
        "decision_id": dec.decision_id,
        "action_name": action,
        "principal": principal,
        "reviewer_group": group,
    }
    audit = AuditRecord(type="decision", outcome="REQUIRE_REVIEW", **common)
    opened = AuditRecord(
        type="review.opened",
        review_id=review.review_id,
        review_state="PENDING",
        **common,
    )
    return Opening(dec, audit, review, opened)


async def open_review(store: Store, n: int, **options: object) -> ReviewRecord:
    """Open review `rev-n` through `record_decision` and return it."""
    o = opening(n, **options)
    _, replayed = await store.record_decision(o.decision, o.audit, o.review, o.review_audit)
    assert not replayed
    return o.review


def changed(r: ReviewRecord, state: str = "APPROVED", **fields: object) -> ReviewRecord:
    """`r` one version later in `state`."""
    new: dict[str, object] = {
        "state": state,
        "version": r.version + 1,
        "updated_at": r.updated_at + dt.timedelta(minutes=1),
        "review": f"{r.review_id} v{r.version + 1} {state}".encode(),
    }
    return dataclasses.replace(r, **{**new, **fields})


def change_audit(new: ReviewRecord, reviewer: str = "alice") -> AuditRecord:
    """The audit record of the change that produced `new`."""
    return AuditRecord(
        type=ENTRY_TYPE[new.state],
        time=new.updated_at,
        actor=reviewer,
        decision_id=new.decision_id,
        review_id=new.review_id,
        action_name=new.action_name,
        principal=new.principal_id,
        reviewer=reviewer,
        reviewer_group=new.reviewer_group,
        review_state=new.state,
        payload={"version": new.version},
    )
