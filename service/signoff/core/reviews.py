"""The review state machine (pure): a review and an act in, the next review out, or an error.

PENDING -> APPROVED | MODIFIED | REJECTED | EXPIRED | CANCELLED. Every change bumps
`version`; a reviewer must name the version they saw, so nobody approves something that
changed under them. The store applies the result with a conditional update on that same
version, which settles races between concurrent reviewers: exactly one wins.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf import struct_pb2

from signoff import pb
from signoff.core.jsonify import digest_of, request_to_dict, struct_to_dict
from signoff.core.validate import Limits, check_struct
from signoff.errors import FailedPrecondition, InvalidArgument, PermissionDenied

S = pb.review
PENDING = S.REVIEW_STATE_PENDING
FINAL_STATES = frozenset(
    {
        S.REVIEW_STATE_APPROVED,
        S.REVIEW_STATE_MODIFIED,
        S.REVIEW_STATE_REJECTED,
        S.REVIEW_STATE_EXPIRED,
        S.REVIEW_STATE_CANCELLED,
    }
)
VERDICT_EVENTS = {
    S.VERDICT_APPROVE: "review.approved",
    S.VERDICT_MODIFY: "review.modified",
    S.VERDICT_REJECT: "review.rejected",
}


@dataclass(frozen=True)
class Actor:
    """Who acts on a review: an authenticated identity and its roles."""

    id: str
    roles: frozenset[str]

    def can_review(self, group: str) -> bool:
        """True if the actor holds `reviewer:<group>` or `reviewer:*`."""
        return f"reviewer:{group}" in self.roles or "reviewer:*" in self.roles


@dataclass(frozen=True)
class Change:
    """The result of an act: the new review and the audit entry type that records it."""

    review: pb.review.Review
    event: str


def state_name(state: int) -> str:
    """`REVIEW_STATE_APPROVED` -> `APPROVED`."""
    return S.ReviewState.Name(state).removeprefix("REVIEW_STATE_")


def digest(request: pb.common.ActionRequest, params: struct_pb2.Struct | None = None) -> str:
    """The action digest of a (redacted) request, optionally with other params."""
    edited = None if params is None else struct_to_dict(params)
    return digest_of(request_to_dict(request), request.principal, edited)


def open_review(
    *,
    review_id: str,
    decision: pb.common.Decision,
    shown: pb.common.ActionRequest,
    redacted_paths: Sequence[str],
    approvals: int,
    timeout: dt.timedelta,
    on_timeout: str,
    now: dt.datetime,
    shown_digest: str = "",
    in_band: str = "",
) -> pb.review.Review:
    """A new PENDING review of a REQUIRE_REVIEW decision (`shown` is already redacted;
    `shown_digest`, its action digest if the caller has it already; `in_band`, the rule's)."""
    r = S.Review(
        review_id=review_id,
        decision_id=decision.decision_id,
        request=shown,
        state=PENDING,
        reviewer_group=decision.reviewer_group,
        reason=decision.reason,
        matched_rules=decision.matched_rules,
        approvals_required=approvals,
        on_timeout=on_timeout,
        version=1,
        policy_version=decision.policy_version,
        action_digest=shown_digest or digest(shown),
        outcome=pb.common.OUTCOME_REQUIRE_REVIEW,
        redacted_paths=list(redacted_paths),
        in_band=in_band,
    )
    r.created_at.FromDatetime(now)
    r.expires_at.FromDatetime(now + timeout)
    r.timeout.FromTimedelta(timeout)
    return r


def _check_actionable(review: pb.review.Review, expected_version: int) -> None:
    if review.state != PENDING:
        state = state_name(review.state)
        raise FailedPrecondition(
            f"review {review.review_id} is {state}: resolved reviews cannot change",
            current_state=state,
        )
    if expected_version <= 0:
        raise InvalidArgument(
            "expected_version", "is required: send the review version you looked at"
        )
    if expected_version != review.version:
        raise FailedPrecondition(
            f"review {review.review_id} changed since you saw it (your version "
            f"{expected_version}, now {review.version}); look at it again before acting",
            current_state=state_name(review.state),
        )


def requesters(principal: pb.common.Principal) -> frozenset[str]:
    """Who a request is made by or for: none of them may approve it, by any path.

    The one place separation of duties asks "who requested this": single and batch acts
    (through `submit`) and standing approvals (`grants.covers`) all read it. The claimed
    on_behalf_of counts too (auth/principals.py moves an unvouched one there): a claim
    may only make approving harder, and the user an agent says it acts for is not the one
    to approve it, vouched for or not.
    """
    claimed = principal.claimed.on_behalf_of
    return frozenset(p for p in (principal.id, principal.on_behalf_of, claimed) if p)


def in_band_requester(review: pb.review.Review, actor_id: str) -> bool:
    """True if `actor_id` may settle `review` in band as the person it was requested for.

    Only when the deciding rule said `in_band: requester`, only the vouched on_behalf_of
    (the server clears it unless the deployment lets the agent act for that user; the
    agent's bare word stays in `claimed` and never counts here), never the requesting
    principal itself, and only for a one-approval review: the policy, not the requester,
    decides when separation of duties gives way.
    """
    principal = review.request.principal
    return (
        review.in_band == "requester"
        and review.approvals_required == 1
        and bool(actor_id)
        and actor_id == principal.on_behalf_of
        and actor_id != principal.id
    )


def submit(
    review: pb.review.Review,
    actor: Actor,
    verdict: int,
    params: struct_pb2.Struct | None,
    comment: str,
    expected_version: int,
    now: dt.datetime,
    limits: Limits,
    *,
    in_band_ok: bool = False,
    channel: str = "",
) -> Change:
    """Apply a reviewer's approve, modify or reject.

    `in_band_ok`: the caller's path may carry an in-band act (a single SubmitReview without
    a standing approval; never a batch); see `in_band_requester`. `channel`: where the act
    came from ("" for the API, "slack", "email"); recorded, never a permission.
    """
    if verdict not in VERDICT_EVENTS:
        raise InvalidArgument("verdict", "must be APPROVE, MODIFY or REJECT")
    is_requester = actor.id in requesters(review.request.principal)
    in_band = (
        in_band_ok
        and (is_requester or not actor.can_review(review.reviewer_group))
        and in_band_requester(review, actor.id)
    )
    if in_band and verdict == S.VERDICT_MODIFY:
        raise PermissionDenied(
            f"{actor.id} may approve or reject review {review.review_id} in band, not edit "
            "it: an edit needs a reviewer of the group"
        )
    if not in_band and not actor.can_review(review.reviewer_group):
        raise PermissionDenied(
            f"{actor.id} may not review for group {review.reviewer_group!r} "
            f"(needs role reviewer:{review.reviewer_group})"
        )
    _check_actionable(review, expected_version)
    if not in_band and is_requester:
        raise PermissionDenied(
            f"separation of duties: {actor.id} requested this action (or it acts on their "
            "behalf) and may not review it"
        )
    if verdict == S.VERDICT_MODIFY:
        if params is None:
            raise InvalidArgument("params", "is required to approve with edits")
        check_struct("params", params, limits.max_params_bytes, limits.max_depth)
    elif params is not None and params.fields:
        raise InvalidArgument("params", "only VERDICT_MODIFY takes params")
    if len(comment) > 4096:
        raise InvalidArgument("comment", "longer than 4096 characters")
    if verdict == S.VERDICT_APPROVE and actor.id in approvers(review):
        raise FailedPrecondition(
            f"{actor.id} already approved review {review.review_id}; "
            f"{review.approvals_required} distinct reviewers are needed",
            current_state="PENDING",
        )

    new = S.Review()
    new.CopyFrom(review)
    new.version = review.version + 1
    act = new.acts.add(reviewer=actor.id, verdict=verdict, comment=comment)
    act.roles.extend(sorted(actor.roles))
    act.in_band = in_band
    act.channel = channel
    act.at.FromDatetime(now)
    if verdict == S.VERDICT_REJECT:
        _resolve(new, S.REVIEW_STATE_REJECTED, pb.common.OUTCOME_DENY, now)
        return Change(new, "review.rejected")
    if verdict == S.VERDICT_MODIFY:
        act.params.CopyFrom(params)
        new.final_params.CopyFrom(params)
    if len(approvers(new)) >= new.approvals_required:
        edited = new.HasField("final_params")
        state = S.REVIEW_STATE_MODIFIED if edited else S.REVIEW_STATE_APPROVED
        _resolve(new, state, pb.common.OUTCOME_AUTO_ALLOW, now)
        new.final_digest = digest(new.request, new.final_params) if edited else new.action_digest
    return Change(new, VERDICT_EVENTS[verdict])


def approvers(review: pb.review.Review) -> set[str]:
    """Distinct approvers of the params as they stand now.

    An edit changes what is being approved, so only approvals given at or after the last
    edit count: earlier approvers approved something else and must approve again.
    """
    acts = list(review.acts)
    last_edit = max((i for i, a in enumerate(acts) if a.verdict == S.VERDICT_MODIFY), default=0)
    approving = (S.VERDICT_APPROVE, S.VERDICT_MODIFY)
    return {a.reviewer for a in acts[last_edit:] if a.verdict in approving}


def cancel(review: pb.review.Review, actor: Actor, reason: str, now: dt.datetime) -> Change:
    """The requesting agent withdraws its pending review."""
    if actor.id != review.request.principal.id and "admin" not in actor.roles:
        raise PermissionDenied(
            f"only the requesting principal {review.request.principal.id!r} (or an admin) "
            "may cancel this review"
        )
    _check_actionable(review, review.version)
    new = S.Review()
    new.CopyFrom(review)
    new.version = review.version + 1
    new.resolution_note = reason or f"cancelled by {actor.id}"
    _resolve(new, S.REVIEW_STATE_CANCELLED, pb.common.OUTCOME_DENY, now)
    return Change(new, "review.cancelled")


def expire(review: pb.review.Review, now: dt.datetime) -> Change:
    """Resolve a review whose deadline passed, by its `on_timeout`."""
    _check_actionable(review, review.version)
    if review.expires_at.ToDatetime(tzinfo=dt.UTC) > now:
        raise FailedPrecondition(f"review {review.review_id} is not due yet")
    new = S.Review()
    new.CopyFrom(review)
    new.version = review.version + 1
    on_timeout = review.on_timeout or "deny"
    if on_timeout.startswith("escalate:"):
        target = on_timeout.removeprefix("escalate:")
        new.escalated_from.append(review.reviewer_group)
        new.reviewer_group = target
        # One escalation per rule: a second timeout denies instead of bouncing forever.
        new.on_timeout = "deny"
        new.expires_at.FromDatetime(now + review.timeout.ToTimedelta())
        return Change(new, "review.escalated")
    note = f"no decision within {review.timeout.ToTimedelta()}: on_timeout {on_timeout}"
    new.resolution_note = note
    if on_timeout == "allow":
        _resolve(new, S.REVIEW_STATE_EXPIRED, pb.common.OUTCOME_AUTO_ALLOW, now)
        new.final_digest = new.action_digest
    else:
        _resolve(new, S.REVIEW_STATE_EXPIRED, pb.common.OUTCOME_DENY, now)
    return Change(new, "review.expired")


def _resolve(review: pb.review.Review, state: int, outcome: int, now: dt.datetime) -> None:
    review.state = state
    review.outcome = outcome
    review.resolved_at.FromDatetime(now)


def rule_set(review: pb.review.Review) -> frozenset[tuple[str, str]]:
    """The (policy, rule) pairs that matched, shadow rules left out: they decided nothing."""
    return frozenset((m.policy, m.rule) for m in review.matched_rules if not m.shadow)
