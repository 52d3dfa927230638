"""`signoff reviews`: list, show, approve, modify, reject and cancel reviews on a server.

Reviewing from the command line
-------------------------------

    export SIGNOFF_SERVER=127.0.0.1:50051    # or --server HOST:PORT
    export SIGNOFF_TOKEN=...                 # or --token; sent as `authorization: Bearer`

    signoff reviews list                     # pending reviews of your groups, oldest first
    signoff reviews list --group finance --action 'refund.*' --older-than 1h --newest
    signoff reviews list --state approved --state rejected --limit 20 --all-pages
    signoff reviews show 3f9c2a1b            # everything needed to decide, on one screen
    signoff reviews approve 3f9c2a1b --comment "matches ticket 4411"
    signoff reviews approve 3f9c2a1b --grant-for 1h --grant-uses 10 --grant-bound 'amount<=750'
    signoff reviews modify 3f9c2a1b --params '{"amount": 500, "currency": "EUR"}'
    signoff reviews modify 3f9c2a1b --params-file edited.json --yes
    signoff reviews reject 3f9c2a1b --comment "duplicate of 3f9c..."
    signoff reviews approve 3f9c2a1b 7d01e4aa --comment "same ticket"   # one batch act
    signoff reviews reject --all-like 3f9c2a1b --comment "bot loop"    # see reviews_batch.py
    signoff reviews cancel 3f9c2a1b --reason "customer withdrew"   # the requesting agent

Every command takes `--json` (list: one review per line; others: the review) and
`--timeout SECONDS`. Ids: a full review id, or any unique prefix or suffix of the id of a
pending (or recently resolved) review. `list` shows the last 8 characters: review ids are
UUIDv7, whose leading characters are a timestamp shared by reviews opened close together.

Acting is guarded: approve, modify and reject send the review version as
`expected_version`, so if anyone else acted in between the server refuses and nothing is
submitted. Pass `--version N` (from `show`) to insist on the version you actually read.
`modify` prints the changes to the params and asks before submitting (`--yes`, or a stdin
that is not a terminal, skips the question).

Exit codes: 0 done; 1 refused, not found or changed meanwhile; 2 bad input; 3 server
unreachable or too slow.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from signoff.cli import grant_flags, reviews_batch, short_ids
from signoff.cli import reviews_view as view
from signoff.cli.output import diff
from signoff.cli.remote import (
    EXIT_USAGE,
    CliError,
    Remote,
    add_connection_arguments,
    report,
    run_command,
)
from signoff.cli.when import duration_type
from signoff_client._gen import review_pb2 as R
from signoff_client._gen import review_pb2_grpc

STATES = ("pending", "approved", "modified", "rejected", "expired", "cancelled")
MAX_PAGE = 500  # the server's largest page


class Client(Remote):
    """The ReviewService over one channel, with the caller's token and a per-call deadline."""

    @functools.cached_property
    def stub(self) -> review_pb2_grpc.ReviewServiceStub:
        """The service's stub on this client's channel."""
        return review_pb2_grpc.ReviewServiceStub(self.channel)

    def get(self, review_id: str) -> R.Review:
        """GetReview."""
        req = R.GetReviewRequest(review_id=review_id)
        return self.stub.GetReview(req, metadata=self.metadata, timeout=self.timeout)

    def list(self, req: R.ListReviewsRequest) -> R.ListReviewsResponse:
        """ListReviews."""
        return self.stub.ListReviews(req, metadata=self.metadata, timeout=self.timeout)

    def submit(self, req: R.SubmitReviewRequest) -> R.Review:
        """SubmitReview."""
        return self.stub.SubmitReview(req, metadata=self.metadata, timeout=self.timeout)

    def submit_many(self, req: R.SubmitReviewsRequest) -> R.SubmitReviewsResponse:
        """SubmitReviews."""
        return self.stub.SubmitReviews(req, metadata=self.metadata, timeout=self.timeout)

    def cancel(self, req: R.CancelReviewRequest) -> R.Review:
        """CancelReview."""
        return self.stub.CancelReview(req, metadata=self.metadata, timeout=self.timeout)


