"""QueryAudit: an AuditFilter checked and turned into a store query, the entry message, and
pages with their cursors."""

from __future__ import annotations

import base64
import hashlib

from google.protobuf import unknown_fields

from signoff import pb
from signoff.app.paging import fit_budget
from signoff.core import reviews, wire
from signoff.core.audit import ENTRY_TYPES, AuditEntry
from signoff.errors import InvalidArgument
from signoff.policy import globs
from signoff.store.base import AuditQuery, Store

A = pb.audit
MAX_PAGE = 1000
REVIEW_STATES = tuple(reviews.state_name(s) for s in pb.review.ReviewState.values() if s)


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


async def page(store: Store, req: A.QueryAuditRequest, page_bytes: int) -> A.QueryAuditResponse:
    """One page of entries matching a filter, at most `page_bytes` of them."""
    q = to_query(req.filter)
    size = req.page_size or 100
    if not 0 < size <= MAX_PAGE:
        raise InvalidArgument("page_size", f"must be 1-{MAX_PAGE}")
    after = _uncursor(req.page_token, req.descending, q) if req.page_token else None
    rows = await store.query_audit(q, descending=req.descending, after_seq=after, limit=size + 1)
    out = A.QueryAuditResponse()
    taken = fit_budget(out.entries, (entry_proto(e) for e in rows[:size]), page_bytes)
    if len(rows) > taken:
        out.next_page_token = _cursor(rows[taken - 1].seq, req.descending, q)
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
