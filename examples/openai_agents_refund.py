"""The refund agent on the OpenAI Agents SDK, its refund tool guarded by Signoff.

    pip install -e './clients/python[openai-agents]'   # `make run`'s virtualenv has it
    python examples/openai_agents_refund.py --amount 750

By default no model and no API key: the SDK's `ScriptedModel` asks for one refund, as a
model would, and then answers with what the tool said. `--model gpt-5-mini` (or any
model name) uses OpenAI instead and needs OPENAI_API_KEY. With the example policies
(policies/refunds.yaml) up to 500 runs at once, above 500 the tool call waits for a
finance reviewer, and above 10,000 the model is told the refund was denied. Exit status:
0 executed, 1 not executed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys

from agents import Agent, Model, RunConfig, Runner, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call

from signoff_client import AsyncClient, Decision
from signoff_client.adapters.openai_agents import guard_tool
from signoff_client.errors import AlreadyExists

DEFAULT_SERVER = "127.0.0.1:50051"
DEFAULT_TOKEN = "support-bot"  # dev mode: the token is the caller's name
EXECUTED: list[str] = []


@function_tool
def issue_refund(account: str, amount: float, currency: str, card_number: str) -> str:
    """Refund `amount` in `currency` to `account`'s card."""
    done = f"refunded {amount:g} {currency} to {account}, card ending {card_number[-4:]}"
    EXECUTED.append(done)
    return done


def _waiting(decision: Decision) -> None:
    print(f"waiting for a {decision.reviewer_group} reviewer: {decision.reason}")
    print(f"  approve: signoff reviews approve {decision.review_id} --token alice", flush=True)


def _scripted(args: argparse.Namespace) -> Model:
    """A model that asks for the refund, then repeats what the tool answered."""
    refund = {
        "account": args.account,
        "amount": args.amount,
        "currency": "EUR",
        "card_number": args.card_number,
    }
    return ScriptedModel(
        [
            [function_call("issue_refund", refund, call_id=f"{args.ticket}-refund-1")],
            [assistant_message("I have asked for the refund; see the tool's answer.")],
        ]
    )


def default_ticket(args: argparse.Namespace) -> str:
    """A ticket named after the refund: the request id comes from the ticket, so the same
    arguments retry the same request and other arguments make a new one."""
    refund = f"{args.account}|{args.amount!r}|{args.card_number}"
    return "T-" + hashlib.sha256(refund.encode()).hexdigest()[:8]


def conflict(exc: BaseException) -> AlreadyExists | None:
    """The idempotency conflict behind a framework's error, if that is what it is."""
    seen: BaseException | None = exc
    while seen is not None and not isinstance(seen, AlreadyExists):
        seen = seen.__cause__ or seen.__context__
    return seen


async def main(argv: list[str] | None = None) -> int:
    """Run the agent once, through any review; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=os.environ.get("SIGNOFF_SERVER", DEFAULT_SERVER))
    parser.add_argument("--amount", type=float, default=750.0)
    parser.add_argument("--account", default="acct_42")
    parser.add_argument("--card-number", default="4111 1111 1111 1111")
    parser.add_argument("--ticket", help="the support ticket (default: one per set of arguments)")
    parser.add_argument("--model", help="an OpenAI model name (needs OPENAI_API_KEY)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait")
    args = parser.parse_args(argv)
    args.ticket = args.ticket or default_ticket(args)
    token = os.environ.get("SIGNOFF_TOKEN", DEFAULT_TOKEN)

    try:
        async with AsyncClient(args.server, token=token) as signoff:
            refund = guard_tool(
                issue_refund,
                client=signoff,
                action="refund.issue",
                principal={"id": token, "kind": "agent"},
                resource=lambda **call: {"kind": "account", "id": call["account"]},
                context={"ticket": args.ticket},
                justification="Customer was charged twice for the same order.",
                timeout=args.timeout,
                on_review=_waiting,
            )
            agent = Agent(
                name="support",
                instructions=(
                    f"Refund {args.amount:g} EUR to {args.account} (card {args.card_number}) "
                    "with issue_refund, then say what happened."
                ),
                model=args.model or _scripted(args),
                tools=[refund],
            )
            # The scripted run sends nothing to OpenAI, traces included.
            config = RunConfig(tracing_disabled=args.model is None)
            result = await Runner.run(agent, f"Ticket {args.ticket}", run_config=config)
    except Exception as exc:
        if (clash := conflict(exc)) is None:
            raise
        print(f"{parser.prog}: {clash} (it comes from --ticket {args.ticket})", file=sys.stderr)
        return 2

    for item in result.new_items:
        if item.type == "tool_call_output_item":
            print(f"tool answered: {item.output}")
    print(f"agent: {result.final_output}")
    return 0 if EXECUTED else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