def add_parser(sub: Any) -> None:
    """Register `reviews` and its subcommands on the top-level subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    add_connection_arguments(common)
    common.add_argument("--json", action="store_true", help="print JSON instead of text")

    reviews = sub.add_parser("reviews", help="list and act on reviews on a server")
    rsub = reviews.add_subparsers(dest="reviews_command", required=True)

    ls = rsub.add_parser("list", parents=[common], help="list reviews (pending by default)")
    ls.add_argument("--group", action="append", help="reviewer group (repeatable)")
    ls.add_argument("--state", action="append", choices=STATES, help="state (repeatable)")
    ls.add_argument(
        "--action", help="action name glob, e.g. 'refund.*' ('*' only; <= 256 chars, 8 '*')"
    )
    ls.add_argument(
        "--older-than", type=duration_type, help="waiting at least, e.g. 30m, 1h, 2d, 1w"
    )
    ls.add_argument("--newest", action="store_true", help="newest first (default oldest)")
    ls.add_argument("--limit", type=int, default=50, help="reviews per page (default 50)")
    ls.add_argument("--all-pages", action="store_true", help="follow every page")

    show = rsub.add_parser("show", parents=[common], help="one review in full")
    show.add_argument("id", help="review id, or a unique prefix/suffix of a pending one")

    for verb in ("approve", "reject", "modify"):
        what = "approve with edited params" if verb == "modify" else verb
        act = rsub.add_parser(verb, parents=[common], help=f"{what}: a pending review")
        if verb == "modify":
            act.add_argument("id", help="review id, or a unique prefix/suffix of a pending one")
        else:
            act.add_argument(
                "ids", nargs="*", metavar="id", help="review ids (several: one batch act)"
            )
            act.add_argument(
                "--all-like",
                metavar="ID",
                help="every pending review of ID's group, action and deciding rules (a batch)",
            )
        act.add_argument("--comment", default="", help="shown to the agent, kept in the audit")
        act.add_argument(
            "--version", type=int, help="the review version you looked at (default: current)"
        )
        if verb == "approve":
            grant_flags.add_arguments(act)
        if verb == "modify":
            src = act.add_mutually_exclusive_group(required=True)
            src.add_argument("--params", help="the edited params as a JSON object")
            src.add_argument(
                "--params-file", type=Path, help="JSON file with the params (- = stdin)"
            )
            act.add_argument("--yes", "-y", action="store_true", help="submit without asking")

    cancel = rsub.add_parser("cancel", parents=[common], help="withdraw your pending review")
    cancel.add_argument("id", help="review id, or a unique prefix/suffix of a pending one")
    cancel.add_argument("--reason", default="", help="kept in the audit log")


def run(args: argparse.Namespace) -> int:
    """Run one `signoff reviews` subcommand; print one clear line on failure."""
    try:
        client = Client.from_args(args)
    except CliError as exc:
        return report(exc)
    return run_command(client, lambda: COMMANDS[args.reviews_command](client, args))


def _list(client: Client, args: argparse.Namespace) -> int:
    if not 0 < args.limit <= MAX_PAGE:
        raise CliError(f"--limit must be between 1 and {MAX_PAGE}", EXIT_USAGE)
    req = R.ListReviewsRequest(
        reviewer_groups=args.group or [],
        states=[R.ReviewState.Value(f"REVIEW_STATE_{s.upper()}") for s in args.state or []],
        order=R.REVIEW_ORDER_NEWEST_FIRST if args.newest else R.REVIEW_ORDER_OLDEST_FIRST,
        page_size=args.limit,
        action=args.action or "",
    )
    if args.older_than is not None:
        req.older_than.FromTimedelta(args.older_than)
    found: list[R.Review] = []
    more = False
    while True:
        page = client.list(req)
        found.extend(page.reviews)
        if not page.next_page_token:
            break
        if not args.all_pages:
            more = True
            break
        req.page_token = page.next_page_token
    if args.json:
        for r in found:
            print(view.json_line(r))
        return 0
    with_state = bool(args.state) and args.state != ["pending"]
    print(view.listing(found, _now(), with_state))
    if more:
        print("more on the next page: add --all-pages, or raise --limit")
    return 0


def _show(client: Client, args: argparse.Namespace) -> int:
    r = resolve(client, args.id)
    if args.json:
        print(view.json_block(r))
    else:
        print(view.details(r, _now()))
    return 0


def _act(verdict: int) -> Callable[[Client, argparse.Namespace], int]:
    def act(client: Client, args: argparse.Namespace) -> int:
        grant = grant_flags.spec(args) if verdict == R.VERDICT_APPROVE else None
        if verdict != R.VERDICT_MODIFY:
            if reviews_batch.wants_batch(args):
                if grant is not None:
                    raise CliError("--grant-for takes one review, not a batch", EXIT_USAGE)
                return reviews_batch.act_many(client, args, verdict, resolve)
            if not args.ids:
                raise CliError("give a review id (or several, or --all-like ID)", EXIT_USAGE)
            args.id = args.ids[0]
        new_params = _read_params(args) if verdict == R.VERDICT_MODIFY else None
        r = resolve(client, args.id)
        if args.version is None and r.state != R.REVIEW_STATE_PENDING:
            raise CliError(
                f"review {r.review_id} is already {view.state_by(r)}: "
                "resolved reviews cannot change"
            )
        version = args.version if args.version is not None else r.version
        req = R.SubmitReviewRequest(
            review_id=r.review_id, verdict=verdict, comment=args.comment, expected_version=version
        )
        if grant is not None:
            req.grant.CopyFrom(grant)
        if new_params is not None:
            _confirm_edit(view.current_params(r), new_params, args)
            req.params.update(new_params)
        try:
            done = client.submit(req)
        except grpc.RpcError as exc:
            raise _refusal(client, r.review_id, version, exc) from None
        _report(done, args)
        return 0

    return act


def _cancel(client: Client, args: argparse.Namespace) -> int:
    r = resolve(client, args.id)
    if r.state != R.REVIEW_STATE_PENDING:
        raise CliError(f"review {r.review_id} is already {view.state_by(r)}")
    # CancelReview takes no expected_version: withdrawing is safe whatever changed.
    try:
        done = client.cancel(R.CancelReviewRequest(review_id=r.review_id, reason=args.reason))
    except grpc.RpcError as exc:
        raise _refusal(client, r.review_id, r.version, exc) from None
    _report(done, args)
    return 0


def resolve(client: Client, ref: str) -> R.Review:
    """The review named by a full id, or a unique prefix or suffix of a pending or recent one."""
    try:
        return client.get(ref)
    except grpc.RpcError as exc:
        if not isinstance(exc, grpc.Call) or exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        if short_ids.is_full(ref):
            raise CliError(f"review {ref} not found") from None
    matches = _matching(client, ref, R.ListReviewsRequest(page_size=MAX_PAGE), every_page=True)
    if not matches:
        # Someone may have resolved it meanwhile: look at the most recent reviews too, one
        # page only, so a short id never scans the whole history.
        recent = R.ListReviewsRequest(
            states=[s for s in R.ReviewState.values() if s != R.REVIEW_STATE_UNSPECIFIED],
            order=R.REVIEW_ORDER_NEWEST_FIRST,
            page_size=MAX_PAGE,
        )
        matches = _matching(client, ref, recent, every_page=False)
    where = f"review you can see, pending or among the {MAX_PAGE} most recent,"
    found = {r.review_id: r.request.action.name for r in matches}
    # Listings leave out what GetReview adds for the caller (the grant offer): fetch the
    # one review by its full id, so a short id shows exactly what the full one does.
    return client.get(short_ids.one(ref, found, "review", where))


def _matching(
    client: Client, ref: str, req: R.ListReviewsRequest, every_page: bool
) -> list[R.Review]:
    found: list[R.Review] = []
    while True:
        page = client.list(req)
        found += [r for r in page.reviews if short_ids.matches(ref, r.review_id)]
        if not (every_page and page.next_page_token):
            return found
        req.page_token = page.next_page_token


def _refusal(client: Client, review_id: str, version: int, exc: grpc.RpcError) -> Exception:
    """Explain a FAILED_PRECONDITION by what the review is now; pass other errors through."""
    if not isinstance(exc, grpc.Call) or exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
        return exc
    try:
        now = client.get(review_id)
    except grpc.RpcError:
        return CliError(exc.details() or "refused by the server")
    if now.version != version:
        return CliError(
            f"review changed since you looked at it (now {view.state_by(now)}); "
            f"run `signoff reviews show {review_id}`"
        )
    return CliError(exc.details() or "refused by the server")


def _read_params(args: argparse.Namespace) -> dict[str, Any]:
    if args.params is not None:
        source, text = "--params", args.params
    else:
        source = f"--params-file {args.params_file}"
        try:
            if str(args.params_file) == "-":
                text = sys.stdin.read()
            else:
                text = args.params_file.read_text()
        except OSError as exc:
            raise CliError(f"{source}: {exc.strerror or exc}", EXIT_USAGE) from None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise CliError(f"{source}: not valid JSON: {exc}", EXIT_USAGE) from None
    if not isinstance(value, dict):
        raise CliError(
            f"{source}: must be a JSON object of params, not {type(value).__name__}", EXIT_USAGE
        )
    return value


def _no_constant(name: str) -> Any:
    # Struct numbers are doubles but NaN and Infinity are not JSON and cannot be audited.
    raise ValueError(f"{name} is not a JSON number")


def _confirm_edit(old: dict[str, Any], new: dict[str, Any], args: argparse.Namespace) -> None:
    changes = diff(old, new)
    if not changes:
        raise CliError("the new params equal the current ones; use `approve` instead", EXIT_USAGE)
    # With --json, stdout carries only the result, so the diff goes to stderr.
    out = sys.stderr if args.json else sys.stdout
    print("params changes (- removed, + added, ~ changed):", file=out)
    for line in changes:
        print(f"  {line}", file=out)
    if args.yes or not sys.stdin.isatty():
        return
    try:
        answer = input("submit these params? [y/N] ").strip().lower()
    except EOFError:
        answer = ""
    if answer not in ("y", "yes"):
        raise CliError("not submitted")


def _report(r: R.Review, args: argparse.Namespace) -> None:
    print(view.json_block(r) if args.json else view.outcome(r))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


COMMANDS: dict[str, Callable[[Client, argparse.Namespace], int]] = {
    "list": _list,
    "show": _show,
    "approve": _act(R.VERDICT_APPROVE),
    "modify": _act(R.VERDICT_MODIFY),
    "reject": _act(R.VERDICT_REJECT),
    "cancel": _cancel,
}
