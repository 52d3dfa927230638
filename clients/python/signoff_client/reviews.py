"""The review side's typed values: `Review`, `ReviewAct`, `ReviewPage` and `Approval`.

Frozen dataclasses over the `signoff.v1` messages, like those in `models`; each keeps its
message as `.raw`.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any

from signoff_client import _struct
from signoff_client._gen import common_pb2, review_pb2
from signoff_client.errors import SignoffError
from signoff_client.models import Decision, MatchedRule, Outcome, _timestamp

__all__ = ["Approval", "Review", "ReviewAct", "ReviewPage", "ReviewState", "Verdict"]


class ReviewState(enum.Enum):
    """Where a review is in its lifecycle: PENDING, then one final state."""

    PENDING = review_pb2.REVIEW_STATE_PENDING
    APPROVED = review_pb2.REVIEW_STATE_APPROVED
    MODIFIED = review_pb2.REVIEW_STATE_MODIFIED
    REJECTED = review_pb2.REVIEW_STATE_REJECTED
    EXPIRED = review_pb2.REVIEW_STATE_EXPIRED
    CANCELLED = review_pb2.REVIEW_STATE_CANCELLED

    @property
    def final(self) -> bool:
        """True once the review is resolved (it never changes again)."""
        return self is not ReviewState.PENDING

    @classmethod
    def from_proto(cls, value: int) -> ReviewState:
        """Return the state for a wire value; fail closed on one this client does not know."""
        try:
            return cls(value)
        except ValueError:
            # An unknown state is neither "pending" (wait forever) nor "approved" (act).
            raise SignoffError(
                f"the server sent review state {value}, unknown to this client; "
                "upgrade signoff-client"
            ) from None


class Verdict(enum.Enum):
    """What a reviewer does: approve, approve with edited params, or reject."""

    APPROVE = review_pb2.VERDICT_APPROVE
    MODIFY = review_pb2.VERDICT_MODIFY
    REJECT = review_pb2.VERDICT_REJECT

    @classmethod
    def parse(cls, value: Verdict | str) -> Verdict:
        """Return `value` as a Verdict; strings are names, any case ("approve")."""
        if isinstance(value, Verdict):
            return value
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        raise ValueError(f"verdict must be approve, modify or reject, got {value!r}")

    @classmethod
    def from_proto(cls, value: int) -> Verdict | None:
        """Return the verdict for a wire value, None for unset or unknown."""
        try:
            return cls(value)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class ReviewAct:
    """One reviewer's act on a review."""

    reviewer: str
    verdict: Verdict | None
    comment: str
    params: dict[str, Any] | None  # the edited params (MODIFY only)
    at: dt.datetime
    roles: tuple[str, ...]
    in_band: bool = False  # settled in band by the person the request was made for
    channel: str = ""  # where the act came from: "" (the API), "slack" or "email"

    @classmethod
    def from_proto(cls, raw: review_pb2.ReviewAct) -> ReviewAct:
        """Return the act of a `signoff.v1.ReviewAct` message."""
        return cls(
            reviewer=raw.reviewer,
            verdict=Verdict.from_proto(raw.verdict),
            comment=raw.comment,
            params=_struct.from_struct(raw.params) if raw.HasField("params") else None,
            at=_timestamp(raw.at),
            roles=tuple(raw.roles),
            in_band=raw.in_band,
            channel=raw.channel,
        )


