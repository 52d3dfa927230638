"""From a decision, and for REQUIRE_REVIEW the resolved review, to an `Approval` or a refusal.

Pure, shared by the sync and async `require()`, which only fetch: every judgement about
whether the agent may act, and with which params, is made here.

The digest check binds what the client executes to what the server recorded:

- `action_digest` is over the request as reviewers saw it (redacted paths masked). The
  client masks its own params the same way and must get the same digest: the review is
  about exactly this request.
- `final_digest` is over what was approved: the reviewer's edited params for MODIFIED (as
  they wrote them, masks included), else the request. The client hashes the params it is
  about to execute with the values it restored at redacted paths masked again, and must
  get the same digest: nothing is executed that a reviewer did not approve.

Principal and resource are taken as the server echoed them in the review's request (masked
where the policy says), since those are what the server hashed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signoff_client import _masking, _struct
from signoff_client._gen import common_pb2
from signoff_client.canonical import action_digests
from signoff_client.errors import (
    Cancelled,
    Denied,
    DigestMismatch,
    Expired,
    NotApproved,
    Rejected,
)
from signoff_client.models import Decision, Outcome
from signoff_client.reviews import Approval, Review, ReviewState

_MAY_RUN = frozenset({ReviewState.APPROVED, ReviewState.MODIFIED, ReviewState.EXPIRED})


def from_decision(decision: Decision, params: Mapping[str, Any] | None) -> Approval | None:
    """Return the Approval of an AUTO_ALLOW, raise Denied on DENY; None means wait for review."""
    if decision.outcome is Outcome.AUTO_ALLOW:
        return Approval(params=dict(params or {}), decision=decision, review=None)
    if decision.outcome is Outcome.DENY:
        raise Denied(decision)
    return None


def from_review(
    action: str, params: Mapping[str, Any] | None, decision: Decision, review: Review
) -> Approval:
    """Return the Approval a resolved review gives, digest-checked; raise why not otherwise."""
    state = review.state
    if state in _MAY_RUN and review.outcome is Outcome.AUTO_ALLOW:
        execute, approved = _params(review, params)
        principal, resource = _echoed(review.raw.request)
        requested = action_digests(
            action, _masking.mask(params, review.redacted_paths), principal, resource
        )
        _check(review, "action_digest", review.action_digest, requested)
        _check(
            review,
            "final_digest",
            review.final_digest,
            action_digests(action, approved, principal, resource),
        )
        return Approval(params=execute, decision=decision, review=review)
    if state is ReviewState.REJECTED:
        raise Rejected(review)
    if state is ReviewState.EXPIRED:
        raise Expired(review)
    if state is ReviewState.CANCELLED:
        raise Cancelled(review)
    # PENDING, or a final state whose outcome does not allow acting: never guess.
    outcome = review.outcome.name if review.outcome else "unset"
    raise NotApproved(f"review {review.review_id} is {state.name} (outcome {outcome}); not acting")


def _params(review: Review, params: Mapping[str, Any] | None) -> tuple[dict[str, Any], Any]:
    """Return (the params to execute, the same as the approver saw them)."""
    if review.state is ReviewState.MODIFIED:
        if review.final_params is None:
            raise NotApproved(f"review {review.review_id} is MODIFIED but has no final_params")
        execute = _masking.unmask(review.final_params, params, review.redacted_paths)
        # Hash what will run, with the restored values masked again: that is what the
        # reviewer approved. A value the reviewer typed at a redacted path is theirs and
        # is hashed as written (masking every redacted path would refuse it).
        return execute, _masking.remask(execute, review.final_params, review.redacted_paths)
    return dict(params or {}), _masking.mask(params, review.redacted_paths)


def _check(review: Review, field: str, expected: str, actual: tuple[str, ...]) -> None:
    # An empty expected digest (an old server, a review not yet approved) fails too: the
    # check is the point, and skipping it silently would let anything through. `actual`
    # holds today's digest and, for an action with an integral number above 2**53, the
    # pre-0.2.0 one that a review opened by an older server carries.
    if expected not in actual:
        raise DigestMismatch(review, field=field, expected=expected, actual=actual[0])


def _echoed(request: common_pb2.ActionRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """Principal and resource of a (redacted) request as the dicts `action_digest` takes."""
    p, r = request.principal, request.resource
    # Digests cover the principal as the agent sent it. The server keeps that under
    # `claimed` and puts the facts it vouches for at the top level.
    sent: Any = p.claimed if p.HasField("claimed") else p
    principal = {
        "id": p.id,
        "kind": sent.kind,
        "roles": list(sent.roles),
        "tags": list(sent.tags),
        "on_behalf_of": sent.on_behalf_of,
        "attributes": _struct.from_struct(sent.attributes),
    }
    resource = {"kind": r.kind, "id": r.id, "attributes": _struct.from_struct(r.attributes)}
    return principal, resource
