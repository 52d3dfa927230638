"""`signoff reviews approve ... --grant-for 1h`: a standing approval with the approval."""

from __future__ import annotations

import argparse
import json
import re

from google.protobuf import json_format, struct_pb2

from signoff.cli.remote import EXIT_USAGE, CliError
from signoff.cli.when import duration_type
from signoff_client._gen import review_pb2 as R

_BOUND = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(<=|>=|==)\s*(.+?)\s*$")


def add_arguments(act: argparse.ArgumentParser) -> None:
    """The --grant-* flags of `approve`."""
    act.add_argument(
        "--grant-for",
        type=duration_type,
        metavar="DURATION",
        help="also allow later actions like this one for this long, e.g. 1h (a standing approval)",
    )
    act.add_argument(
        "--grant-uses", type=int, default=1, help="at most this many later actions (default 1)"
    )
    act.add_argument(
        "--grant-bound",
        action="append",
        default=[],
        metavar="BOUND",
        help=(
            "a param bound, e.g. 'amount<=750' or 'currency==\"EUR\"' (repeatable); every "
            "number of the approved action needs one with <= or ==, unless the rule says "
            "grants: unbounded"
        ),
    )
    act.add_argument(
        "--grant-any-principal",
        action="store_true",
        help="for any principal (default: the approved action's principal only)",
    )


def spec(args: argparse.Namespace) -> R.GrantSpec | None:
    """The GrantSpec the flags ask for, or None; a usage error names the flag."""
    given = args.grant_bound or args.grant_any_principal or args.grant_uses != 1
    if args.grant_for is None:
        if given:
            raise CliError(
                "--grant-uses, --grant-bound and --grant-any-principal need --grant-for",
                EXIT_USAGE,
            )
        return None
    out = R.GrantSpec(
        ttl_seconds=int(args.grant_for.total_seconds()),
        max_uses=args.grant_uses,
        any_principal=args.grant_any_principal,
    )
    for text in args.grant_bound:
        match = _BOUND.match(text)
        if not match:
            raise CliError(
                f"--grant-bound {text!r}: use PATH<=NUMBER, PATH>=NUMBER or PATH==VALUE",
                EXIT_USAGE,
            )
        path, op, raw = match.groups()
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            parsed = raw  # a bare word is a string: currency==EUR
        value = struct_pb2.Value()
        json_format.ParseDict(parsed, value)
        out.bounds.add(path=path, op=op, value=value)
    return out
