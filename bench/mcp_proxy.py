"""What `signoff mcp-proxy` adds to a tool call: an allowed read-only call (get_balance of
examples/mcp_payments.py) straight to the upstream, through the proxy, and Signoff's Evaluate
for the same action alone, all over stdio / gRPC on this machine, in the same run.

One MCP client session each (the SDK's, as an agent has), one call at a time; the three
alternate round after round so that drift of the machine hits them alike. The proxy's cost
is proxied minus direct; the Evaluate row says how much of it is Signoff's decision (with
its durable audit append) and the rest is the second stdio hop and the proxy's own work.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from common import median, percentile, write
from e2e import start_server
from mcp import ClientSession, StdioServerParameters, stdio_client

from signoff_client import AsyncClient

REPO = Path(__file__).resolve().parent.parent
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
CALLS = int(os.environ.get("BENCH_CALLS", "100"))  # per round and path
ARGS = {"account": "acct_42"}


def proxy_config(target: str, log: Path) -> str:
    """A proxy config for the bench server and the example payments upstream."""
    upstream = REPO / "examples" / "mcp_payments.py"
    return f"""
signoff: {{server: "{target}", token: bench-agent}}
principal: {{id: bench-agent, kind: agent}}
upstreams:
  - name: payments
    command: "{sys.executable}"
    args: ["{upstream}"]
    env: {{REFUND_LOG: "{log}"}}
"""


async def timed(call: Callable[[], Awaitable[object]]) -> list[float]:
    """Milliseconds per call, CALLS calls one after the other."""
    out = []
    for _ in range(CALLS):
        t = time.perf_counter()
        await call()
        out.append((time.perf_counter() - t) * 1e3)
    return out


async def run() -> dict:
    """Direct, proxied and Evaluate-alone latencies, alternating for ROUNDS rounds."""
    with tempfile.TemporaryDirectory(prefix="signoff-bench-") as tmp:
        server = await start_server(Path(tmp) / "bench.db")
        proc, target = server.proc, server.target
        config = Path(tmp) / "proxy.yaml"
        config.write_text(proxy_config(target, Path(tmp) / "refunds.jsonl"))
        direct = StdioServerParameters(
            command=sys.executable, args=[str(REPO / "examples" / "mcp_payments.py")]
        )
        proxied = StdioServerParameters(
            command=sys.executable,
            args=["-m", "signoff.cli.main", "mcp-proxy", "--config", str(config),
                  "--log-level", "warning"],
        )  # fmt: skip
        try:
            async with contextlib.AsyncExitStack() as stack:
                sessions = {}
                for name, params in (("direct", direct), ("proxied", proxied)):
                    read, write_ = await stack.enter_async_context(stdio_client(params))
                    session = await stack.enter_async_context(ClientSession(read, write_))
                    await session.initialize()
                    sessions[name] = session
                client = await stack.enter_async_context(AsyncClient(target, token="bench-agent"))

                async def evaluate() -> object:
                    return await client.evaluate(
                        "mcp.payments.get_balance", ARGS, principal={"id": "bench-agent"}
                    )

                paths: dict[str, Callable[[], Awaitable[object]]] = {
                    "direct to the upstream": lambda: sessions["direct"].call_tool(
                        "get_balance", ARGS
                    ),
                    "through signoff mcp-proxy": lambda: sessions["proxied"].call_tool(
                        "get_balance", ARGS
                    ),
                    "Signoff Evaluate alone": evaluate,
                }
                for call in paths.values():  # warm up: imports, first connections
                    await call()
                samples: dict[str, list[float]] = {name: [] for name in paths}
                for _ in range(ROUNDS):
                    for name, call in paths.items():
                        samples[name] += await timed(call)
        finally:
            proc.terminate()
            await proc.wait()
    rows = [
        {
            "path": name,
            "p50_ms": round(median(ms), 2),
            "p90_ms": round(percentile(ms, 90), 2),
            "p99_ms": round(percentile(ms, 99), 2),
        }
        for name, ms in samples.items()
    ]
    for r in rows:
        print(
            f"{r['path']:<28} p50 {r['p50_ms']:>6} ms  p90 {r['p90_ms']:>6}  p99 {r['p99_ms']:>6}"
        )
    added = rows[1]["p50_ms"] - rows[0]["p50_ms"]
    print(f"the proxy adds {added:.2f} ms at the median; Evaluate alone is {rows[2]['p50_ms']} ms")
    return {"rows": rows, "rounds": ROUNDS, "calls": CALLS, "added_p50_ms": round(added, 2)}


def main() -> int:
    """Measure and write results/mcp_proxy.json."""
    print(f"wrote {write('mcp_proxy', asyncio.run(run()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
