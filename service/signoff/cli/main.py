"""`signoff` command line: serve, policy check|test, reviews, audit, token new."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from signoff import __version__
from signoff.cli.serve_flags import add_serve_parser


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="signoff", description="Human-in-the-loop decision service.")
    p.add_argument("--version", action="version", version=f"signoff {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    add_serve_parser(sub)

    policy = sub.add_parser("policy", help="work with policy files")
    psub = policy.add_subparsers(dest="policy_command", required=True)
    check = psub.add_parser("check", help="load and type-check a policy directory")
    check.add_argument("directory", type=Path)
    check.add_argument("--json", action="store_true", help="print the summary as JSON")
    from signoff.cli.policy_schema import add_parser as add_policy_schema

    add_policy_schema(psub)
    from signoff.cli.policy_test import add_parser as add_policy_test

    add_policy_test(psub)
    from signoff.cli.policy_analyze import add_parser as add_policy_analyze

    add_policy_analyze(psub)
    from signoff.cli.policy_diff import add_parser as add_policy_diff

    add_policy_diff(psub)

    token = sub.add_parser("token", help="manage tokens for the tokens file")
    tsub = token.add_subparsers(dest="token_command", required=True)
    new = tsub.add_parser("new", help="print a new token and the entry for the tokens file")
    new.add_argument("identity", help="the identity the token authenticates")
    new.add_argument("--role", action="append", default=[], help="a role (repeatable)")

    db = sub.add_parser("db", help="manage the database")
    dsub = db.add_subparsers(dest="db_command", required=True)
    migrate = dsub.add_parser("migrate", help="create or upgrade the schema, then exit")
    migrate.add_argument("--db", help="database URL (default sqlite:///./signoff.db)")
    migrate.add_argument("--config", type=Path, help="YAML config file")

    from signoff.cli.audit import add_parser as add_audit
    from signoff.cli.explain import add_parser as add_explain
    from signoff.cli.replay import add_parser as add_replay
    from signoff.cli.reviews import add_parser as add_reviews

    add_reviews(sub)
    from signoff.cli.grants import add_parser as add_grants

    add_grants(sub)
    add_audit(sub)
    add_explain(sub)
    add_replay(psub)
    from signoff.cli.insights import add_parser as add_insights

    add_insights(psub)
    from signoff.cli.config_cmd import add_parser as add_config

    add_config(sub)
    from signoff.cli.doctor import add_parser as add_doctor

    add_doctor(sub)
    from signoff.cli.doctor import add_health_parser

    add_health_parser(sub)
    from signoff.cli.mcp_proxy import add_parser as add_mcp_proxy

    add_mcp_proxy(sub)
    return p


# What a shell reports for a command killed by SIGPIPE (128 + 13): `signoff ... | head`.
EXIT_BROKEN_PIPE = 141


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `signoff` console script."""
    args = _parser().parse_args(argv)
    try:
        code = _dispatch(args)
        # Flush here, not at interpreter exit: a reader that left (`| head`) shows up now,
        # where it can be handled, instead of as "Exception ignored" on the way out.
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader has what it wanted. Python ignores SIGPIPE, so the write failed instead
        # of the process dying; do what the signal would have: say nothing more, exit 141.
        # stdout goes to devnull so the final flush at exit does not fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


