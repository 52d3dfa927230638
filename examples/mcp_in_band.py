"""Approvals in your MCP client: the user an agent acts for settles its reviews in band.

    python examples/mcp_in_band.py          # a private server: temp SQLite, ./policies
    python examples/mcp_in_band.py --ask    # you answer the questions yourself

An MCP client built on the SDK starts `signoff mcp-proxy` (over stdio) in front of
examples/mcp_payments.py. The agent (claude-agent) acts for bob; policies/mcp.yaml sends
refunds above 100 to finance with `in_band: requester`, so the proxy asks bob through MCP
elicitation (`elicitation/create`). This client's elicitation callback stands in for bob:
approve for this session, then reject with a comment, then decline (finance's alice decides).
Every act lands in the audit log as bob's, in band.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.session import ClientRequestContext
from private_server import private_server, signoff_command

from signoff_client import AsyncClient, Verdict

HERE = Path(__file__).resolve().parent
REVIEW_RE = re.compile(r"Review (\S+): you may settle it yourself")
# What the scripted bob answers, question by question (--ask: you do).
SCRIPT = [
    {"decision": "approve_session", "comment": "my customer, fine for today"},
    {"decision": "reject", "comment": "wrong currency"},
    None,  # decline: leave it to finance
]


class Bob:
    """The elicitation callback: shows the question, answers it; remembers the reviews it
    declined (left to the finance reviewers)."""

    def __init__(self, ask: bool) -> None:
        self.ask = ask
        self.answers = list(SCRIPT)
        self.declined: asyncio.Queue[str] = asyncio.Queue()

    async def __call__(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        """Answer one elicitation/create (form mode) as bob would."""
        if not isinstance(params, types.ElicitRequestFormParams):
            return types.ElicitResult(action="decline")
        print("   | " + params.message.replace("\n", "\n   | "))
        content = await self._answer()
        if content is None:
            if match := REVIEW_RE.search(params.message):
                self.declined.put_nowait(match.group(1))
            print("   bob declines: the finance reviewers decide")
            return types.ElicitResult(action="decline")
        print(f"   bob answers {json.dumps(content)}")
        return types.ElicitResult(action="accept", content=content)

    async def _answer(self) -> dict[str, Any] | None:
        if not self.ask:
            return self.answers.pop(0) if self.answers else None
        line = await asyncio.to_thread(input, "   approve, approve_session, reject or decline? ")
        choice = line.strip()
        if choice not in ("approve", "approve_session", "reject"):
            return None
        comment = await asyncio.to_thread(input, "   comment (optional): ")
        return {"decision": choice, "comment": comment.strip()}


def proxy_config(folder: Path, target: str) -> Path:
    """The proxy's config: the agent acts for bob, and bob's own token answers in band."""
    config = {  # JSON is YAML
        "signoff": {"server": target, "token": "claude-agent"},
        "principal": {"id": "claude-agent", "kind": "agent", "on_behalf_of": "bob"},
        "in_band": {"token": "bob"},  # dev mode: a token is a name; else ${SIGNOFF_HUMAN_TOKEN}
        "review_timeout": "2m",
        "upstreams": [
            {
                "name": "payments",
                "command": "python",
                "args": [str(HERE / "mcp_payments.py")],
                "env": {"REFUND_LOG": str(folder / "refunds.jsonl")},
            }
        ],
    }
    path = folder / "mcp-proxy.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


@contextlib.asynccontextmanager
async def proxied(config: Path, bob: Bob, errlog: Path) -> AsyncIterator[ClientSession]:
    """A client session with `signoff mcp-proxy --config config`, declaring elicitation."""
    argv = ["-m", "signoff.cli.main", "mcp-proxy", "--config", str(config)]
    params = StdioServerParameters(command=sys.executable, args=argv)
    with errlog.open("w") as err:
        async with (
            stdio_client(params, err) as (read, write),
            ClientSession(read, write, elicitation_callback=bob) as session,
        ):
            await session.initialize()
            yield session


async def refund(session: ClientSession, arguments: dict[str, Any]) -> str:
    """Call the refund tool as the agent would, and say what came back."""
    print(f"\n-- the agent calls refund {json.dumps(arguments)}")
    result = await session.call_tool("refund", arguments)
    said = " ".join(c.text for c in result.content if isinstance(c, types.TextContent))
    print(f"   {'error' if result.is_error else 'result'}: {said}")
    return said


async def walk(target: str, folder: Path, ask: bool) -> None:
    """The story: approve for this session, the same shape unasked, reject, decline."""
    bob = Bob(ask)
    async with proxied(proxy_config(folder, target), bob, folder / "proxy.log") as session:
        await refund(session, {"account": "acct_42", "amount": 250})
        # The same tool and argument shape in this session: approved for bob, unasked.
        await refund(session, {"account": "acct_7", "amount": 180})
        # Another shape (a currency too): asked again.
        await refund(session, {"account": "acct_42", "amount": 300, "currency": "USD"})
        call = asyncio.create_task(
            refund(session, {"account": "acct_9", "amount": 400, "currency": "GBP"})
        )
        if not ask:  # bob declined: a finance reviewer settles it in the console or CLI
            review_id = await asyncio.wait_for(bob.declined.get(), 60)
            async with AsyncClient(target, token="alice") as alice:
                review = await alice.get_review(review_id)
                await alice.submit_review(
                    review_id, Verdict.APPROVE, expected_version=review.version
                )
            print(f"   alice (finance) approves review {review_id}")
        await asyncio.wait_for(call, 150)
    print("\n-- the audit log: who settled each review, and how")
    await asyncio.to_thread(audit, target)


def audit(target: str) -> None:
    """The refunds' review acts, from `signoff audit query` (as an auditor reads them)."""
    argv = [signoff_command(), "audit", "query", "--server", target, "--token", "auditor"]
    argv += ["--json", "action=mcp.payments.refund"]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    for line in done.stdout.splitlines():
        entry = json.loads(line)
        if not entry["type"].startswith("review.") or entry["type"] == "review.opened":
            continue
        payload = entry.get("payload", {})
        how = payload.get("in_band_note") or "by a finance reviewer"
        comment = payload.get("act", {}).get("comment", "")
        print(f"   {entry['type']:<16} {entry['actor']:<6} {how:<34} {comment!r}")


def main(argv: list[str] | None = None) -> int:
    """Start a private server, walk the story; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ask", action="store_true", help="answer the questions yourself")
    args = parser.parse_args(argv)
    with private_server("mcp-in-band") as target, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(walk(target, Path(tmp), args.ask))
    return 0


if __name__ == "__main__":
    sys.exit(main())
