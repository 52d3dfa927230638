"""The refund agent as a LangGraph graph whose refund tool is guarded by Signoff.

    pip install -e './clients/python[langgraph]'   # `make run`'s virtualenv has it
    python examples/langgraph_refund.py --amount 750

No model and no API key: a scripted "agent" node asks for one refund, as a model would,
and a `ToolNode` runs the guarded tool. With the example policies (policies/refunds.yaml)
up to 500 runs at once, above 500 the graph is interrupted until a finance reviewer
decides, and above 10,000 the tool answers with the denial. While interrupted, this
script waits for the review (as a UI would) and then resumes the graph with
`Command(resume=...)`: the tool runs again from the start, finds the same review and
executes exactly what was approved. Exit status: 0 executed, 1 not executed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command

from signoff_client import Client
from signoff_client.adapters.langgraph import signoff_tool
from signoff_client.errors import AlreadyExists

DEFAULT_SERVER = "127.0.0.1:50051"
DEFAULT_TOKEN = "support-bot"  # dev mode: the token is the caller's name


@tool
def issue_refund(account: str, amount: float, currency: str, card_number: str) -> str:
    """Refund `amount` in `currency` to `account`'s card."""
    return f"refunded {amount:g} {currency} to {account}, card ending {card_number[-4:]}"


def build(guarded: Any, args: argparse.Namespace) -> Any:
    """START -> agent (one scripted tool call) -> tools -> END, with a checkpointer."""

    def agent(state: MessagesState) -> dict[str, Any]:
        call = {
            "name": "issue_refund",
            "args": {
                "account": args.account,
                "amount": args.amount,
                "currency": "EUR",
                "card_number": args.card_number,
            },
            "id": f"{args.ticket}-refund-1",
        }
        return {"messages": [AIMessage("", tool_calls=[call])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([guarded]))
    graph.add_edge(START, "agent")
    graph.add_edge("agent", "tools")
    graph.add_edge("tools", END)
    return graph.compile(checkpointer=InMemorySaver())


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


def main(argv: list[str] | None = None) -> int:
    """Run the graph once, through any review; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=os.environ.get("SIGNOFF_SERVER", DEFAULT_SERVER))
    parser.add_argument("--amount", type=float, default=750.0)
    parser.add_argument("--account", default="acct_42")
    parser.add_argument("--card-number", default="4111 1111 1111 1111")
    parser.add_argument("--ticket", help="the support ticket (default: one per set of arguments)")
    args = parser.parse_args(argv)
    args.ticket = args.ticket or default_ticket(args)
    token = os.environ.get("SIGNOFF_TOKEN", DEFAULT_TOKEN)

    try:
        with Client(args.server, token=token) as signoff:
            guarded = signoff_tool(
                issue_refund,
                client=signoff,
                action="refund.issue",
                principal={"id": token, "kind": "agent"},
                resource=lambda **call: {"kind": "account", "id": call["account"]},
                context={"ticket": args.ticket},
                justification="Customer was charged twice for the same order.",
            )
            graph = build(guarded, args)
            thread = {"configurable": {"thread_id": args.ticket}}
            result = graph.invoke({"messages": []}, thread)
            while "__interrupt__" in result:
                review = result["__interrupt__"][0].value
                print(f"interrupted: waiting for a {review['reviewer_group']} reviewer")
                print(f"  {review['reason']}")
                print(f"  approve: signoff reviews approve {review['review_id']} --token alice")
                signoff.wait_for_review(review["review_id"], timeout=None)
                result = graph.invoke(Command(resume=review["review_id"]), thread)
    except Exception as exc:
        if (clash := conflict(exc)) is None:
            raise
        print(f"{parser.prog}: {clash} (it comes from --ticket {args.ticket})", file=sys.stderr)
        return 2

    answer = result["messages"][-1]
    assert isinstance(answer, ToolMessage)
    print(f"tool answered ({answer.status}): {answer.content}")
    return 0 if answer.status == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