def _dispatch(args: argparse.Namespace) -> int:
    """Run the subcommand `args` names; its exit code."""
    if args.command == "serve":
        return _serve(args)
    if args.command == "policy" and args.policy_command == "check":
        from signoff.cli.policy_check import run_check

        return run_check(args.directory, as_json=args.json)
    if args.command == "policy" and args.policy_command == "schema":
        from signoff.cli.policy_schema import run as run_policy_schema

        return run_policy_schema(args)
    if args.command == "policy" and args.policy_command == "test":
        from signoff.cli.policy_test import run as run_policy_test

        return run_policy_test(args)
    if args.command == "policy" and args.policy_command == "analyze":
        from signoff.cli.policy_analyze import run as run_policy_analyze

        return run_policy_analyze(args)
    if args.command == "policy" and args.policy_command == "diff":
        from signoff.cli.policy_diff import run as run_policy_diff

        return run_policy_diff(args)
    if args.command == "token":
        return _new_token(args.identity, args.role)
    if args.command == "db":
        return _migrate(args)
    if args.command == "reviews":
        from signoff.cli.reviews import run

        return run(args)
    if args.command == "grants":
        from signoff.cli.grants import run as run_grants

        return run_grants(args)
    if args.command == "audit":
        from signoff.cli.audit import run as run_audit

        return run_audit(args)
    if args.command == "explain":
        from signoff.cli.explain import run as run_explain

        return run_explain(args)
    if args.command == "health":
        from signoff.cli.doctor import run_health

        return run_health(args)
    if args.command == "doctor":
        from signoff.cli.doctor import run as run_doctor

        return run_doctor(args)
    if args.command == "config":
        from signoff.cli.config_cmd import run as run_config

        return run_config(args)
    if args.command == "policy" and args.policy_command == "replay":
        from signoff.cli.replay import run as run_replay

        return run_replay(args)
    if args.command == "mcp-proxy":
        from signoff.cli.mcp_proxy import run as run_mcp_proxy

        return run_mcp_proxy(args)
    if args.command == "policy" and args.policy_command == "insights":
        from signoff.cli.insights import run as run_insights

        return run_insights(args)
    return 2


def _migrate(args: argparse.Namespace) -> int:
    """Apply the schema migrations (as the schema owner) without serving."""
    from signoff.errors import SignoffError
    from signoff.ids import SystemClock
    from signoff.serving.build import build_store
    from signoff.settings.model import ConfigError, load_settings

    try:
        settings = load_settings({"db": args.db}, args.config)
    except ConfigError as exc:
        print(f"signoff: config error: {exc}", file=sys.stderr)
        return 2

    async def run() -> None:
        store = build_store(settings, SystemClock())
        await store.open()  # opening migrates, under a lock when replicas race
        await store.close()

    try:
        asyncio.run(run())
    except SignoffError as exc:
        print(f"signoff: {exc.message}", file=sys.stderr)
        return 1
    print(f"database {settings.db.split('@')[-1]} is up to date")
    return 0


def _new_token(identity: str, roles: list[str]) -> int:
    """Print a fresh token (shown once) and the tokens-file entry holding only its hash."""
    from signoff.auth import AuthConfigError, new_token, parse_roles

    try:
        parse_roles(roles)
    except AuthConfigError as exc:
        print(f"signoff: {exc}", file=sys.stderr)
        return 2
    token, digest = new_token()
    print(f"token (give it to {identity}; it is not stored anywhere): {token}", file=sys.stderr)
    quoted = ", ".join(f'"{r}"' for r in roles)
    print(f"  - sha256: {digest}\n    identity: {identity}\n    roles: [{quoted}]")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from signoff import logs
    from signoff.policy import BundleError
    from signoff.serving.workers import WorkerError, run
    from signoff.settings.model import ConfigError, load_settings

    flags = {
        "policies": args.policies,
        "db": args.db,
        "listen": args.listen,
        "http_listen": args.http_listen,
        "log_format": args.log_format,
        "log_level": args.log_level,
        "workers": args.workers,
    }
    try:
        settings = load_settings(flags, args.config)
    except ConfigError as exc:
        print(f"signoff: config error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level)
    try:
        asyncio.run(run(settings))
    except BundleError as exc:
        if len(exc.errors) == 1:  # one line: most often the directory itself is missing
            print(f"signoff: policies rejected: {exc.errors[0]}", file=sys.stderr)
            return 1
        print(f"signoff: policies in {settings.policies} rejected:", file=sys.stderr)
        for err in exc.errors:
            print(f"  {err}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"signoff: config error: {exc}", file=sys.stderr)
        return 2
    except (OSError, WorkerError) as exc:
        print(f"signoff: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
