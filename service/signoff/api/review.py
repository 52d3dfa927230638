"""ReviewService: ListReviews, GetReview, WatchReview, SubmitReview, CancelReview."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from signoff import pb
from signoff.api.errors import Ctx, Guard, parse, stream_handler, unary_handler
from signoff.review_app import Identity, ReviewDesk

SERVICE = "signoff.v1.ReviewService"
R = pb.review


def handler(desk: ReviewDesk, guard: Guard) -> grpc.GenericRpcHandler:
    """The ReviewService handlers."""

    async def list_reviews(who: Identity, data: bytes, _: Ctx) -> R.ListReviewsResponse:
        return await desk.list(who, parse(R.ListReviewsRequest, data))

    async def get_review(who: Identity, data: bytes, _: Ctx) -> R.Review:
        return await desk.get(who, parse(R.GetReviewRequest, data).review_id)

    async def watch_review(who: Identity, data: bytes, _: Ctx) -> AsyncIterator[R.Review]:
        async for review in desk.watch(who, parse(R.WatchReviewRequest, data).review_id):
            yield review

    async def submit_review(who: Identity, data: bytes, _: Ctx) -> R.Review:
        return await desk.submit(who, parse(R.SubmitReviewRequest, data))

    async def cancel_review(who: Identity, data: bytes, _: Ctx) -> R.Review:
        return await desk.cancel(who, parse(R.CancelReviewRequest, data))

    name = f"{SERVICE}/"
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "ListReviews": unary_handler(
                guard.unary(name + "ListReviews", list_reviews), R.ListReviewsResponse
            ),
            "GetReview": unary_handler(guard.unary(name + "GetReview", get_review), R.Review),
            "WatchReview": stream_handler(
                guard.stream(name + "WatchReview", watch_review), R.Review
            ),
            "SubmitReview": unary_handler(
                guard.unary(name + "SubmitReview", submit_review), R.Review
            ),
            "CancelReview": unary_handler(
                guard.unary(name + "CancelReview", cancel_review), R.Review
            ),
        },
    )
