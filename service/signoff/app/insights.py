"""GetInsights: read the reviews opened in a window, page by page, and summarize them."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

from signoff import pb
from signoff.core import insights, wire
from signoff.errors import InvalidArgument
from signoff.store.base import Store

PAGE = 1000
# One report counts at most this many reviews (about 2.5 s of work, in 10 ms slices): a
# window that holds more is reported on its oldest ones and marked truncated.
MAX_REVIEWS = 200_000


def thresholds(req: pb.policy.GetInsightsRequest) -> insights.Thresholds:
    """The request's thresholds, defaults for zeros; InvalidArgument names a bad one."""
    d = insights.Thresholds()
    if req.min_reviews < 0:
        raise InvalidArgument("min_reviews", f"must be >= 0, not {req.min_reviews}")
    for name in ("auto_allow_share", "expired_share"):
        value = getattr(req, name)
        if not 0 <= value <= 1:
            raise InvalidArgument(name, f"must be between 0 and 1, not {value:g}")
    return insights.Thresholds(
        min_reviews=req.min_reviews or d.min_reviews,
        auto_allow_share=req.auto_allow_share or d.auto_allow_share,
        expired_share=req.expired_share or d.expired_share,
    )


async def get_insights(
    store: Store, req: pb.policy.GetInsightsRequest, now: dt.datetime
) -> pb.policy.Insights:
    """The per-rule insights of the reviews opened in the request's window."""
    if not req.HasField("since"):
        raise InvalidArgument("since", "is required (the start of the window)")
    since = wire.timestamp(req.since, "since")
    until = wire.timestamp(req.until, "until") if req.HasField("until") else now
    if until <= since:
        raise InvalidArgument(
            "until", f"{until.isoformat()} is not after since ({since.isoformat()})"
        )
    limits = thresholds(req)
    tally = insights.Tally()
    count, truncated = 0, False
    async for page in _pages(store, since, until):
        # Counted page by page between reads: the event loop serves other calls meanwhile
        # (about 10 ms of work per page) and no more than a page is held decoded.
        if req.reviewer_group:
            page = [r for r in page if r.reviewer_group == req.reviewer_group]
        if count + len(page) > MAX_REVIEWS:
            page, truncated = page[: MAX_REVIEWS - count], True
        tally.add(page)
        count += len(page)
        if truncated:
            break
    out = pb.policy.Insights(reviews=count, truncated=truncated)
    out.since.FromDatetime(since)
    out.until.FromDatetime(until)
    out.rules.extend(tally.rows(limits))
    return out


async def _pages(
    store: Store, since: dt.datetime, until: dt.datetime
) -> AsyncIterator[list[pb.review.Review]]:
    after: tuple[dt.datetime, str] | None = None
    while True:
        page = await store.opened_reviews(since, until, after=after, limit=PAGE)
        yield [pb.review.Review.FromString(rec.review) for rec in page]
        if len(page) < PAGE:
            return
        after = (page[-1].created_at, page[-1].review_id)
