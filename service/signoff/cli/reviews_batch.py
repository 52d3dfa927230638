"""`signoff reviews approve|reject` with several reviews: one SubmitReviews batch.

    signoff reviews approve 3f9c2a1b 7d01e4aa 90bc11f2 --comment "same customer, same ticket"
    signoff reviews reject --all-like 3f9c2a1b --comment "the refund bot looped"

Several ids (full, or unique prefixes/suffixes), or `--all-like ID`: every pending review of
the same group, action and deciding rules as ID (itself included; the oldest 100 when there
are more). Each review's current version is sent, so one that changes before the batch
arrives is refused alone. Prints one row per review; exit 0 when every act went through,
1 when any was refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, Protocol

from signoff.cli.output import message_dict, table
from signoff.cli.remote import EXIT_USAGE, CliError
from signoff.cli.reviews_view import summary
from signoff_client._gen import review_pb2 as R

MAX_BATCH = 100  # the server's largest batch
MAX_PAGE = 500


class BatchClient(Protocol):
    """What a batch needs of the reviews client."""

    def list(self, req: R.ListReviewsRequest) -> R.ListReviewsResponse:
        """ListReviews."""
        ...

    def submit_many(self, req: R.SubmitReviewsRequest) -> R.SubmitReviewsResponse:
        """SubmitReviews."""
        ...


def wants_batch(args: argparse.Namespace) -> bool:
    """True when the command names several reviews (or --all-like)."""
    return bool(args.all_like) or len(args.ids) > 1


def act_many(
    client: BatchClient,
    args: argparse.Namespace,
    verdict: int,
    resolve: Callable[[Any, str], R.Review],
) -> int:
    """Resolve the reviews, submit them as one batch, print a row per review."""
    if args.version is not None:
        raise CliError(
            "--version names one review's version; with several reviews each one's current "
            "version is sent",
            EXIT_USAGE,
        )
    if verdict == R.VERDICT_REJECT and not args.comment.strip():
        raise CliError(
            "rejecting several reviews needs --comment: every agent is told why", EXIT_USAGE
        )
    if args.all_like and args.ids:
        raise CliError("give review ids or --all-like ID, not both", EXIT_USAGE)
    if args.all_like:
        chosen = _all_like(client, resolve(client, args.all_like))
    else:
        chosen = [resolve(client, ref) for ref in args.ids]
        seen: set[str] = set()
        for ref, r in zip(args.ids, chosen, strict=True):
            if r.review_id in seen:
                raise CliError(f"{ref} names review {r.review_id} twice", EXIT_USAGE)
            seen.add(r.review_id)
    if len(chosen) > MAX_BATCH:
        raise CliError(f"{len(chosen)} reviews: a batch holds at most {MAX_BATCH}", EXIT_USAGE)
    req = R.SubmitReviewsRequest(verdict=verdict, comment=args.comment)
    for r in chosen:
        req.reviews.add(review_id=r.review_id, expected_version=r.version)
    out = client.submit_many(req)
    actions = {r.review_id: r.request.action.name for r in chosen}
    print(_as_json(out) if args.json else _as_table(out, actions))
    return 0 if out.succeeded == len(out.results) else 1


def _all_like(client: BatchClient, like: R.Review) -> list[R.Review]:
    """Pending reviews of like's group, action and deciding rules, oldest first."""
    if like.state != R.REVIEW_STATE_PENDING:
        raise CliError(f"review {like.review_id} is not pending: --all-like needs a pending one")
    req = R.ListReviewsRequest(
        reviewer_groups=[like.reviewer_group],
        action=like.request.action.name,
        order=R.REVIEW_ORDER_OLDEST_FIRST,
        page_size=MAX_PAGE,
    )
    rules = _rule_set(like)
    found: list[R.Review] = []
    while True:
        page = client.list(req)
        found += [
            r
            for r in page.reviews
            if r.request.action.name == like.request.action.name and _rule_set(r) == rules
        ]
        if not page.next_page_token:
            break
        req.page_token = page.next_page_token
    if len(found) > MAX_BATCH:
        print(
            f"{len(found)} reviews are like {like.review_id}: acting on the oldest {MAX_BATCH};"
            " run again for the rest",
            file=sys.stderr,
        )
        found = found[:MAX_BATCH]
    return found


def _rule_set(r: R.Review) -> frozenset[tuple[str, str]]:
    # As the server compares them: shadow rules decided nothing.
    return frozenset((m.policy, m.rule) for m in r.matched_rules if not m.shadow)


def _as_table(out: R.SubmitReviewsResponse, actions: dict[str, str]) -> str:
    rows = [
        [
            res.review_id,
            actions.get(res.review_id, ""),
            summary(res.review) if not res.error_code else f"refused: {res.error_code}",
            res.error_message,
        ]
        for res in out.results
    ]
    done = f"{out.succeeded} of {len(out.results)} done (batch {out.batch_id})"
    return table(["review", "action", "result", "why"], rows) + "\n\n" + done


def _as_json(out: R.SubmitReviewsResponse) -> str:
    return json.dumps(message_dict(out), indent=2, ensure_ascii=False)
