"""`signoff audit`: query, show, export, verify, checkpoints and proofs of the audit log.

Filters are `key=value`: since and until (`now`, a duration ago: -2h, 30m, 7d, or RFC 3339,
a date; no zone means UTC; see signoff.cli.when), type and outcome (repeatable or
comma-separated; outcome is allow, review, deny or AUTO_ALLOW...), action (a glob: `*`
matches any run of characters; at most 256 characters and 8 `*`), principal, reviewer,
group, rule, state, policy, decision, review, request. The token needs the auditor role.

`--timeout` is per call: 10s by default, 60s per verified range; an export has no deadline
unless one is given. Exit codes: 0 ok; 1 refused, not found, or verification failed;
2 bad input; 3 server unreachable, too slow, or gone during an export.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import grpc
from google.protobuf.message import Message

from signoff.cli import audit_proof, audit_receipt, audit_witness, short_ids
from signoff.cli import audit_view as view
from signoff.cli.audit_filters import FILTERS, parse_filters
from signoff.cli.remote import (
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    Remote,
    add_connection_arguments,
    report,
    rpc_failure,
    run_command,
)
from signoff_client._gen import audit_pb2 as A
from signoff_client._gen import audit_pb2_grpc, review_pb2_grpc
from signoff_client._gen import review_pb2 as R

MAX_PAGE = 1000  # the server's largest page
VERIFY_BATCH = 100_000


class Client(Remote):
    """The AuditService over one channel, with the caller's token."""

    @functools.cached_property
    def stub(self) -> audit_pb2_grpc.AuditServiceStub:
        """The service's stub on this client's channel."""
        return audit_pb2_grpc.AuditServiceStub(self.channel)

    def call(self, method: str, req: Message, timeout: float | None = 10.0) -> Any:
        """One AuditService call; `--timeout` overrides the method's default deadline."""
        rpc = getattr(self.stub, method)
        return rpc(req, metadata=self.metadata, timeout=self.timeout or timeout)

    def review_terms(self, review_id: str) -> R.Review | None:
        """The review itself (approvals, deadline), if the caller may read it; else None."""
        stub = review_pb2_grpc.ReviewServiceStub(self.channel)
        try:
            req = R.GetReviewRequest(review_id=review_id)
            return stub.GetReview(req, metadata=self.metadata, timeout=self.timeout or 10.0)
        except grpc.RpcError:
            return None


