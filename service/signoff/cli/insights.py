"""`signoff policy insights`: per rule, what its reviews became -- and which rules to revisit.

    signoff policy insights [--since 30d] [--until TIME] [--group G] [--json]
        [--min-reviews 20] [--auto-allow-share 0.95] [--expired-share 0.10]

Asks the server (PolicyService.GetInsights, auditor or admin role) about the reviews opened
in the window and prints one row per rule: reviews by final state, median and p90 time to
review, distinct reviewers, disagreement among similar reviews, and flags. Under an
auto-allow candidate it prints the `signoff policy replay` command that checks the change.
--since/--until take a time: `now`, a duration ago (30d, 12h, 1h30m) or RFC 3339, a date;
UTC without a zone (signoff.cli.when, docs/cli-times.md).

Exit codes: 0 the report was made (whatever it says); 1 refused; 2 bad input; 3 server
unreachable or too slow.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import shlex
from typing import Any

from google.protobuf import json_format

from signoff.cli.remote import (
    EXIT_USAGE,
    CliError,
    Remote,
    add_connection_arguments,
    report,
    run_command,
)
from signoff.cli.when import time_flag
from signoff_client._gen import policy_pb2 as P
from signoff_client._gen import policy_pb2_grpc

COLUMNS = (
    *("RULE", "AT", "REVIEWS", "APPROVED", "EDITED", "REJECTED", "EXPIRED", "CANCELLED"),
    *("PENDING", "MEDIAN", "P90", "REVIEWERS", "DISAGREE"),
)


class Client(Remote):
    """The PolicyService over one channel, with the caller's token and a per-call deadline."""

    @functools.cached_property
    def stub(self) -> policy_pb2_grpc.PolicyServiceStub:
        """The service's stub on this client's channel."""
        return policy_pb2_grpc.PolicyServiceStub(self.channel)

    def insights(self, req: P.GetInsightsRequest) -> P.Insights:
        """GetInsights."""
        return self.stub.GetInsights(req, metadata=self.metadata, timeout=self.timeout)


def add_parser(psub: Any) -> None:
    """Register `insights` on the `policy` subparsers."""
    p = psub.add_parser("insights", help="per rule, what its reviews became (server)")
    p.add_argument("--since", default="30d", help="window start: 30d, 12h or a time (default 30d)")
    p.add_argument("--until", help="window end: a duration ago or a time (default now)")
    p.add_argument("--group", default="", help="only reviews of this reviewer group")
    p.add_argument("--min-reviews", type=int, default=20, help="decided reviews to flag (20)")
    p.add_argument(
        "--auto-allow-share", type=float, default=0.95, help="approved unchanged share (0.95)"
    )
    p.add_argument("--expired-share", type=float, default=0.10, help="expired share (0.10)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_connection_arguments(
        p,
        token_help="bearer token with the auditor role ($SIGNOFF_TOKEN)",
        timeout=30.0,
        timeout_help="seconds (default 30)",
    )


def run(args: argparse.Namespace) -> int:
    """Run `signoff policy insights`."""
    now = dt.datetime.now(dt.UTC)
    try:
        req = request(args, now)
    except CliError as exc:
        return report(exc)
    client = Client.from_args(args)

    def command() -> int:
        out = client.insights(req)
        print(as_json(out) if args.json else table(out, args, client.target))
        return 0

    return run_command(client, command)


def request(args: argparse.Namespace, now: dt.datetime) -> P.GetInsightsRequest:
    """The GetInsightsRequest of the flags; CliError (exit 2) names a bad one."""
    since = time_flag("--since", args.since, now)
    req = P.GetInsightsRequest(
        reviewer_group=args.group,
        min_reviews=args.min_reviews,
        auto_allow_share=args.auto_allow_share,
        expired_share=args.expired_share,
    )
    req.since.FromDatetime(since)
    if args.until:
        until = time_flag("--until", args.until, now)
        if until <= since:
            raise CliError(
                f"--until {args.until!r} is not after --since {args.since!r}", EXIT_USAGE
            )
        req.until.FromDatetime(until)
    if args.min_reviews < 1:
        raise CliError(f"--min-reviews must be at least 1, not {args.min_reviews}", EXIT_USAGE)
    for flag, value in (("--auto-allow-share", args.auto_allow_share),
                        ("--expired-share", args.expired_share)):  # fmt: skip
        if not 0 < value <= 1:
            raise CliError(f"{flag} must be in (0, 1], not {value:g}", EXIT_USAGE)
    return req


def as_json(out: P.Insights) -> str:
    """The report as JSON (proto field names, zeros included)."""
    data = json_format.MessageToDict(
        out, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return json.dumps(data, indent=2, ensure_ascii=False)


def table(out: P.Insights, args: argparse.Namespace, server: str) -> str:
    """The report as text: a header line, one row per rule, then the flags of each rule."""
    since, until = out.since.ToDatetime(dt.UTC), out.until.ToDatetime(dt.UTC)
    group = f" of group {args.group}" if args.group else ""
    head = f"reviews opened {_time(since)} .. {_time(until)}{group}: {out.reviews}"
    if out.truncated:
        head += " (truncated: the window holds more; narrow it for complete figures)"
    if not out.rules:
        return f"{head}\nno reviews in the window"
    rows = [COLUMNS, *(_cells(r) for r in out.rules)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [head, ""]
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True)))
                     .rstrip())  # fmt: skip
    for r in out.rules:
        for f in r.flags:
            lines.append(f"\n{_name(r)}: {f.kind.replace('_', ' ')}: {f.reason}")
            if f.kind == "auto_allow_candidate":
                lines.append(f"  check the change first: {replay_command(r, args, server)}")
    return "\n".join(lines)


def replay_command(r: P.RuleInsight, args: argparse.Namespace, server: str) -> str:
    """The `signoff policy replay` line that re-decides this rule's window with new policies."""
    words = ["signoff", "policy", "replay", "--policies", "./policies-changed"]
    # The filters read times as the flags do (signoff.cli.when), so the text carries over.
    words += ["--server", server, f"since={args.since.strip()}"]
    if args.until:
        words.append(f"until={args.until.strip()}")
    if r.rule != "(default)":
        words.append(f"rule={r.rule}")
    return " ".join(shlex.quote(w) for w in words)


def _cells(r: P.RuleInsight) -> tuple[str, ...]:
    at = f"{r.file}:{r.line}" if r.file else "-"
    counts = (r.reviews, r.approved_unchanged, r.edited, r.rejected, r.expired, r.cancelled)
    timed = r.approved_unchanged + r.edited + r.rejected
    median, p90 = (_span(r.median_s), _span(r.p90_s)) if timed else ("-", "-")
    agree = f"{r.disagreement:.0%}" if r.compared else "-"
    return (_name(r), at, *(str(c) for c in counts), str(r.pending), median, p90,
            str(r.reviewers), agree)  # fmt: skip


def _name(r: P.RuleInsight) -> str:
    return f"{r.policy}/{r.rule}" if r.policy else r.rule


def _span(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _time(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")
