"""Batch review: one reviewer approves or rejects several reviews of the same action and
deciding rules in one act with one comment.

The batch is checked as a whole first (verdict, comment, size, duplicates, one action and
rule set, the caller's groups): a malformed batch acts on nothing. Then every review goes
through the single-review path (`ReviewDesk.act`: the same state machine, version check,
audit entry, wake-ups, webhooks and telemetry), concurrently, so the store's group commit
writes them in as few transactions as it can. Each act stands alone: a review that changed
meanwhile (another act, an expiry, a cancel) reports its error and the others go through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Protocol

from google.protobuf import struct_pb2

from signoff import pb
from signoff.app.audit import guard as chain_guard
from signoff.app.reviews.caller import Identity
from signoff.core import reviews
from signoff.errors import InvalidArgument, NotFound, PermissionDenied, SignoffError
from signoff.ids import new_id
from signoff.logs import event
from signoff.store.base import Store

log = logging.getLogger("signoff.reviews")
S = pb.review
MAX_BATCH = 100
# The status names of SignoffError subclasses, as SubmitReview would answer them.
_CODES = {
    "InvalidArgument": "INVALID_ARGUMENT",
    "NotFound": "NOT_FOUND",
    "PermissionDenied": "PERMISSION_DENIED",
    "FailedPrecondition": "FAILED_PRECONDITION",
    "Unavailable": "UNAVAILABLE",
    "ResourceExhausted": "RESOURCE_EXHAUSTED",
    "DeadlineExceeded": "DEADLINE_EXCEEDED",
}


class Desk(Protocol):
    """What a batch needs of the review desk: its store, and the one path of a single act."""

    store: Store

    async def act(
        self,
        who: Identity,
        r: pb.review.Review,
        verdict: int,
        params: struct_pb2.Struct | None,
        comment: str,
        expected_version: int,
        extra: Mapping[str, object] | None = None,
    ) -> pb.review.Review:
        """Act on one loaded review (`ReviewDesk.act`)."""
        ...


async def submit(
    desk: Desk, who: Identity, req: pb.review.SubmitReviewsRequest
) -> pb.review.SubmitReviewsResponse:
    """Check the batch as a whole, then act on each review on its own; results in order."""
    _check_request(req)
    loaded = await asyncio.gather(*(_load(desk, ref.review_id) for ref in req.reviews))
    _check_reviews(who, loaded)
    batch_id = new_id()
    extra = {"batch_id": batch_id, "batch_size": len(loaded)}
    outcomes = await asyncio.gather(
        *(
            desk.act(who, r, req.verdict, None, req.comment, ref.expected_version, extra)
            for r, ref in zip(loaded, req.reviews, strict=True)
        ),
        return_exceptions=True,
    )
    out = S.SubmitReviewsResponse(batch_id=batch_id)
    for ref, outcome in zip(req.reviews, outcomes, strict=True):
        result = out.results.add(review_id=ref.review_id)
        if isinstance(outcome, SignoffError):
            result.error_code = _CODES.get(type(outcome).__name__, "INTERNAL")
            result.error_message = outcome.message
        elif isinstance(outcome, BaseException):
            # Not a refusal but a fault: the others may have committed, so report it here
            # rather than fail the call and hide what was done.
            event(log, "review.batch_fault", review_id=ref.review_id, error=repr(outcome))
            result.error_code = "INTERNAL"
            result.error_message = "internal error; look at the review again"
        else:
            result.review.CopyFrom(outcome)
            out.succeeded += 1
    event(
        log,
        "review.batch",
        batch_id=batch_id,
        actor=who.id,
        verdict=S.Verdict.Name(req.verdict),
        size=len(loaded),
        succeeded=out.succeeded,
    )
    return out


def _check_request(req: pb.review.SubmitReviewsRequest) -> None:
    if req.verdict == S.VERDICT_MODIFY:
        raise InvalidArgument(
            "verdict",
            "VERDICT_MODIFY cannot be batched: edit each review on its own with SubmitReview",
        )
    if req.verdict not in (S.VERDICT_APPROVE, S.VERDICT_REJECT):
        raise InvalidArgument("verdict", "must be VERDICT_APPROVE or VERDICT_REJECT")
    if req.verdict == S.VERDICT_REJECT and not req.comment.strip():
        raise InvalidArgument("comment", "is required to reject a batch: every agent is told why")
    if not 0 < len(req.reviews) <= MAX_BATCH:
        raise InvalidArgument("reviews", f"must hold 1-{MAX_BATCH} reviews, not {len(req.reviews)}")
    seen: set[str] = set()
    for i, ref in enumerate(req.reviews):
        if not ref.review_id:
            raise InvalidArgument(f"reviews[{i}].review_id", "is required")
        if ref.review_id in seen:
            raise InvalidArgument(
                f"reviews[{i}].review_id", f"review {ref.review_id} is in the batch twice"
            )
        seen.add(ref.review_id)
        if ref.expected_version <= 0:
            raise InvalidArgument(
                f"reviews[{i}].expected_version",
                f"is required for review {ref.review_id}: send the version you looked at",
            )


async def _load(desk: Desk, review_id: str) -> pb.review.Review:
    rec = await desk.store.get_review(review_id)
    if rec is None:
        raise NotFound(f"review {review_id} not found")
    r = S.Review.FromString(rec.review)
    await chain_guard.check_reviews(desk.store, [(rec, r)], acting=True)
    return r


def _check_reviews(who: Identity, loaded: list[pb.review.Review]) -> None:
    first = loaded[0]
    action, rules = first.request.action.name, reviews.rule_set(first)
    for i, r in enumerate(loaded):
        if not who.can_review(r.reviewer_group):
            # Worded as SubmitReview words it: the review's own group, no other.
            raise PermissionDenied(
                f"{who.id} may not review {r.review_id}: group {r.reviewer_group!r} "
                f"(needs role reviewer:{r.reviewer_group})"
            )
        if r.request.action.name != action:
            raise InvalidArgument(
                f"reviews[{i}].review_id",
                f"review {r.review_id} is of action {r.request.action.name!r}, not {action!r}: "
                "a batch holds reviews of one action",
            )
        if reviews.rule_set(r) != rules:
            raise InvalidArgument(
                f"reviews[{i}].review_id",
                f"review {r.review_id} was decided by {_rules(r)}, not {_rules(first)}: "
                "a batch holds reviews decided by the same rules",
            )


def _rules(r: pb.review.Review) -> str:
    return ", ".join(f"{p}/{n}" for p, n in sorted(reviews.rule_set(r))) or "no rule"
