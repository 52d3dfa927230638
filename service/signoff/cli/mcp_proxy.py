"""`signoff mcp-proxy`: put Signoff in front of the MCP servers an agent already uses."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signoff.cli.remote import DEFAULT_SERVER, EXIT_UNAVAILABLE, EXIT_USAGE, TLS_OPTIONS
from signoff_client._extras import install_hint

if TYPE_CHECKING:
    from signoff.mcp_proxy.config import ProxyConfig, UpstreamConfig
    from signoff.mcp_proxy.schemas import Tool


def add_parser(sub: Any) -> None:
    """Register `signoff mcp-proxy`."""
    p = sub.add_parser(
        "mcp-proxy",
        help="an MCP server that fronts MCP servers and asks Signoff before every tool call",
        description="Serve MCP (stdio by default) in front of the upstream MCP servers of "
        "--config; every tool call is the Signoff action mcp.<server>.<tool>.",
    )
    p.add_argument("--config", type=Path, required=True, help="the proxy's YAML config file")
    p.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve streamable HTTP on HOST:PORT (path /mcp; port 0 picks one) instead of stdio",
    )
    p.add_argument(
        "--server",
        help="HOST:PORT of Signoff (default: the config's signoff.serving.server, $SIGNOFF_SERVER, "
        f"{DEFAULT_SERVER})",
    )
    p.add_argument(
        "--token", help="bearer token (default: the config's signoff.token, $SIGNOFF_TOKEN)"
    )
    for name, env, text in TLS_OPTIONS:
        p.add_argument(
            f"--{name}",
            type=Path,
            help=f"{text} (default: the config's signoff.{name}, ${env})",
        )
    p.add_argument(
        "--schemas",
        action="store_true",
        help="print a policy file declaring the params of every upstream tool (from its "
        "inputSchema, in the subset action schemas support; each thing dropped is named on "
        "stderr), then exit",
    )
    p.add_argument(
        "--upstream",
        action="append",
        metavar="NAME",
        help="with --schemas: only this upstream of the config (repeat for more)",
    )
    p.add_argument("--log-format", choices=["text", "json"], default="text")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")


def run(args: argparse.Namespace) -> int:
    """Entry point: exit 2 on a bad config or a missing SDK, 3 when an upstream cannot start."""
    try:
        import mcp  # noqa: F401
    except ImportError:
        print(
            f"signoff: mcp-proxy needs the MCP Python SDK, which is not installed: "
            f"{install_hint('signoff', 'mcp')}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from signoff import logs
    from signoff.mcp_proxy.config import McpConfigError, load_config
    from signoff.mcp_proxy.serve import serve
    from signoff.mcp_proxy.upstreams import UpstreamError

    try:
        config = load_config(args.config)
    except McpConfigError as exc:
        print(f"signoff: config error:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.schemas or args.upstream:
        if not args.schemas:
            print("signoff: --upstream goes with --schemas", file=sys.stderr)
            return EXIT_USAGE
        return _print_schemas(config, args.upstream or [])
    http: tuple[str, int] | None = None
    if args.http is not None:
        host, sep, port = args.http.rpartition(":")
        if not sep or not port.isdigit() or not host:
            print(f"signoff: --http: expected HOST:PORT, got {args.http!r}", file=sys.stderr)
            return EXIT_USAGE
        http = (host.strip("[]"), int(port))
        from signoff.net import is_loopback

        if not is_loopback(http[0]) and config.http_token is None:
            print(
                f"signoff: --http {args.http} is reachable from other machines, which would "
                "call tools as the configured principal: set http_token in the config "
                "(clients then send Authorization: Bearer <http_token>)",
                file=sys.stderr,
            )
            return EXIT_USAGE
    if args.token is not None:
        config = config.model_copy(
            update={"signoff": config.signoff.model_copy(update={"token": args.token})}
        )
    elif config.signoff.token is None and os.environ.get("SIGNOFF_TOKEN"):
        config = config.model_copy(
            update={
                "signoff": config.signoff.model_copy(update={"token": os.environ["SIGNOFF_TOKEN"]})
            }
        )
    config, tls_origins = _tls_files(config, args)
    target = (
        args.server or config.signoff.server or os.environ.get("SIGNOFF_SERVER") or DEFAULT_SERVER
    )
    logs.configure(args.log_format, args.log_level)
    try:
        asyncio.run(serve(config, target, http, tls_origins))
    except McpConfigError as exc:
        print(f"signoff: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UpstreamError as exc:
        print(f"signoff: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except OSError as exc:  # e.g. the --http port is taken
        print(f"signoff: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return 130
    return 0


def _print_schemas(config: ProxyConfig, names: list[str]) -> int:
    """`--schemas`: 0 when every tool got its schema, 1 when one got none (the file is
    written all the same), 2 for an unknown --upstream, 3 when an upstream cannot start."""
    from signoff.mcp_proxy.schemas import policy_file
    from signoff.mcp_proxy.upstreams import UpstreamError

    known = [u.name for u in config.upstreams]
    unknown = [n for n in names if n not in known]
    if unknown:
        print(
            f"signoff: --upstream {unknown[0]}: not in the config (upstreams: {', '.join(known)})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    chosen = [u for u in config.upstreams if not names or u.name in names]
    try:
        tools = asyncio.run(_listed(chosen))
    except UpstreamError as exc:
        print(f"signoff: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    text, notes = policy_file([u.name for u in chosen], tools)
    sys.stdout.write(text)
    for note in notes:
        print(f"signoff: {note}", file=sys.stderr)
    return 1 if any(n.message.endswith("no schema written") for n in notes) else 0


async def _listed(upstreams: list[UpstreamConfig]) -> list[Tool]:
    """Every tool of the upstreams, each started, listed and stopped in turn."""
    from signoff.mcp_proxy.schemas import Tool
    from signoff.mcp_proxy.upstreams import Upstream

    tools: list[Tool] = []
    for config in upstreams:
        upstream = Upstream(config)
        try:
            await upstream.start()
            tools += [Tool(config.name, t.name, t.input_schema) for t in upstream.tools]
        finally:
            await upstream.close()
    return tools


def _tls_files(config: ProxyConfig, args: argparse.Namespace) -> tuple[ProxyConfig, dict[str, str]]:
    """The config with --ca/--cert/--key over its signoff.ca/cert/key, and the variables
    under both; and where each file not from the config came from (for errors)."""
    files: dict[str, Path] = {}
    origins: dict[str, str] = {}
    for name, env, _ in TLS_OPTIONS:
        if getattr(args, name) is not None:
            files[name], origins[name] = getattr(args, name), f"--{name}"
        elif getattr(config.signoff, name) is None and os.environ.get(env):
            files[name], origins[name] = Path(os.environ[env]), f"${env}"
    signoff = config.signoff.model_copy(update=files)
    return config.model_copy(update={"signoff": signoff}), origins
