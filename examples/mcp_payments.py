"""A fake payments MCP server (stdio) for trying `signoff mcp-proxy`: `refund` writes what it
executed to $REFUND_LOG (default ./refunds.jsonl), `get_balance` reads, `delete_customer`
would delete. The tests in tests/e2e/test_mcp_proxy.py run it behind the proxy.

Run: python examples/mcp_payments.py        (the proxy's config starts it for you)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations


def build(name: str = "payments") -> MCPServer:
    """The server with its three tools and one prompt."""
    server = MCPServer(name)
    log = Path(os.environ.get("REFUND_LOG", "refunds.jsonl"))

    # The hints policies/mcp.yaml reads (context.mcp.annotations): a refund adds, it does
    # not destroy; get_balance only reads; delete_customer destroys.
    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False))
    def refund(account: str, amount: float, currency: str = "EUR", count: int = 1) -> str:
        """Refund `amount` to `account` (`count` times)."""
        entry = {"account": account, "amount": amount, "currency": currency, "count": count}
        with log.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        return f"refunded {amount:g} {currency} to {account}"

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def get_balance(account: str) -> str:
        """The balance of `account` (read-only)."""
        return f"{account}: 100 EUR"

    @server.tool(annotations=ToolAnnotations(destructive_hint=True))
    def delete_customer(account: str) -> str:
        """Delete the customer `account` and all their data."""
        return f"deleted {account}"

    @server.prompt()
    def refund_policy() -> str:
        """How refunds are explained to customers."""
        return "Refunds take 3 to 5 business days."

    return server


if __name__ == "__main__":
    build().run()
