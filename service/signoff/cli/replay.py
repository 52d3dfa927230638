"""`signoff policy replay`: what would a policy change do to the decisions already made?

    signoff policy replay --policies NEW_DIR --from audit.jsonl [--examples 3] [--json]
    signoff policy replay --policies NEW_DIR --server HOST:PORT since=-7d action='refund.*'

Re-decides every recorded `decision` entry with the bundle in NEW_DIR (see signoff.app.replay)
and prints how many would change, grouped by old outcome -> new outcome and the rule that
would decide, with examples; shadow-rule matches and rule errors are counted apart.

`--from FILE` reads a JSON Lines audit export (`signoff audit export`, `-` = stdin) as a
stream. Lines that are not JSON or not export lines are counted and reported, never fatal;
checkpoint and end lines and non-decision entries are skipped. Without --from, decision
entries are read from the server (QueryAudit, the auditor role) with `key=value` filters as
in `signoff audit query` (since, until, action, principal, ...).

Recorded requests are redacted: a rule reading a redacted field replays on "[REDACTED]".

Exit codes: 0 the report was made (whatever it says); 1 refused; 2 bad input (NEW_DIR does
not load: its file:line:column errors are printed; a missing file; a bad filter);
3 server unreachable or too slow.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import grpc

from signoff.cli.remote import DEFAULT_SERVER, EXIT_USAGE, CliError, add_tls_arguments

MAX_PAGE = 1000  # the server's largest QueryAudit page


@dataclass
class Malformed:
    """Lines of an export file that could not be read: how many, and the first one."""

    count: int = 0
    first_line: int = 0
    first_error: str = ""

    def add(self, line: int, error: str) -> None:
        """Count one unreadable line, remembering the first."""
        if not self.count:
            self.first_line, self.first_error = line, error
        self.count += 1


def add_parser(psub: Any) -> None:
    """Register `replay` on the `policy` subparsers."""
    from signoff.cli.audit_filters import FILTERS

    p = psub.add_parser("replay", help="re-decide recorded decisions with changed policies")
    p.add_argument("--policies", type=Path, required=True, help="the NEW policy directory")
    p.add_argument("--from", dest="source", help="a JSON Lines audit export (- = stdin)")
    p.add_argument(
        "--server",
        help=f"HOST:PORT to read decisions from (default $SIGNOFF_SERVER or {DEFAULT_SERVER})",
    )
    p.add_argument("--token", help="bearer token with the auditor role ($SIGNOFF_TOKEN)")
    add_tls_arguments(p)
    p.add_argument("--timeout", type=float, help="seconds per server call (default 10)")
    known = ", ".join(k for k in FILTERS if k != "type")
    p.add_argument("filters", nargs="*", metavar="FILTER", help=f"--server only; keys: {known}")
    p.add_argument("--examples", type=int, default=3, help="examples per group (default 3)")
    p.add_argument(
        "--default-decision",
        choices=["review", "deny"],
        default="review",
        help="what no matching rule decides (default review, as the server's)",
    )
    p.add_argument("--default-group", default="default", help="its reviewer group")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    """Replay and print the report; print one clear line on failure."""
    try:
        return _run(args)
    except CliError as exc:
        print(f"signoff: {exc.message}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    from signoff.app.replay import Replay
    from signoff.cli import replay_view as view
    from signoff.core.decide import DefaultDecision

    if args.examples < 0:
        raise CliError("--examples must be 0 or more", EXIT_USAGE)
    if args.source is not None and (args.server or args.filters):
        raise CliError(
            "filters and --server read from a server; with --from, export with filters instead",
            EXIT_USAGE,
        )
    bundle = _load(args.policies)
    default = DefaultDecision(decision=args.default_decision, reviewer_group=args.default_group)
    acc = Replay(bundle, default, args.examples)
    malformed = Malformed()
    if args.source is not None:
        _from_file(args.source, acc, malformed)
    else:
        _from_server(args, acc)
    report = acc.report()
    if args.json:
        data = report.to_json()
        data["policies"] = str(args.policies)
        data["malformed_lines"] = {
            "count": malformed.count,
            "first_line": malformed.first_line,
            "first_error": malformed.first_error,
        }
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(view.report(report, str(args.policies)))
    if malformed.count:
        # On stderr as well, so a --json consumer piping stdout still sees it.
        print(
            f"signoff: {malformed.count} malformed line(s) skipped "
            f"(first at line {malformed.first_line}: {malformed.first_error})",
            file=sys.stderr,
        )
    return 0


def _load(directory: Path) -> Any:
    from signoff.policy import BundleError, load_bundle

    try:
        return load_bundle(directory)
    except BundleError as exc:
        lines = [f"policies in {directory} do not load:"]
        for error in exc.errors:
            text = str(error)
            shown = text if text.startswith(str(directory)) else f"{directory}/{text}"
            lines.append(f"  {shown}")
        raise CliError("\n".join(lines), EXIT_USAGE) from None
    except OSError as exc:
        raise CliError(f"--policies {directory}: {exc.strerror or exc}", EXIT_USAGE) from None


def _from_file(source: str, acc: Any, malformed: Malformed) -> None:
    from signoff.app.replay import recorded_from_payload
    from signoff.export import decode_line, entry_from_json

    for number, line in _lines(source):
        try:
            obj = decode_line(line)
            if isinstance(obj, dict) and len(obj) == 1 and ("checkpoint" in obj or "end" in obj):
                continue  # the export's own checkpoint and end lines: not decisions
            entry = entry_from_json(obj)
        except ValueError as exc:
            malformed.add(number, str(exc))
            continue
        if entry.type != "decision":
            continue
        try:
            rec = recorded_from_payload(
                entry.payload,
                decision_id=entry.decision_id,
                time=entry.time,
                policy_version=entry.policy_version,
            )
        except ValueError as exc:
            acc.add_unreadable(entry.decision_id or f"seq {entry.seq}", str(exc))
            continue
        acc.add(rec)


def _lines(source: str) -> Iterator[tuple[int, bytes]]:
    try:
        handle: Any = nullcontext(sys.stdin.buffer) if source == "-" else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise CliError(f"--from {source}: {exc.strerror or exc}", EXIT_USAGE) from None
    with handle as f:
        stream: IO[bytes] = f
        yield from enumerate(stream, start=1)


def _from_server(args: argparse.Namespace, acc: Any) -> None:
    from signoff.app.replay import recorded_from_payload
    from signoff.cli.audit import Client
    from signoff.cli.audit_filters import parse_filters
    from signoff.cli.remote import rpc_failure
    from signoff_client._gen import audit_pb2 as A

    if any(f.partition("=")[0] == "type" for f in args.filters):
        raise CliError("replay reads decision entries only: drop the type filter", EXIT_USAGE)
    client = Client.from_args(args)
    flt = parse_filters(args.filters, dt.datetime.now(dt.UTC))
    flt.types[:] = ["decision"]
    req = A.QueryAuditRequest(filter=flt, page_size=MAX_PAGE)
    try:
        while True:
            page = client.call("QueryAudit", req)
            for e in page.entries:
                try:
                    payload = json.loads(e.payload_json or "{}")
                    rec = recorded_from_payload(
                        payload,
                        decision_id=e.decision_id,
                        time=e.time.ToDatetime(tzinfo=dt.UTC),
                        policy_version=e.policy_version,
                    )
                except ValueError as exc:  # JSONDecodeError is a ValueError too
                    acc.add_unreadable(e.decision_id or f"seq {e.seq}", str(exc))
                    continue
                acc.add(rec)
            if not page.next_page_token:
                return
            req.page_token = page.next_page_token
    except grpc.RpcError as exc:
        message, code = rpc_failure(exc, client)
        raise CliError(message, code) from None
    finally:
        client.close()
