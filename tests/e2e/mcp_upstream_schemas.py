"""An MCP server (stdio) whose tools' inputSchemas go beyond the subset action schemas
support, for `signoff mcp-proxy --schemas`: `transfer` (an exclusive integer bound, a
pattern, a nullable memo) and `broken` (a schema with `minimum: low`). A call answers with
its arguments.

Run: python tests/e2e/mcp_upstream_schemas.py
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

TOOLS = {
    "transfer": {
        "type": "object",
        "properties": {
            "amount": {"type": "integer", "exclusiveMinimum": 0},
            "iban": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{2}"},
            "memo": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        },
        "required": ["amount", "iban"],
    },
    "broken": {"type": "object", "properties": {"n": {"type": "number", "minimum": "low"}}},
}


async def main() -> None:
    """Serve the tools over stdio."""

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[types.Tool(name=name, input_schema=schema) for name, schema in TOOLS.items()]
        )

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        said = f"{params.name} {json.dumps(params.arguments, sort_keys=True)}"
        return types.CallToolResult(content=[types.TextContent(text=said)])

    server: Server[Any] = Server("bank", on_list_tools=list_tools, on_call_tool=call_tool)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    asyncio.run(main())
