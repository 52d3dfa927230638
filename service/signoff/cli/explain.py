"""`signoff explain`: how the policies treat one action, rule by rule, without deciding it.

    signoff explain --policies policies/ --action refund.issue --params '{"amount": 750}'
    signoff explain --server 127.0.0.1:50051 --request req.yaml --principal support-bot-7

Offline (`--policies DIR`) loads and compiles the directory and evaluates with a full trace,
as the server would at this moment with its default decision (`--default-decision`); online
(`--server`, or $SIGNOFF_SERVER when --policies is not given) calls the Explain RPC with the
bundle in force there. Neither stores anything nor opens a review.

The request: `--request FILE` (YAML or JSON, an ActionRequest with proto field names as in
*_test.yaml files), then flags override its parts: --action, --params, --principal (a JSON
object or just an id), --resource, --context, --justification. `--json` prints the
Explanation message as JSON (proto field names), the same shape offline and online.

Exit codes: 0 explained (whatever the outcome); 1 refused; 2 bad input (a flag that is not
JSON names the flag; policies that do not load print their file:line:column errors);
3 server unreachable or too slow.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import yaml
from google.protobuf import json_format

from signoff import pb
from signoff.cli.explain_view import tree
from signoff.cli.output import message_dict
from signoff.cli.remote import EXIT_USAGE, CliError, Remote, add_tls_arguments, rpc_failure
from signoff.core.explanation import explanation

if TYPE_CHECKING:
    from signoff.core.decide import Evaluation


def add_parser(sub: Any) -> None:
    """Register `explain` on the top-level subparsers."""
    p = sub.add_parser("explain", help="show how the policies treat an action, rule by rule")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--policies", type=Path, help="policy directory to evaluate offline")
    where.add_argument(
        "--server", help="HOST:PORT of a server to ask (Explain RPC; default $SIGNOFF_SERVER)"
    )
    p.add_argument("--token", help="bearer token for --server (default $SIGNOFF_TOKEN)")
    add_tls_arguments(p)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per call (default 10)")
    p.add_argument("--request", type=Path, help="ActionRequest file, YAML or JSON")
    p.add_argument("--action", help="action name, e.g. refund.issue")
    p.add_argument("--params", help="action params as a JSON object")
    p.add_argument("--principal", help="principal as a JSON object, or just its id")
    p.add_argument("--resource", help="resource as a JSON object")
    p.add_argument("--context", help="context as a JSON object")
    p.add_argument("--justification", help="the agent's justification text")
    p.add_argument(
        "--default-decision",
        choices=["review", "deny"],
        default="review",
        help="offline: what no matching rule decides (default review, as the server's)",
    )
    p.add_argument("--default-group", default="default", help="offline: its reviewer group")
    p.add_argument("--json", action="store_true", help="print the Explanation as JSON")


def run(args: argparse.Namespace) -> int:
    """Explain one request offline or on a server; print one clear line on failure."""
    try:
        req = build_request(args)
        if args.policies is not None:
            explanation = explain_offline(args.policies, req, args)
        else:
            explanation = _explain_online(req, args)
    except CliError as exc:
        print(f"signoff: {exc.message}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps(message_dict(explanation), indent=2, ensure_ascii=False))
    else:
        print(tree(explanation))
    return 0


def build_request(args: argparse.Namespace) -> pb.common.ActionRequest:
    """The ActionRequest from --request and the flags; CliError (exit 2) names the bad one."""
    data: dict[str, Any] = {}
    source = "the flags"
    if args.request is not None:
        data = _request_file(args.request)
        source = f"--request {args.request}"
    action = data.setdefault("action", {})
    if not isinstance(action, dict):
        raise CliError(f"{source}: action is not a mapping", EXIT_USAGE)
    if args.action is not None:
        action["name"] = args.action
    if args.params is not None:
        action["params"] = _json_object("--params", args.params)
    if args.principal is not None:
        text = args.principal.strip()
        data["principal"] = (
            _json_object("--principal", text) if text.startswith("{") else {"id": text}
        )
    for name in ("resource", "context"):
        if getattr(args, name) is not None:
            data[name] = _json_object(f"--{name}", getattr(args, name))
    if args.justification is not None:
        data["justification"] = args.justification
    try:
        req = json_format.ParseDict(data, pb.common.ActionRequest())
    except json_format.ParseError as exc:
        raise CliError(f"{source}: not an ActionRequest: {exc}", EXIT_USAGE) from None
    if not req.action.name:
        raise CliError(
            "give the action name: --action NAME (or action.name in --request)", EXIT_USAGE
        )
    return req


def _request_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"--request {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f":{where.line + 1}:{where.column + 1}" if where else ""
        raise CliError(f"--request {path}{at}: not YAML or JSON", EXIT_USAGE) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CliError(f"--request {path}: not a mapping (an ActionRequest)", EXIT_USAGE)
    return data


def _json_object(flag: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{flag}: not JSON: {exc.msg} at column {exc.colno}", EXIT_USAGE) from None
    if not isinstance(value, dict):
        raise CliError(f"{flag}: expected a JSON object, got {type(value).__name__}", EXIT_USAGE)
    return value


def explain_offline(
    directory: Path, req: pb.common.ActionRequest, args: argparse.Namespace
) -> pb.decision.Explanation:
    """Load `directory` and explain `req` as the server would (nothing stored)."""
    from signoff.core.decide import DefaultDecision, evaluate
    from signoff.core.validate import Limits, validate_request
    from signoff.errors import InvalidArgument
    from signoff.policy import BundleError, load_bundle
    from signoff.policy.params import check_request as check_params

    try:
        validate_request(req, Limits())
    except InvalidArgument as exc:
        raise CliError(f"invalid request: {exc}", EXIT_USAGE) from None
    try:
        bundle = load_bundle(directory)
    except BundleError as exc:
        lines = [f"policies in {directory} do not load:"]
        lines += [f"  {_display(directory, str(e))}" for e in exc.errors]
        raise CliError("\n".join(lines), EXIT_USAGE) from None
    except OSError as exc:
        raise CliError(f"--policies {directory}: {exc.strerror or exc}", EXIT_USAGE) from None
    try:
        check_params(bundle.params, req)  # the action schemas, as the server checks them
    except InvalidArgument as exc:
        raise CliError(f"invalid request: {exc}", EXIT_USAGE) from None
    default = DefaultDecision(decision=args.default_decision, reviewer_group=args.default_group)
    now = dt.datetime.now(dt.UTC)
    ev = evaluate(bundle, req, now, default, trace=True)
    return to_explanation(ev, bundle.version, now)


def _display(directory: Path, error: str) -> str:
    # Errors carry paths relative to the directory; prefix it so editors can jump there.
    return error if error.startswith(str(directory)) else f"{str(directory).rstrip('/')}/{error}"


def to_explanation(ev: Evaluation, version: str, now: dt.datetime) -> pb.decision.Explanation:
    """An Evaluation with traces as the Explanation message the Explain RPC returns."""
    return explanation(ev, version, now)


def _explain_online(
    req: pb.common.ActionRequest, args: argparse.Namespace
) -> pb.decision.Explanation:
    from signoff_client._gen import decision_pb2_grpc

    client = Remote.from_args(args)
    try:
        stub = decision_pb2_grpc.DecisionServiceStub(client.channel)
        result: pb.decision.Explanation = stub.Explain(
            req, metadata=client.metadata, timeout=args.timeout
        )
        return result
    except grpc.RpcError as exc:
        message, code = rpc_failure(exc, client)
        raise CliError(message, code) from None
    finally:
        client.close()
