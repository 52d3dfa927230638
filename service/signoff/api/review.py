"""ReviewService: ListReviews, GetReview, WatchReview, SubmitReview, CancelReview."""

from __future__ import annotations

from collections.abc import AsyncIterator

from signoff import pb
from signoff.api.errors import parse
from signoff.api.methods import Method
from signoff.review_app import Identity, ReviewDesk

SERVICE = "signoff.v1.ReviewService"
R = pb.review


def methods(desk: ReviewDesk) -> list[Method]:
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

    async def cancel_review(who: Identity, data: bytes) -> R.Review:
        return await desk.cancel(who, parse(R.CancelReviewRequest, data))

    return [
        Method(SERVICE, "ListReviews", R.ListReviewsRequest, R.ListReviewsResponse, list_reviews),
        Method(SERVICE, "GetReview", R.GetReviewRequest, R.Review, get_review),
        Method(SERVICE, "WatchReview", R.WatchReviewRequest, R.Review, stream=watch_review),
        Method(SERVICE, "SubmitReview", R.SubmitReviewRequest, R.Review, submit_review),
        Method(SERVICE, "CancelReview", R.CancelReviewRequest, R.Review, cancel_review),
    ]