def add_parser(sub: Any) -> None:
    """Register `audit` and its subcommands on the top-level subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    add_connection_arguments(
        common,
        token_help="bearer token with the auditor role ($SIGNOFF_TOKEN)",
        timeout=None,
        timeout_help="seconds per call",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    known = ", ".join(FILTERS)

    audit = sub.add_parser("audit", help="query, export and verify the audit log")
    asub = audit.add_subparsers(dest="audit_command", required=True)

    q = asub.add_parser("query", parents=[common], help="entries matching filters")
    q.add_argument("filters", nargs="*", metavar="FILTER", help=f"key=value; keys: {known}")
    q.add_argument("--newest", action="store_true", help="newest first (default oldest)")
    q.add_argument("--limit", type=int, default=50, help="entries per page (default 50)")
    q.add_argument("--all-pages", action="store_true", help="follow every page")

    show = asub.add_parser("show", parents=[common], help="the story of one action")
    show.add_argument(
        "id", help="a decision, review or request id, or a unique prefix/suffix of a recent one"
    )

    ex = asub.add_parser("export", parents=[common], help="stream entries to a file or stdout")
    ex.add_argument("filters", nargs="*", metavar="FILTER", help=f"key=value; keys: {known}")
    ex.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    ex.add_argument("-o", "--output", default="-", help="file to write (default - = stdout)")
    ex.add_argument("--progress", action="store_true", help="progress on stderr even if no TTY")

    v = asub.add_parser("verify", parents=[common], help="check the hash chain and checkpoints")
    v.add_argument("file", nargs="?", type=Path, help="an exported JSONL file (offline)")
    v.add_argument(
        "--public-key",
        type=Path,
        action="append",
        help="trusted PEM public key for a FILE's signatures; repeat it for the keys the "
        "server signed with before a rotation",
    )
    start = v.add_mutually_exclusive_group()
    start.add_argument("--from", dest="from_seq", type=int, help="first seq to check")
    start.add_argument(
        "--from-checkpoint", action="store_true", help="start at the last signed checkpoint"
    )
    v.add_argument(
        "--witness-key",
        type=Path,
        action="append",
        help="a witness's PEM public key (repeat it): the FILE's newest checkpoint must carry "
        "--quorum valid co-signatures of these keys",
    )
    v.add_argument("--quorum", type=int, help="co-signatures required (default: every key)")
    v.add_argument(
        "--trusted-head",
        metavar="SIZE:ROOT",
        help="the newest head a witness co-signed: the FILE must reach it with that root",
    )
    v.add_argument("--to", dest="to_seq", type=int, help="last seq to check (default the head)")
    v.add_argument("--batch", type=int, default=VERIFY_BATCH, help="entries per server call")
    v.add_argument("--progress", action="store_true", help="progress on stderr even if no TTY")

    pr = asub.add_parser(
        "proof", parents=[common], help="prove an entry is in the signed log, offline checks"
    )
    audit_proof.add_arguments(pr)

    rc = asub.add_parser(
        "receipt",
        parents=[common],
        help="upgrade a receipt with the proof its allow is in the witnessed log, or check one",
    )
    audit_receipt.add_arguments(rc)

    wi = asub.add_parser(
        "witness",
        parents=[common],
        help="co-sign the log's consistent tree heads from outside it (role witness)",
    )
    audit_witness.add_arguments(wi)

    cp = asub.add_parser("checkpoints", parents=[common], help="signed checkpoints and the key")
    cp.add_argument("--from", dest="from_seq", type=int, default=0, help="from this seq on")
    cp.add_argument("--limit", type=int, default=100, help="the newest N (default 100)")
    cp.add_argument("--public-key-out", type=Path, help="save the public key PEM to this file")


def run(args: argparse.Namespace) -> int:
    """Run one `signoff audit` subcommand; print one clear line on failure."""
    try:
        client = Client.from_args(args)
    except CliError as exc:
        return report(exc)
    return run_command(client, lambda: COMMANDS[args.audit_command](client, args))


# -- commands --------------------------------------------------------------------------------


def _query(client: Client, args: argparse.Namespace) -> int:
    if not 0 < args.limit <= MAX_PAGE:
        raise CliError(f"--limit must be between 1 and {MAX_PAGE}", EXIT_USAGE)
    req = A.QueryAuditRequest(
        filter=parse_filters(args.filters, _now()), descending=args.newest, page_size=args.limit
    )
    found: list[A.AuditEntry] = []
    more = False
    while True:
        page = client.call("QueryAudit", req)
        found.extend(page.entries)
        if not page.next_page_token:
            break
        if not args.all_pages:
            more = True
            break
        req.page_token = page.next_page_token
    if args.json:
        for e in found:
            print(view.json_line(e))
        return 0
    print(view.listing(found))
    if more:
        print("more on the next page: add --all-pages, or raise --limit")
    return 0


def _show(client: Client, args: argparse.Namespace) -> int:
    entries = story_entries(client, args.id)
    if not entries and not short_ids.is_full(args.id):
        entries = story_entries(client, _full_id(client, args.id))
    if not entries:
        raise CliError(f"no audit entries for {args.id} (looked for a decision, review, request)")
    if args.json:
        for e in entries:
            print(view.json_line(e))
        return 0
    # review.opened entries do not record the approvals needed or the deadline: take them
    # from the review itself when the caller may read it (the view says where they came from).
    opened = [e for e in entries if e.type == "review.opened"]
    terms = {e.review_id: client.review_terms(e.review_id) for e in opened}
    print(view.story(entries, {k: v for k, v in terms.items() if v is not None}))
    return 0


def _full_id(client: Client, ref: str) -> str:
    """The decision or review id that `ref` is a unique prefix or suffix of, among recent ones.

    One page of the newest entries only, as `signoff reviews` does: a short id names
    something recent (listings show the last 8 characters), and never scans the whole log.
    """
    page = client.call("QueryAudit", A.QueryAuditRequest(descending=True, page_size=MAX_PAGE))
    # A decision and its review are one story: their UUIDv7s share leading characters, so
    # a prefix often matches both, and that is not an ambiguity. Count stories, not ids.
    story = {e.review_id: e.decision_id for e in page.entries if e.review_id and e.decision_id}
    found: dict[str, str] = {}
    for e in page.entries:
        for kind, full in (("decision", e.decision_id), ("review", e.review_id)):
            if full and short_ids.matches(ref, full):
                found.setdefault(story.get(full, full), f"{kind} of {e.action_name}")
    if not found:
        # Not a short id of anything recent: let the caller say what was looked for.
        return ref
    where = f"decision or review among the {MAX_PAGE} newest entries"
    return short_ids.one(ref, found, "decision or review", where)


def story_entries(client: Client, ref: str) -> list[A.AuditEntry]:
    """Every entry of the action(s) `ref` names, following the ids they share, by seq."""
    by_seq: dict[int, A.AuditEntry] = {}
    asked: set[tuple[str, str]] = set()
    todo = {("decision_id", ref), ("review_id", ref), ("request_id", ref)}
    # Review entries may carry only the review id and a decision only its own: follow the
    # ids found until nothing new turns up, so any of the three ids tells the whole story.
    while todo:
        field, value = todo.pop()
        asked.add((field, value))
        for e in _all_pages(client, A.AuditFilter(**{field: value})):
            by_seq[e.seq] = e
            for f in ("decision_id", "review_id"):
                found = (f, getattr(e, f))
                if found[1] and found not in asked:
                    todo.add(found)
    return [by_seq[s] for s in sorted(by_seq)]


def _all_pages(client: Client, f: A.AuditFilter) -> Iterator[A.AuditEntry]:
    req = A.QueryAuditRequest(filter=f, page_size=MAX_PAGE)
    while True:
        page = client.call("QueryAudit", req)
        yield from page.entries
        if not page.next_page_token:
            return
        req.page_token = page.next_page_token


def _export(client: Client, args: argparse.Namespace) -> int:
    fmt = A.EXPORT_FORMAT_CSV if args.format == "csv" else A.EXPORT_FORMAT_JSONL
    req = A.ExportAuditRequest(filter=parse_filters(args.filters, _now()), format=fmt)
    progress = view.Progress(sys.stderr, "exported", forced=args.progress)
    to_stdout = args.output == "-"
    out, tmp = (sys.stdout.buffer, None) if to_stdout else _temporary(Path(args.output))
    count, received, tail = 0, False, b""
    try:
        for chunk in client.call("ExportAudit", req, None):
            out.write(chunk.data)
            count, received = chunk.entries, True
            tail = (tail + chunk.data)[-4096:]
            progress.update(count)
        # A JSONL export ends with its end line; a stream that stopped short of it without
        # an error is still a short file (belt and braces: the server should have failed it).
        if fmt == A.EXPORT_FORMAT_JSONL and not tail.rstrip().rsplit(b"\n", 1)[-1].startswith(
            b'{"end":'
        ):
            raise CliError(f"export ended without its end line after {count} entries")
        out.flush()
        if tmp is not None:
            os.fsync(out.fileno())
            out.close()
            # Renamed into place only now: an interrupted export never leaves a short FILE.
            os.replace(tmp, args.output)
            tmp = None
    except grpc.RpcError as exc:
        progress.clear()
        if not received:
            raise  # refused or unreachable before anything was written: the plain error
        _, code = rpc_failure(exc, client)
        status = exc.code().name.lower() if isinstance(exc, grpc.Call) else "error"
        details = (exc.details() if isinstance(exc, grpc.Call) else None) or str(exc)
        what = "stdout is incomplete" if to_stdout else f"{args.output} was not written"
        raise CliError(
            f"export interrupted after {count} entries ({status}: {details}); {what}", code
        ) from None
    except BrokenPipeError:
        raise  # the reader (`| head`) left: the entry point (cli/main.py) handles it
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            out.close()
            tmp.unlink(missing_ok=True)
    progress.done(count, "" if to_stdout else f" to {args.output}", always=not to_stdout)
    return 0


def _temporary(path: Path) -> tuple[IO[bytes], Path]:
    """A new file next to `path` (same filesystem, so the final rename is atomic)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        return open(tmp, "xb"), tmp
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None


