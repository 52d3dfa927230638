"""docs/agents.md's fake payments MCP server (examples/mcp_payments.py) with what tests need on
top: `crash` (kills the process mid-call), `pid`, a ledger resource and resource template
with completions, subscriptions and a log level, `export_ledger` (reports progress),
`enable_chargebacks` (adds a tool), `get_ledger_news` (notifies of everything else), a
start that fails or hangs, and HTTP with an API key.

Run: python tests/e2e/mcp_upstream_refund.py [--name NAME] [--http PORT] [--exit-at-start]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

if "--hang-at-start" in sys.argv:
    # Before the SDK's imports, which take most of a second on a loaded machine: the proxy's
    # connect_timeout must find this line in stderr however slow the start is.
    print("payments upstream: waiting for the ledger lock", file=sys.stderr, flush=True)
    threading.Event().wait()

import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import Context
from mcp.server.stdio import stdio_server

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mcp_payments.py"


def main() -> None:
    """Parse the flags and serve."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="payments")
    parser.add_argument("--http", type=int)
    parser.add_argument("--exit-at-start", action="store_true")
    parser.add_argument("--hang-at-start", action="store_true", help="never answer")
    parser.add_argument("--api-key", help="HTTP only: refuse requests without X-Api-Key: KEY")
    parser.add_argument("--tools-only", action="store_true", help="one tool, nothing else")
    args = parser.parse_args()
    if args.exit_at_start:
        print("payments upstream: PAYMENTS_API_KEY is not set", file=sys.stderr)
        sys.exit(1)
    if args.tools_only:
        asyncio.run(serve_tools_only(args.name))
        return
    spec = importlib.util.spec_from_file_location("mcp_payments", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    server = example.build(args.name)

    @server.tool()
    def crash(reason: str = "on purpose") -> str:
        """Make this server's process die mid-call."""
        print(f"payments upstream crashing: {reason}", file=sys.stderr, flush=True)
        os._exit(3)

    @server.resource(f"ledger://{args.name}/summary", mime_type="text/plain")
    def ledger_summary() -> str:
        """Totals of the ledger."""
        return f"{args.name}: 3 refunds today"

    passthrough(server, args.name)

    @server.tool()
    async def enable_chargebacks(ctx: Context) -> str:
        """Add the `chargeback` tool, and tell the client the tool list changed."""

        def chargeback(account: str) -> str:
            """Dispute a card payment of `account`."""
            return f"chargeback opened for {account}"

        server.add_tool(chargeback)
        await ctx.session.send_tool_list_changed()
        return "chargebacks enabled"

    server.tool()(pid)

    @server.tool()
    async def export_ledger(ctx: Context) -> str:
        """Export the ledger, reporting progress in two steps."""
        await ctx.report_progress(1, 2, "ledger: half exported")
        await ctx.report_progress(2, 2, "ledger: exported")
        return "ledger exported"

    if args.http is not None:
        asyncio.run(serve_http(server, args.http, args.api_key))
    else:
        server.run()


def passthrough(server: Any, name: str) -> None:
    """What the proxy passes through: a template with completions, subscriptions, a log
    level, and `get_ledger_news`, which sends one notification of each kind."""
    subscribed: list[str] = []
    level: list[str] = ["info"]
    days = ["monday", "tuesday", "wednesday"]

    @server.resource(f"ledger://{name}/day/{{day}}", mime_type="text/plain")
    def ledger_day(day: str) -> str:
        """The ledger of one day."""
        return f"{name}: refunds of {day}"

    @server.prompt()
    def refund_reply(account: str) -> str:
        """A reply to a customer who asks about their refund."""
        return f"Dear {account}, your refund is on its way."

    @server.completion()
    async def complete(ref: Any, argument: Any, context: Any) -> types.Completion:
        if isinstance(ref, types.PromptReference):
            values = [f"acct_{name}_1", f"acct_{name}_2"]
        else:
            values = [d for d in days if d.startswith(argument.value)]
        return types.Completion(values=[v for v in values if v.startswith(argument.value)])

    async def subscribe(ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
        subscribed.append(str(params.uri))
        return types.EmptyResult()

    async def unsubscribe(ctx: Any, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        subscribed.remove(str(params.uri))
        return types.EmptyResult()

    async def set_level(ctx: Any, params: types.SetLevelRequestParams) -> types.EmptyResult:
        level[0] = params.level
        return types.EmptyResult()

    lowlevel = server._lowlevel_server  # MCPServer has no decorators for these
    lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler(
        "resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe
    )
    lowlevel.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)

    @server.tool(annotations=types.ToolAnnotations(read_only_hint=True))
    async def get_ledger_news(ctx: Context) -> str:
        """Log (debug only at that level; info and warning always), add a prompt, notify
        of the lists' changes and of every subscribed resource; answer what is subscribed."""
        if level[0] == "debug":
            await _log(ctx, "debug", f"{name}: reading the ledger")
        await _log(ctx, "info", f"{name}: 3 new refunds")
        await _log(ctx, "warning", f"{name}: 1 refund over the limit")

        def chargeback_reply(account: str) -> str:
            """A reply to a customer who disputes a payment."""
            return f"Dear {account}, we opened a chargeback."

        server.prompt()(chargeback_reply)
        await ctx.session.send_prompt_list_changed()
        await ctx.session.send_resource_list_changed()
        for uri in subscribed:
            await ctx.session.send_resource_updated(uri)
        return "subscribed: " + (", ".join(subscribed) or "nothing")


def pid() -> int:
    """This server's process id."""
    return os.getpid()


async def _log(ctx: Context, level: Any, data: str) -> None:
    params = types.LoggingMessageNotificationParams(level=level, data=data, logger="ledger")
    await ctx.session.send_notification(types.LoggingMessageNotification(params=params))


async def serve_tools_only(name: str) -> None:
    """A low-level server with the one tool `pid` (MCPServer always has prompts and resources)."""

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        tool = types.Tool(name="pid", description=pid.__doc__, input_schema={"type": "object"})
        return types.ListToolsResult(tools=[tool])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(text=str(pid()))])

    server: Server[Any] = Server(name, on_list_tools=list_tools, on_call_tool=call_tool)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


async def serve_http(server: Any, port: int, api_key: str | None) -> None:
    """Streamable HTTP on 127.0.0.1:port (0: any), the URL printed on stdout once bound."""
    import uvicorn

    mcp_app = server.streamable_http_app()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        if scope["type"] == "http" and api_key and headers.get(b"x-api-key") != api_key.encode():
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"missing or wrong X-Api-Key"})
            return
        await mcp_app(scope, receive, send)

    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen(16)
    print(f"http://127.0.0.1:{sock.getsockname()[1]}/mcp", flush=True)
    await uvicorn.Server(uvicorn.Config(app, log_level="warning")).serve(sockets=[sock])


if __name__ == "__main__":
    main()
