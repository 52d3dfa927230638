"""`signoff grants list|revoke`: a reviewer group's standing approvals on a server.

signoff grants list --group finance            # active ones, newest first
signoff grants list --group finance --all      # expired, used up and revoked too
signoff grants revoke 01a2b3c4-... --reason "too broad"
"""

from __future__ import annotations

import argparse
import functools
import json
from typing import Any

from google.protobuf import json_format

from signoff.cli.remote import (
    CliError,
    Remote,
    add_connection_arguments,
    report,
    run_command,
)
from signoff_client._gen import review_pb2 as R
from signoff_client._gen import review_pb2_grpc


class Client(Remote):
    """ListGrants and RevokeGrant with the caller's token."""

    @functools.cached_property
    def stub(self) -> review_pb2_grpc.ReviewServiceStub:
        """The service's stub on this client's channel."""
        return review_pb2_grpc.ReviewServiceStub(self.channel)


def add_parser(sub: Any) -> None:
    """Register `grants` and its subcommands on the top-level subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    add_connection_arguments(common)
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    grants = sub.add_parser("grants", help="list and revoke standing approvals on a server")
    gsub = grants.add_subparsers(dest="grants_command", required=True)
    ls = gsub.add_parser("list", parents=[common], help="one reviewer group's standing approvals")
    ls.add_argument("--group", required=True, help="the reviewer group")
    ls.add_argument("--all", action="store_true", help="also expired, used up and revoked ones")
    revoke = gsub.add_parser("revoke", parents=[common], help="end a standing approval now")
    revoke.add_argument("id", help="the grant id")
    revoke.add_argument("--reason", default="", help="kept in the audit log")


def run(args: argparse.Namespace) -> int:
    """Run one `signoff grants` subcommand; print one clear line on failure."""
    try:
        client = Client.from_args(args)
    except CliError as exc:
        return report(exc)
    return run_command(client, lambda: _run(client, args))


def _run(client: Client, args: argparse.Namespace) -> int:
    if args.grants_command == "list":
        req = R.ListGrantsRequest(reviewer_group=args.group, include_inactive=args.all)
        found = client.stub.ListGrants(req, metadata=client.metadata, timeout=client.timeout)
        for g in found.grants:
            print(_json(g) if args.json else _line(g))
        if not found.grants and not args.json:
            print(f"no {'' if args.all else 'active '}standing approvals for {args.group}")
        return 0
    req_r = R.RevokeGrantRequest(grant_id=args.id, reason=args.reason)
    g = client.stub.RevokeGrant(req_r, metadata=client.metadata, timeout=client.timeout)
    print(_json(g) if args.json else f"revoked {g.grant_id}: {g.description}")
    return 0


def _line(g: R.Grant) -> str:
    state = f"revoked by {g.revoked_by}" if g.revoked_by else f"until {_time(g.expires_at)}"
    if not g.closed_world:
        state += ", covers nothing (made before grants recorded their params)"
    return (
        f"{g.grant_id}  {g.description}  {g.uses}/{g.max_uses} used, {state}, "
        f"granted by {g.created_by} ({g.policy}/{g.rule})"
    )


def _time(ts: Any) -> str:
    return str(ts.ToDatetime().strftime("%Y-%m-%d %H:%M:%SZ"))


def _json(g: R.Grant) -> str:
    return json.dumps(json_format.MessageToDict(g), sort_keys=True)
