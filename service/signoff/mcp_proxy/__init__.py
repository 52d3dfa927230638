"""`signoff mcp-proxy`: an MCP server in front of other MCP servers that asks Signoff
before every tool call (needs the `mcp` extra:
pip install ./clients/python '.[mcp]' from a checkout)."""
