"""The LangGraph adapter against a real server: a graph of a scripted agent node and a ToolNode.

No model and no network: the "agent" node emits one AIMessage with a tool call. The tool
records each run, so a test sees whether it ran, how often and with which arguments.
Reviewers act through the Python client (dev mode: the token names the caller).
"""

from __future__ import annotations

import asyncio
import shlex
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, Send

from signoff_client import AsyncClient, Client, ReviewState
from signoff_client.adapters.langgraph import SignoffToolError, signoff_tool

from .adapter_common import REFUNDS, act, all_reviews, fresh_output, issue_refund_recording
from .conftest import ServerHandle
from .test_client_reviews import WAIT, watching

THREAD = {"configurable": {"thread_id": "ticket-T-1234"}}


@pytest.fixture
def signoff(make_server, policy_dir) -> ServerHandle:
    return make_server(policies=policy_dir({"refunds.yaml": REFUNDS}))


def _refund_tool(runs: list[dict[str, Any]]) -> BaseTool:
    return tool(issue_refund_recording(runs))


def _graph(guarded: BaseTool, amount: float, checkpointer: InMemorySaver | None = None) -> Any:
    """START -> agent (asks for one refund) -> tools -> END."""

    def agent(state: MessagesState) -> dict[str, Any]:
        call = {"name": "issue_refund", "args": {"account": "acct_42", "amount": amount}}
        return {"messages": [AIMessage("", tool_calls=[{**call, "id": "call_1"}])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([guarded]))
    graph.add_edge(START, "agent")
    graph.add_edge("agent", "tools")
    graph.add_edge("tools", END)
    return graph.compile(checkpointer=checkpointer)


def _answer(result: dict[str, Any]) -> ToolMessage:
    message = result["messages"][-1]
    assert isinstance(message, ToolMessage)
    assert message.tool_call_id == "call_1"
    return message


# --- decisions without review ---------------------------------------------------------------


def test_allowed_call_runs_the_tool(signoff):
    runs: list[dict[str, Any]] = []
    with Client(signoff.target, token="bot") as bot:
        guarded = signoff_tool(_refund_tool(runs), client=bot, action="refund.issue")
        result = _graph(guarded, 120).invoke({"messages": []})
    answer = _answer(result)
    assert answer.status == "success"
    assert answer.content == "refunded 120 EUR to acct_42"
    assert runs == [{"account": "acct_42", "amount": 120}]


def test_denied_call_answers_the_model_with_the_reason_and_never_runs(signoff):
    runs: list[dict[str, Any]] = []
    with Client(signoff.target, token="bot") as bot:
        guarded = signoff_tool(_refund_tool(runs), client=bot, action="refund.issue")
        result = _graph(guarded, 25_000, InMemorySaver()).invoke({"messages": []}, THREAD)
    answer = _answer(result)
    assert answer.status == "error"
    assert answer.content == "denied by policy: Refunds above 10,000 are never issued by an agent."
    assert runs == []
    assert all_reviews(signoff) == []


def test_handle_tool_error_false_raises_the_refusal(signoff):
    runs: list[dict[str, Any]] = []
    with Client(signoff.target, token="bot") as bot:
        guarded = signoff_tool(
            _refund_tool(runs), client=bot, action="refund.issue", handle_tool_error=False
        )
        with pytest.raises(SignoffToolError) as err:
            guarded.invoke({"account": "acct_42", "amount": 25_000})
    assert err.value.error.decision.denied
    assert runs == []


# --- reviews with a checkpointer: interrupt, resume --------------------------------------------


def test_review_interrupts_and_resume_runs_the_edited_call_once(signoff):
    runs: list[dict[str, Any]] = []
    with Client(signoff.target, token="bot") as bot:
        guarded = signoff_tool(
            _refund_tool(runs), client=bot, action="refund.issue", principal="bot"
        )
        graph = _graph(guarded, 750, InMemorySaver())

        interrupted = graph.invoke({"messages": []}, THREAD)["__interrupt__"]
        payload = interrupted[0].value
        assert payload == {
            "type": "signoff.review",
            "review_id": payload["review_id"],
            "state": "PENDING",
            "reviewer_group": "finance",
            "reason": "Refund above 500 needs a finance reviewer.",
            "action": "refund.issue",
            "params": {"account": "acct_42", "amount": 750},
            "expires_at": payload["expires_at"],
            "tool": "issue_refund",
            "tool_call_id": "call_1",
        }
        assert runs == []

        # Resumed before anyone decided: interrupted again, on the same review.
        again = graph.invoke(Command(resume="resumed early"), THREAD)["__interrupt__"]
        assert again[0].value["review_id"] == payload["review_id"]
        assert runs == []

        act(signoff, payload["review_id"], "modify", params={"account": "acct_42", "amount": 600})
        result = graph.invoke(Command(resume="approved"), THREAD)

    answer = _answer(result)
    assert (answer.status, answer.content) == ("success", "refunded 600 EUR to acct_42")
    assert runs == [{"account": "acct_42", "amount": 600}]
    reviews = all_reviews(signoff)
    assert [(r.review_id, r.state) for r in reviews] == [
        (payload["review_id"], ReviewState.MODIFIED)
    ]


def test_rejection_answers_the_model_with_the_comment(signoff):
    runs: list[dict[str, Any]] = []
    with Client(signoff.target, token="bot") as bot:
        guarded = signoff_tool(_refund_tool(runs), client=bot, action="refund.issue")
        graph = _graph(guarded, 750, InMemorySaver())
        payload = graph.invoke({"messages": []}, THREAD)["__interrupt__"][0].value
        act(signoff, payload["review_id"], "reject", comment="duplicate of T-77")
        result = graph.invoke(Command(resume="decided"), THREAD)
    answer = _answer(result)
    assert answer.status == "error"
    assert answer.content == f"review {payload['review_id']} rejected by alice: duplicate of T-77"
    assert runs == []


async def test_async_review_interrupts_and_resumes(signoff):
    runs: list[dict[str, Any]] = []
    async with AsyncClient(signoff.target, token="bot") as bot:
        guarded = signoff_tool(_refund_tool(runs), client=bot, action="refund.issue")
        graph = _graph(guarded, 750, InMemorySaver())
        payload = (await graph.ainvoke({"messages": []}, THREAD))["__interrupt__"][0].value
        assert runs == []
        act(signoff, payload["review_id"], "approve")
        result = await graph.ainvoke(Command(resume=True), THREAD)
    assert _answer(result).content == "refunded 750 EUR to acct_42"
    assert runs == [{"account": "acct_42", "amount": 750}]
    assert len(all_reviews(signoff)) == 1


def test_parallel_calls_sent_as_their_own_tasks_each_run_once(signoff):
    """Two reviewed calls of one AIMessage, one task each (Send, as create_agent does)."""
    runs: list[dict[str, Any]] = []

    def agent(state: MessagesState) -> dict[str, Any]:
        calls = [
            {"name": "issue_refund", "args": {"account": f"acct_{i}", "amount": 700}, "id": f"c{i}"}
            for i in range(2)
        ]
        return {"messages": [AIMessage("", tool_calls=calls)]}

    def each_call(state: MessagesState) -> list[Send]:
        calls = state["messages"][-1].tool_calls
        return [
            Send("tools", {"__type": "tool_call_with_context", "tool_call": c, "state": state})
            for c in calls
        ]

    with Client(signoff.target, token="bot") as bot:
        guarded = signoff_tool(_refund_tool(runs), client=bot, action="refund.issue")
        graph = StateGraph(MessagesState)
        graph.add_node("agent", agent)
        graph.add_node("tools", ToolNode([guarded]))
        graph.add_edge(START, "agent")
        graph.add_conditional_edges("agent", each_call, ["tools"])
        graph.add_edge("tools", END)
        graph = graph.compile(checkpointer=InMemorySaver())

        pending = graph.invoke({"messages": []}, THREAD)["__interrupt__"]
        by_call = {i.value["tool_call_id"]: i.value["review_id"] for i in pending}
        assert sorted(by_call) == ["c0", "c1"]
        assert len(set(by_call.values())) == 2

        act(signoff, by_call["c0"], "approve")
        left = graph.invoke(Command(resume={i.id: "c0 decided" for i in pending}), THREAD)
        assert [i.value["tool_call_id"] for i in left["__interrupt__"]] == ["c1"]
        assert runs == [{"account": "acct_0", "amount": 700}]

        act(signoff, by_call["c1"], "approve")
        result = graph.invoke(Command(resume={i.id: "c1" for i in left["__interrupt__"]}), THREAD)

    assert "__interrupt__" not in result
    answers = sorted(m.content for m in result["messages"] if isinstance(m, ToolMessage))
    assert answers == ["refunded 700 EUR to acct_0", "refunded 700 EUR to acct_1"]
    assert runs == [{"account": "acct_0", "amount": 700}, {"account": "acct_1", "amount": 700}]
    assert len(all_reviews(signoff)) == 2


# --- reviews without a checkpointer: a blocking wait --------------------------------------------


def test_without_a_checkpointer_the_call_blocks_until_approved(signoff):
    runs: list[dict[str, Any]] = []
    watched = watching(signoff)
    with Client(signoff.target, token="bot") as bot, ThreadPoolExecutor(1) as pool:
        guarded = signoff_tool(_refund_tool(runs), client=bot, action="refund.issue", timeout=WAIT)
        running = pool.submit(_graph(guarded, 750).invoke, {"messages": []})
        review_id = watched()
        assert not running.done()  # waiting on the review
        assert runs == []
        act(signoff, review_id, "approve")
        result = running.result(timeout=WAIT)
    assert _answer(result).content == "refunded 750 EUR to acct_42"
    assert runs == [{"account": "acct_42", "amount": 750}]


async def test_async_without_a_checkpointer_the_call_awaits_the_review(signoff):
    runs: list[dict[str, Any]] = []
    watched = watching(signoff)
    async with AsyncClient(signoff.target, token="bot") as bot:
        guarded = signoff_tool(_refund_tool(runs), client=bot, action="refund.issue", timeout=WAIT)
        running = asyncio.create_task(_graph(guarded, 750).ainvoke({"messages": []}))
        review_id = await asyncio.to_thread(watched)
        assert not running.done()  # awaiting the review, the event loop free
        assert runs == []
        await asyncio.to_thread(act, signoff, review_id, "modify", params={
            "account": "acct_42", "amount": 600})  # fmt: skip
        result = await asyncio.wait_for(running, WAIT)
    assert _answer(result).content == "refunded 600 EUR to acct_42"
    assert runs == [{"account": "acct_42", "amount": 600}]


# --- bad input, and the extra ------------------------------------------------------------------


def test_a_bare_string_input_is_refused_with_the_tools_name(signoff):
    @tool
    def refund_order(amount: float) -> str:
        """Refund `amount` EUR on the current order."""
        return f"refunded {amount:g} EUR"

    with Client(signoff.target, token="bot") as bot:
        guarded = signoff_tool(refund_order, client=bot, action="refund.issue")
        with pytest.raises(TypeError, match=r"refund_order is guarded by Signoff: call it with"):
            guarded.invoke("120")
        assert guarded.invoke({"amount": 120}) == "refunded 120 EUR"


async def test_a_sync_call_with_an_async_client_names_the_client_it_needs(signoff):
    async with AsyncClient(signoff.target, token="bot") as bot:
        guarded = signoff_tool(_refund_tool([]), client=bot, action="refund.issue")
        with pytest.raises(TypeError, match=r"issue_refund: called synchronously, it needs a"):
            guarded.invoke({"account": "acct_42", "amount": 5})


def test_not_a_tool_is_refused():
    with pytest.raises(TypeError, match=r"expected a LangChain tool or a function, got 42"):
        signoff_tool(42, client=None)


def test_plain_functions_are_wrapped_with_their_signature(signoff):
    def refund(account: str, amount: float) -> str:
        """Refund `amount` EUR."""
        return f"refunded {amount:g} to {account}"

    with Client(signoff.target, token="bot") as bot:
        guarded = signoff_tool(refund, client=bot, action="refund.issue")
        assert guarded.name == "refund"
        assert set(guarded.args) == {"account", "amount"}
        assert guarded.invoke({"account": "acct_1", "amount": 20}) == "refunded 20 to acct_1"


def test_the_client_does_not_import_frameworks_and_the_adapter_names_its_extra():
    code = (
        "import sys\n"
        "import signoff_client\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'langgraph', 'langchain_core', 'agents', 'openai'})\n"
        "assert not loaded, loaded\n"
        "sys.modules['langgraph'] = None\n"
        "try:\n"
        "    import signoff_client.adapters.langgraph\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    assert fresh_output(code) == (
        "signoff_client.adapters.langgraph needs LangGraph and LangChain: "
        f"{shlex.quote(sys.executable)} -m pip install 'langchain-core<2,>=1.8' "
        "'langgraph<2,>=1.2'"
    )
