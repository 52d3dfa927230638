"""The README's fake payments MCP server (examples/mcp_payments.py) with what tests need on
top: a `crash` tool that kills the process mid-call, a failing start, and HTTP.

Run: python tests/e2e/mcp_upstream_refund.py [--name NAME] [--http PORT] [--exit-at-start]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mcp_payments.py"


def main() -> None:
    """Parse the flags and serve."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="payments")
    parser.add_argument("--http", type=int)
    parser.add_argument("--exit-at-start", action="store_true")
    args = parser.parse_args()
    if args.exit_at_start:
        print("payments upstream: PAYMENTS_API_KEY is not set", file=sys.stderr)
        sys.exit(1)
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

    if args.http is not None:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        server.run()


if __name__ == "__main__":
    main()
