"""Review-scoped sessions (from an e-mail link) reach one review and nothing else.

Every method is wrapped, so a method added later is refused to such a session by default:
only reading that one review (GetReview, WatchReview), acting on it at the version the link
was sent for (SubmitReview, without a standing approval) and WhoAmI pass. Callers without a
scope go straight through.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any

from google.protobuf.message import Message

from signoff import pb
from signoff.api.methods import Method
from signoff.errors import FailedPrecondition, InvalidArgument, PermissionDenied

REVIEWS = "signoff.v1.ReviewService"
# Methods a scoped session may call, by full name; each names the review in `review_id`.
READS = frozenset({f"{REVIEWS}/GetReview", f"{REVIEWS}/WatchReview"})
SUBMIT = f"{REVIEWS}/SubmitReview"
WHOAMI = f"{REVIEWS}/WhoAmI"


def channel_of(who: Any) -> str:
    """The channel an act comes through: "email" for a scoped session, "" otherwise."""
    scope = getattr(who, "scope", None)
    return scope.channel if scope is not None else ""


def check(full_name: str, who: Any, req: Message) -> None:
    """PermissionDenied unless a scoped `who` may make this call (a no-op without a scope);
    fixes a SubmitReview's expected version to the scope's."""
    scope = getattr(who, "scope", None)
    if scope is None or full_name == WHOAMI:
        return
    where = f"this session (from an e-mail link) is for review {scope.review_id} only"
    if full_name not in READS and full_name != SUBMIT:
        raise PermissionDenied(f"{who.id} may not call {full_name.rsplit('/', 1)[-1]}: {where}")
    if getattr(req, "review_id", None) != scope.review_id:
        raise PermissionDenied(f"{who.id} may not see review {req.review_id}: {where}")  # type: ignore[attr-defined]
    if full_name != SUBMIT:
        return
    assert isinstance(req, pb.review.SubmitReviewRequest)
    if req.HasField("grant"):
        raise InvalidArgument(
            "grant", "a standing approval cannot be given from an e-mail link; use the console"
        )
    if req.expected_version not in (0, scope.version):
        raise FailedPrecondition(
            f"review {scope.review_id}: this link is for version {scope.version}, "
            f"not {req.expected_version}"
        )
    # The link was for the review as mailed: acting on anything newer needs a new look.
    req.expected_version = scope.version


def scoped(methods: Sequence[Method]) -> list[Method]:
    """The methods, each refusing scoped sessions beyond their one review."""
    return [_wrap(m) for m in methods]


def _wrap(method: Method) -> Method:
    name = method.full_name
    if method.unary is not None:
        unary = method.unary

        async def checked_unary(who: Any, req: Any) -> Message:
            check(name, who, req)
            return await unary(who, req)

        return dataclasses.replace(method, unary=checked_unary)
    assert method.stream is not None
    stream = method.stream

    async def checked_stream(who: Any, req: Any) -> AsyncIterator[Message]:
        check(name, who, req)
        # aclosing: an endless stream (WatchQueue) is closed as the client goes away, so
        # the desk's clean-up runs now, not when the garbage collector finds it.
        async with contextlib.aclosing(stream(who, req)) as items:
            async for item in items:
                yield item

    return dataclasses.replace(method, stream=checked_stream)
