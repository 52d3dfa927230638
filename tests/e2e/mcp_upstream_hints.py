"""An MCP upstream whose tools' annotations a test changes while it runs: every tools/list
reads them from the JSON file $HINTS_FILE ({tool: {hint: bool, "title": str}}); every tool
answers "ran <tool>" and appends its name to $HINTS_RAN.

Run: python tests/e2e/mcp_upstream_hints.py      (stdio; the proxy's config starts it)
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

HINTS = Path(os.environ["HINTS_FILE"])
RAN = Path(os.environ["HINTS_RAN"])


def _tools() -> list[types.Tool]:
    tools = []
    for name, given in json.loads(HINTS.read_text()).items():
        given = dict(given)
        title = given.pop("title", None)
        annotations = types.ToolAnnotations.model_validate(given) if given else None
        tools.append(
            types.Tool(
                name=name,
                title=title,
                description=f"the {name} tool",
                input_schema={"type": "object"},
                annotations=annotations,
            )
        )
    return tools


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    """The tools, with the annotations the file holds now."""
    return types.ListToolsResult(tools=_tools())


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    """Record the call and say so."""
    with RAN.open("a") as f:  # noqa: ASYNC230 (a few bytes, one test's file)
        f.write(params.name + "\n")
    return types.CallToolResult(content=[types.TextContent(text=f"ran {params.name}")])


async def main() -> None:
    """Serve over stdio."""
    server: Server[Any] = Server("hints", on_list_tools=list_tools, on_call_tool=call_tool)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    asyncio.run(main())