def _verify(client: Client, args: argparse.Namespace) -> int:
    if args.file is not None:
        if args.from_seq is not None or args.from_checkpoint or args.to_seq is not None:
            raise CliError("--from, --from-checkpoint and --to are for the server", EXIT_USAGE)
        return _verify_file(args)
    if args.public_key is not None:
        raise CliError("--public-key verifies a FILE; give the exported file", EXIT_USAGE)
    witnesses = _witnesses(args)
    if args.batch < 1:
        raise CliError("--batch must be positive", EXIT_USAGE)
    head = client.call("QueryAudit", A.QueryAuditRequest(descending=True, page_size=1)).entries
    last = head[0].seq if head else 0
    start = max(args.from_seq or 1, 1)
    if args.from_checkpoint:
        cps = client.call("GetCheckpoints", A.GetCheckpointsRequest(limit=1)).checkpoints
        start = cps[-1].seq if cps else 1
    end = args.to_seq or last
    progress = view.Progress(sys.stderr, "verified", forced=args.progress, total=end - start + 1)
    total = A.VerifyAuditResponse(ok=True)
    lo = start
    while True:
        hi = lo + args.batch - 1
        # The last call runs to the head itself (to_seq 0), where the server also checks
        # that no signed checkpoint lies beyond the log's end (a truncated tail).
        final = hi >= end
        to_seq = (args.to_seq or 0) if final else hi
        first = lo == start
        if args.from_checkpoint and first:
            req = A.VerifyAuditRequest(from_last_checkpoint=True, to_seq=to_seq)
        else:
            req = A.VerifyAuditRequest(from_seq=lo, to_seq=to_seq)
        # The call that reaches the head also checks every review, grant and decision row
        # against the chain (about as long again as walking it): a longer deadline.
        r = client.call("VerifyAudit", req, 600.0 if final and not args.to_seq else 60.0)
        if first:
            total.from_seq = r.from_seq
        total.entries_checked += r.entries_checked
        total.checkpoints_verified += r.checkpoints_verified
        progress.update(total.entries_checked)
        if not r.ok or final:
            total.ok, total.first_bad_seq, total.problem = r.ok, r.first_bad_seq, r.problem
            total.head_seq, total.head_hash = r.head_seq, r.head_hash
            break
        # Each range trusts the stored hash of the entry before it, which the previous
        # range has just checked: contiguous ranges verify as one walk would.
        lo = hi + 1
    progress.clear()
    print(view.verify_json(total) if args.json else view.verify_report(total))
    if total.ok and witnesses is not None:
        problem = audit_witness.live_problem(client, witnesses)
        print(f"NOT OK: not witnessed: {problem}" if problem else "ok: witnessed")
        return EXIT_REFUSED if problem else 0
    return 0 if total.ok else EXIT_REFUSED