@dataclass(frozen=True, slots=True)
class Review:
    """A pending or resolved review of one REQUIRE_REVIEW decision."""

    review_id: str
    decision_id: str
    state: ReviewState
    outcome: Outcome | None  # None only if the server left it unset
    action: str
    params: dict[str, Any]  # as requested, with the policy's redacted paths masked
    reviewer_group: str
    reason: str
    matched_rules: tuple[MatchedRule, ...]
    approvals_required: int
    acts: tuple[ReviewAct, ...]
    version: int
    created_at: dt.datetime
    expires_at: dt.datetime | None
    resolved_at: dt.datetime | None
    final_params: dict[str, Any] | None  # the reviewer's edits (MODIFIED), else None
    on_timeout: str
    policy_version: str
    action_digest: str
    final_digest: str
    redacted_paths: tuple[str, ...]
    escalated_from: tuple[str, ...]
    resolution_note: str
    timeout: dt.timedelta | None
    raw: review_pb2.Review = field(repr=False, compare=False)
    in_band: str = ""  # "requester": the person it was requested for may settle it in band

    @property
    def final(self) -> bool:
        """True once the review is resolved."""
        return self.state.final

    @property
    def receipt(self) -> common_pb2.Receipt | None:
        """The server's signed receipt (APPROVED and MODIFIED only); see `receipts.verify`."""
        return self.raw.receipt if self.raw.HasField("receipt") else None

    @property
    def comment(self) -> str:
        """The latest reviewer comment ("" if none)."""
        return next((a.comment for a in reversed(self.acts) if a.comment), "")

    @classmethod
    def from_proto(cls, raw: review_pb2.Review) -> Review:
        """Return the review of a `signoff.v1.Review` message."""
        return cls(
            review_id=raw.review_id,
            decision_id=raw.decision_id,
            state=ReviewState.from_proto(raw.state),
            outcome=Outcome.from_proto(raw.outcome) if raw.outcome else None,
            action=raw.request.action.name,
            params=_struct.from_struct(raw.request.action.params),
            reviewer_group=raw.reviewer_group,
            reason=raw.reason,
            matched_rules=tuple(MatchedRule.from_proto(m) for m in raw.matched_rules),
            approvals_required=raw.approvals_required,
            acts=tuple(ReviewAct.from_proto(a) for a in raw.acts),
            version=raw.version,
            created_at=_timestamp(raw.created_at),
            expires_at=_timestamp(raw.expires_at) if raw.HasField("expires_at") else None,
            resolved_at=_timestamp(raw.resolved_at) if raw.HasField("resolved_at") else None,
            final_params=(
                _struct.from_struct(raw.final_params) if raw.HasField("final_params") else None
            ),
            on_timeout=raw.on_timeout,
            policy_version=raw.policy_version,
            action_digest=raw.action_digest,
            final_digest=raw.final_digest,
            redacted_paths=tuple(raw.redacted_paths),
            escalated_from=tuple(raw.escalated_from),
            resolution_note=raw.resolution_note,
            timeout=raw.timeout.ToTimedelta() if raw.HasField("timeout") else None,
            raw=raw,
            in_band=raw.in_band,
        )


@dataclass(frozen=True, slots=True)
class ReviewPage:
    """One page of `list_reviews`; pass `next_page_token` back for the next ("" = last)."""

    reviews: tuple[Review, ...]
    next_page_token: str
    raw: review_pb2.ListReviewsResponse = field(repr=False, compare=False)

    @classmethod
    def from_proto(cls, raw: review_pb2.ListReviewsResponse) -> ReviewPage:
        """Return the page of a `signoff.v1.ListReviewsResponse` message."""
        return cls(
            reviews=tuple(Review.from_proto(r) for r in raw.reviews),
            next_page_token=raw.next_page_token,
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class Approval:
    """What `require()` returns when the action may run: execute exactly `params`."""

    params: dict[str, Any]  # the params to execute (a reviewer's edits where edited)
    decision: Decision
    review: Review | None  # None when the policy allowed the action without review

    @property
    def receipt(self) -> common_pb2.Receipt | None:
        """The signed receipt to pass to the service that executes the action, if any."""
        return self.review.receipt if self.review is not None else self.decision.receipt

    @property
    def reviewed(self) -> bool:
        """True when a review (a person, or its expiry) let the action through."""
        return self.review is not None

    @property
    def approvers(self) -> tuple[str, ...]:
        """Reviewers whose approval (or edit) counted, in order; () without review."""
        if self.review is None:
            return ()
        # As the server counts: an edit changes what is approved, so approvals before the
        # last edit were of something else.
        acts = self.review.acts
        edits = [i for i, a in enumerate(acts) if a.verdict is Verdict.MODIFY]
        approving = (Verdict.APPROVE, Verdict.MODIFY)
        return tuple(
            a.reviewer for a in acts[edits[-1] if edits else 0 :] if a.verdict in approving
        )
