"""`signoff mcp-proxy`: an MCP server in front of other MCP servers that asks Signoff
before every tool call (needs the `mcp` extra: pip install 'signoff[mcp]')."""
