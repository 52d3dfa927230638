"""`signoff policy diff OLD NEW`: which requests change outcome between two policy bundles.

Per action glob, the regions of requests (recorded or not) whose outcome or reviewer group
differs, each with one example request evaluated by the engine in both bundles and printed
as a test case of NEW. The complement of `policy replay`, which re-decides recorded traffic.
Exit status, as diff(1): 0 no difference, 1 differences found (or a broken bundle), 2 bad
arguments or the solver (z3-solver, the `analyze` extra) not installed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from signoff.cli.output import table
from signoff.cli.policy_analyze import bad_timeout, refused
from signoff.policy import Bundle, BundleError, load_bundle

if TYPE_CHECKING:
    from signoff.analysis.diff import Change, Diff


def add_parser(psub: Any) -> None:
    """Register `policy diff` under the `policy` subcommands."""
    cmd = psub.add_parser("diff", help="which requests change outcome between two bundles")
    cmd.add_argument("old", type=Path, metavar="OLD")
    cmd.add_argument("new", type=Path, metavar="NEW")
    cmd.add_argument("--json", action="store_true", help="print a JSON report instead")
    cmd.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time limit of each solver question; beyond it the diff says it stopped",
    )


def _load(directory: Path) -> Bundle | None:
    try:
        return load_bundle(directory)
    except BundleError as exc:
        for e in exc.errors:
            print(f"{str(directory).rstrip('/')}/{e}", file=sys.stderr)
        print(f"{len(exc.errors)} error(s) in {directory}; nothing compared", file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    """Compare the two bundles; print the table (or JSON); return the exit status."""
    try:
        from signoff.analysis.diff import diff
    except ModuleNotFoundError as exc:
        return refused(exc)
    if (status := bad_timeout(args.timeout)) is not None:
        return status
    old, new = _load(args.old), _load(args.new)
    if old is None or new is None:
        return 1
    result = diff(old, new, args.timeout)
    if args.json:
        print(json.dumps(json_report(result, old.version, new.version), indent=2))
    else:
        print(diff_text(result))
    return 1 if result.changes else 0


def example_case(change: Change) -> str:
    """The example request as a test case of NEW (what NEW decides on it)."""
    expect: dict[str, Any] = {"outcome": change.new.outcome}
    if change.new.reviewers:
        expect["reviewer_group"] = change.new.reviewers
    expect["rule"] = change.new.rule
    name = f"{change.glob}: was {change.old.outcome}, now {change.new.outcome}"
    case = {"name": name, "request": change.example, "expect": expect}
    return yaml.safe_dump([case], sort_keys=False, allow_unicode=True).rstrip()


def diff_text(result: Diff) -> str:
    """The table of changed regions, the examples as test cases, what was not analysed."""
    parts: list[str] = []
    if result.changes:
        rows = [
            (c.glob, str(c.old), str(c.new), "yes" if c.confirmed else f"NO: {c.message}")
            for c in result.changes
        ]
        parts.append(table(("actions", "old", "new", "confirmed by the engine"), rows))
        for c in result.changes:
            parts.append(f"example ({c.glob}: {c.old} -> {c.new}):\n{example_case(c)}")
    skipped = [
        f"NOT ANALYSED  {s.side}: {s.file}:{s.line} rule {s.rule}: {s.message}"
        if s.side
        else f"NOT ANALYSED  actions {s.rule}: {s.message}"
        for s in result.skipped
    ]
    if skipped:
        parts.append("\n".join(skipped))
    confirmed = sum(c.confirmed for c in result.changes)
    verdict = "differ" if result.changes else "no difference"
    parts.append(
        f"{verdict}: {len(result.changes)} region(s) ({confirmed} confirmed) over "
        f"{len(result.globs)} action glob(s), {len(result.skipped)} not analysed, "
        f"in {result.seconds:.2f}s"
    )
    return "\n\n".join(parts)


def json_report(result: Diff, old_version: str, new_version: str) -> dict[str, Any]:
    """The diff as JSON-like data."""
    return {
        "old_version": old_version,
        "new_version": new_version,
        "globs": list(result.globs),
        "seconds": round(result.seconds, 6),
        "changes": [
            {
                "actions": c.glob,
                "old": dataclasses.asdict(c.old),
                "new": dataclasses.asdict(c.new),
                "example": c.example,
                "confirmed": c.confirmed,
                "message": c.message,
            }
            for c in result.changes
        ],
        "not_analysed": [dataclasses.asdict(s) for s in result.skipped],
    }
