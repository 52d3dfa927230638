"""Call one tool through `signoff mcp-proxy` the way an agent's MCP client does: start the
proxy over stdio, list its tools, call one, print the progress while a reviewer decides.

Run: python examples/mcp_client.py refund '{"account": "acct_42", "amount": 250}'
     python examples/mcp_client.py --list
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import mcp_types as types
from mcp import ClientSession, StdioServerParameters, stdio_client

CONFIG = Path(__file__).with_name("mcp-proxy.yaml")


async def main() -> int:
    """Parse the flags, start the proxy, call the tool; exit 1 if the call failed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("tool", nargs="?")
    parser.add_argument("arguments", nargs="?", default="{}", help="a JSON object")
    parser.add_argument("--list", action="store_true", help="list the tools and exit")
    parser.add_argument("--config", type=Path, default=CONFIG)
    args = parser.parse_args()
    proxy = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "signoff.cli.main",
            "mcp-proxy",
            "--config",
            str(args.config),
            "--log-level",
            "warning",
        ],
    )
    async with stdio_client(proxy) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        if args.list or not args.tool:
            for tool in (await session.list_tools()).tools:
                print(f"{tool.name:<16} {tool.description or ''}")
            return 0

        async def progress(done: float, total: float | None, message: str | None) -> None:
            print(f"  ... {message}", flush=True)

        result = await session.call_tool(
            args.tool, json.loads(args.arguments), progress_callback=progress
        )
        said = " ".join(c.text for c in result.content if isinstance(c, types.TextContent))
        print(f"{'error' if result.is_error else 'result'}: {said}")
        return 1 if result.is_error else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
