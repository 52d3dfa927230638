"""The README's fake payments MCP server (examples/mcp_payments.py) with what tests need on
top: `crash` (kills the process mid-call), `pid`, a ledger resource, `export_ledger`
(reports progress), `enable_chargebacks` (adds a tool), a start that fails or hangs, and
HTTP with an API key.

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

from mcp.server.mcpserver import Context

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mcp_payments.py"


def main() -> None:
    """Parse the flags and serve."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="payments")
    parser.add_argument("--http", type=int)
    parser.add_argument("--exit-at-start", action="store_true")
    parser.add_argument("--hang-at-start", action="store_true", help="never answer")
    parser.add_argument("--api-key", help="HTTP only: refuse requests without X-Api-Key: KEY")
    args = parser.parse_args()
    if args.exit_at_start:
        print("payments upstream: PAYMENTS_API_KEY is not set", file=sys.stderr)
        sys.exit(1)
    if args.hang_at_start:
        print("payments upstream: waiting for the ledger lock", file=sys.stderr, flush=True)
        threading.Event().wait()
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

    @server.tool()
    async def enable_chargebacks(ctx: Context) -> str:
        """Add the `chargeback` tool, and tell the client the tool list changed."""

        def chargeback(account: str) -> str:
            """Dispute a card payment of `account`."""
            return f"chargeback opened for {account}"

        server.add_tool(chargeback)
        await ctx.session.send_tool_list_changed()
        return "chargebacks enabled"

    @server.tool()
    def pid() -> int:
        """This server's process id."""
        return os.getpid()

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