def _verify_file(args: argparse.Namespace) -> int:
    from signoff.core.checkpoints import SigningKeyError, load_public_key
    from signoff.export import verify_export

    keys = None
    if args.public_key is not None:
        try:
            keys = [load_public_key(path) for path in args.public_key]
        except SigningKeyError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
    try:
        size = args.file.stat().st_size
        handle = open(args.file, "rb")  # noqa: SIM115 - closed below, after streaming
    except OSError as exc:
        raise CliError(f"{args.file}: {exc.strerror or exc}", EXIT_USAGE) from None
    witnesses = _witnesses(args)
    progress = view.Progress(sys.stderr, "read", forced=args.progress, total=size, unit="bytes")
    with handle:
        report = verify_export(progress.counting(handle), keys, witnesses=witnesses)
    progress.clear()
    out = view.file_json(report, keys) if args.json else view.file_report(report, keys, args.file)
    print(out)
    return 0 if report.ok else EXIT_REFUSED


def _witnesses(args: argparse.Namespace) -> Any:
    """The --witness-key / --quorum / --trusted-head trust, or None without witness keys."""
    from signoff.core.checkpoints import SigningKeyError, load_public_key
    from signoff.export.witnessed import Witnesses, parse_head

    if not args.witness_key:
        if args.quorum is not None or args.trusted_head:
            raise CliError("--quorum and --trusted-head need --witness-key", EXIT_USAGE)
        return None
    try:
        keys = [load_public_key(path) for path in args.witness_key]
    except SigningKeyError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    quorum = len(keys) if args.quorum is None else args.quorum
    if not 1 <= quorum <= len(keys):
        raise CliError(f"--quorum must be 1-{len(keys)} (the witness keys given)", EXIT_USAGE)
    try:
        head = parse_head(args.trusted_head) if args.trusted_head else None
    except ValueError as exc:
        raise CliError(f"--trusted-head: {exc}", EXIT_USAGE) from None
    return Witnesses(keys, quorum, head)


def _checkpoints(client: Client, args: argparse.Namespace) -> int:
    if not 0 < args.limit <= 10_000:
        raise CliError("--limit must be between 1 and 10000", EXIT_USAGE)
    resp = client.call(
        "GetCheckpoints", A.GetCheckpointsRequest(from_seq=args.from_seq, limit=args.limit)
    )
    if args.public_key_out is not None:
        if not resp.public_key_pem:
            raise CliError("the server has no signing key: nothing to save")
        _write_atomically(args.public_key_out, resp.public_key_pem.encode())
        print(f"public key {resp.key_id} saved to {args.public_key_out}", file=sys.stderr)
    if args.json:
        for c in resp.checkpoints:
            print(view.json_line(c))
    else:
        print(view.checkpoints(resp, args.limit))
    return 0


def _write_atomically(path: Path, data: bytes) -> None:
    out, tmp = _temporary(path)
    try:
        with out:
            out.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


COMMANDS: dict[str, Callable[[Client, argparse.Namespace], int]] = {
    "query": _query,
    "show": _show,
    "export": _export,
    "verify": _verify,
    "checkpoints": _checkpoints,
    "proof": audit_proof.run,
    "receipt": audit_receipt.run,
    "witness": audit_witness.run,
}
