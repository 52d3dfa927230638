"""ReviewService: ListReviews, GetReview, WatchReview, SubmitReview(s), CancelReview, and for the
reviewer console WatchQueue, ListPrecedents and WhoAmI."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from signoff import pb
from signoff.api.methods import Method
from signoff.api.scope import channel_of
from signoff.app.grants.desk import GrantDesk
from signoff.app.reviews.desk import Identity, ReviewDesk

SERVICE = "signoff.v1.ReviewService"
R = pb.review


def methods(desk: ReviewDesk, grants: GrantDesk) -> list[Method]:
    """The ReviewService methods."""

    async def list_reviews(who: Identity, req: R.ListReviewsRequest) -> R.ListReviewsResponse:
        return await desk.list(who, req)

    async def get_review(who: Identity, req: R.GetReviewRequest) -> R.Review:
        return await desk.get(who, req.review_id)

    async def watch_review(who: Identity, req: R.WatchReviewRequest) -> AsyncIterator[R.Review]:
        async for review in desk.watch(who, req.review_id):
            yield review

    async def submit_review(who: Identity, req: R.SubmitReviewRequest) -> R.Review:
        return await desk.submit(who, req, channel=channel_of(who))

    async def submit_reviews(who: Identity, req: R.SubmitReviewsRequest) -> R.SubmitReviewsResponse:
        return await desk.submit_batch(who, req)

    async def cancel_review(who: Identity, req: R.CancelReviewRequest) -> R.Review:
        return await desk.cancel(who, req)

    async def watch_queue(who: Identity, req: R.WatchQueueRequest) -> AsyncIterator[R.Queue]:
        # Endless: closed explicitly, so the desk's clean-up runs as the client goes away.
        async with contextlib.aclosing(desk.queue(who, req)) as qs:
            async for queue in qs:
                yield queue

    async def list_precedents(
        who: Identity, req: R.ListPrecedentsRequest
    ) -> R.ListPrecedentsResponse:
        return await desk.precedents(who, req)

    async def who_am_i(who: Identity, req: R.WhoAmIRequest) -> R.Caller:
        return desk.whoami(who)

    async def list_grants(who: Identity, req: R.ListGrantsRequest) -> R.ListGrantsResponse:
        return await grants.list(who.id, who.can_review, req)

    async def revoke_grant(who: Identity, req: R.RevokeGrantRequest) -> R.Grant:
        return await grants.revoke(who.id, who.can_review, req)

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
