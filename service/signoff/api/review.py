"""ReviewService: ListReviews, GetReview, WatchReview, SubmitReview(s), CancelReview, and for the
reviewer console WatchQueue, ListPrecedents and WhoAmI."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from signoff import pb
from signoff.api.errors import parse
from signoff.api.methods import Method
from signoff.app.grants.desk import GrantDesk
from signoff.app.reviews.desk import Identity, ReviewDesk

SERVICE = "signoff.v1.ReviewService"
R = pb.review


def methods(desk: ReviewDesk, grants: GrantDesk) -> list[Method]:
    """The ReviewService methods."""

    async def list_reviews(who: Identity, data: bytes) -> R.ListReviewsResponse:
        return await desk.list(who, parse(R.ListReviewsRequest, data))

    async def get_review(who: Identity, data: bytes) -> R.Review:
        return await desk.get(who, parse(R.GetReviewRequest, data).review_id)

    async def watch_review(who: Identity, data: bytes) -> AsyncIterator[R.Review]:
        async for review in desk.watch(who, parse(R.WatchReviewRequest, data).review_id):
            yield review

    async def submit_review(who: Identity, data: bytes) -> R.Review:
        return await desk.submit(who, parse(R.SubmitReviewRequest, data))

    async def submit_reviews(who: Identity, data: bytes) -> R.SubmitReviewsResponse:
        return await desk.submit_batch(who, parse(R.SubmitReviewsRequest, data))

    async def cancel_review(who: Identity, data: bytes) -> R.Review:
        return await desk.cancel(who, parse(R.CancelReviewRequest, data))

    async def watch_queue(who: Identity, data: bytes) -> AsyncIterator[R.Queue]:
        # Endless: closed explicitly, so the desk's clean-up runs as the client goes away.
        async with contextlib.aclosing(desk.queue(who, parse(R.WatchQueueRequest, data))) as qs:
            async for queue in qs:
                yield queue

    async def list_precedents(who: Identity, data: bytes) -> R.ListPrecedentsResponse:
        return await desk.precedents(who, parse(R.ListPrecedentsRequest, data))

    async def who_am_i(who: Identity, data: bytes) -> R.Caller:
        parse(R.WhoAmIRequest, data)  # nothing to read, but a malformed request is still refused
        return desk.whoami(who)

    async def list_grants(who: Identity, data: bytes) -> R.ListGrantsResponse:
        return await grants.list(who.id, who.can_review, parse(R.ListGrantsRequest, data))

    async def revoke_grant(who: Identity, data: bytes) -> R.Grant:
        return await grants.revoke(who.id, who.can_review, parse(R.RevokeGrantRequest, data))

    return [
        Method(SERVICE, "ListGrants", R.ListGrantsRequest, R.ListGrantsResponse, list_grants),
        Method(SERVICE, "RevokeGrant", R.RevokeGrantRequest, R.Grant, revoke_grant),
        Method(SERVICE, "ListReviews", R.ListReviewsRequest, R.ListReviewsResponse, list_reviews),
        Method(SERVICE, "GetReview", R.GetReviewRequest, R.Review, get_review),
        Method(SERVICE, "WatchReview", R.WatchReviewRequest, R.Review, stream=watch_review),
        Method(SERVICE, "SubmitReview", R.SubmitReviewRequest, R.Review, submit_review),
        Method(
            SERVICE,
            "SubmitReviews",
            R.SubmitReviewsRequest,
            R.SubmitReviewsResponse,
            submit_reviews,
        ),
        Method(SERVICE, "CancelReview", R.CancelReviewRequest, R.Review, cancel_review),
        Method(SERVICE, "WatchQueue", R.WatchQueueRequest, R.Queue, stream=watch_queue),
        Method(
            SERVICE,
            "ListPrecedents",
            R.ListPrecedentsRequest,
            R.ListPrecedentsResponse,
            list_precedents,
        ),
        Method(SERVICE, "WhoAmI", R.WhoAmIRequest, R.Caller, who_am_i),
    ]
