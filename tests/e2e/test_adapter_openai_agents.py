"""The OpenAI Agents SDK adapter against a real server, driven by the SDK's ScriptedModel.

No model and no network: the scripted model asks for one tool call, then answers "done";
tracing is off. The tool records each run, so a test sees whether it ran, how often and
with which arguments. Reviewers act through the Python client (dev mode).
"""

from __future__ import annotations

import asyncio
import shlex
import sys
from typing import Any

import pytest
from agents import Agent, FunctionTool, RunConfig, Runner, RunState, UserError, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from agents.tool_context import ToolContext

from signoff_client import AsyncClient, Client, errors
from signoff_client.adapters.openai_agents import guard_tool, wait_for_reviews

from .adapter_common import REFUNDS, act, all_reviews, fresh_output, issue_refund_recording
from .conftest import ServerHandle
from .test_client_reviews import WAIT, watching

NO_TRACING = RunConfig(tracing_disabled=True)


@pytest.fixture
def signoff(make_server, policy_dir) -> ServerHandle:
    return make_server(policies=policy_dir({"refunds.yaml": REFUNDS}))


def _refund_tool(runs: list[dict[str, Any]]) -> FunctionTool:
    return function_tool(issue_refund_recording(runs))


async def _run(guarded: FunctionTool, amount: float, call_id: str = "c1") -> str:
    """Run an agent whose model asks for one refund; return what the tool answered."""
    call = {"account": "acct_42", "amount": amount}
    model = ScriptedModel(
        [
            [function_call("issue_refund", call, call_id=call_id)],
            [assistant_message("done")],
        ]
    )
    agent = Agent(name="support", model=model, tools=[guarded])
    result = await Runner.run(agent, "refund the double charge", run_config=NO_TRACING)
    assert result.final_output == "done"
    outputs = [item.output for item in result.new_items if item.type == "tool_call_output_item"]
    assert len(outputs) == 1
    # What the model saw on its second turn is the same answer.
    sent = [i for i in model.last_call.input if i.get("type") == "function_call_output"]
    assert [i["output"] for i in sent] == [str(outputs[0])]
    return str(outputs[0])


def test_the_copy_keeps_the_tools_name_and_schema():
    original = _refund_tool([])
    guarded = guard_tool(original, client=None, action="refund.issue")
    assert guarded is not original
    assert (guarded.name, guarded.params_json_schema) == (
        original.name,
        original.params_json_schema,
    )


async def test_allowed_call_runs_the_tool(signoff):
    runs: list[dict[str, Any]] = []
    async with AsyncClient(signoff.target, token="bot") as bot:
        guarded = guard_tool(_refund_tool(runs), client=bot, action="refund.issue")
        assert await _run(guarded, 120) == "refunded 120 EUR to acct_42"
    assert runs == [{"account": "acct_42", "amount": 120}]


async def test_a_sync_client_works_from_a_worker_thread(signoff):
    runs: list[dict[str, Any]] = []
    with Client(signoff.target, token="bot") as bot:
        guarded = guard_tool(_refund_tool(runs), client=bot, action="refund.issue")
        assert await _run(guarded, 80) == "refunded 80 EUR to acct_42"
    assert runs == [{"account": "acct_42", "amount": 80}]


async def test_denied_call_answers_the_model_and_never_runs(signoff):
    runs: list[dict[str, Any]] = []
    async with AsyncClient(signoff.target, token="bot") as bot:
        guarded = guard_tool(_refund_tool(runs), client=bot, action="refund.issue")
        answer = await _run(guarded, 25_000)
    assert answer == "denied by policy: Refunds above 10,000 are never issued by an agent."
    assert runs == []


async def test_on_refusal_raise_ends_the_run_with_the_error(signoff):
    runs: list[dict[str, Any]] = []
    async with AsyncClient(signoff.target, token="bot") as bot:
        guarded = guard_tool(
            _refund_tool(runs), client=bot, action="refund.issue", on_refusal="raise"
        )
        with pytest.raises(UserError, match="Error running tool issue_refund: denied") as err:
            await _run(guarded, 25_000)
    assert isinstance(err.value.__cause__, errors.Denied)
    assert err.value.__cause__.decision.denied
    assert runs == []


async def _while_waiting(signoff: ServerHandle, guarded: FunctionTool, act: Any) -> str:
    """Run the agent; once its call waits on a review, `act(review_id)` in a thread."""
    watched = watching(signoff)
    running = asyncio.create_task(_run(guarded, 750))
    review_id = await asyncio.to_thread(watched)
    assert not running.done()  # waiting on the review
    await asyncio.to_thread(act, review_id)
    return await asyncio.wait_for(running, WAIT)


async def test_review_approved_with_an_edit_runs_the_edited_call_once(signoff):
    runs: list[dict[str, Any]] = []
    async with AsyncClient(signoff.target, token="bot") as bot:
        guarded = guard_tool(
            _refund_tool(runs), client=bot, action="refund.issue", principal="bot", timeout=WAIT
        )

        def modify(review_id: str) -> None:
            assert runs == []
            act(signoff, review_id, "modify", params={"account": "acct_42", "amount": 600})

        answer = await _while_waiting(signoff, guarded, modify)
    assert answer == "refunded 600 EUR to acct_42"
    assert runs == [{"account": "acct_42", "amount": 600}]
    assert len(all_reviews(signoff)) == 1


async def test_rejected_review_answers_the_model_with_the_comment(signoff):
    runs: list[dict[str, Any]] = []
    rejected: list[str] = []
    async with AsyncClient(signoff.target, token="bot") as bot:
        guarded = guard_tool(_refund_tool(runs), client=bot, action="refund.issue")

        def reject(review_id: str) -> None:
            rejected.append(review_id)
            act(signoff, review_id, "reject", comment="duplicate of T-77")

        answer = await _while_waiting(signoff, guarded, reject)
    assert answer == f"review {rejected[0]} rejected by alice: duplicate of T-77"
    assert runs == []


# --- interrupt=True: the SDK's own interruption, resumed from a serialized state -------------


def _agent(guarded: FunctionTool, amount: float) -> tuple[Agent[Any], ScriptedModel]:
    call = {"account": "acct_42", "amount": amount}
    model = ScriptedModel(
        [[function_call("issue_refund", call, call_id="c1")], [assistant_message("done")]]
    )
    return Agent(name="support", model=model, tools=[guarded]), model


def _tool_output(result: Any) -> str:
    outputs = [item.output for item in result.new_items if item.type == "tool_call_output_item"]
    assert len(outputs) == 1
    return str(outputs[0])


async def test_interrupt_mode_pauses_the_run_and_resumes_with_the_edited_call(signoff):
    runs: list[dict[str, Any]] = []
    async with AsyncClient(signoff.target, token="bot") as bot:
        guarded = guard_tool(
            _refund_tool(runs), client=bot, action="refund.issue", interrupt=True, timeout=WAIT
        )
        agent, _ = _agent(guarded, 750)
        result = await Runner.run(agent, "refund", run_config=NO_TRACING)
        assert [(i.tool_name, i.call_id) for i in result.interruptions] == [("issue_refund", "c1")]
        assert runs == []
        (review,) = await asyncio.to_thread(all_reviews, signoff)
        assert review.params == {"account": "acct_42", "amount": 750}
        saved = result.to_state().to_string()  # e.g. into a database, while people decide

        await asyncio.to_thread(
            act, signoff, review.review_id, "modify", params={"account": "acct_42", "amount": 600}
        )
        state = await wait_for_reviews(await RunState.from_string(agent, saved))
        resumed = await Runner.run(agent, state, run_config=NO_TRACING)

    assert resumed.interruptions == []
    assert resumed.final_output == "done"
    assert _tool_output(resumed) == "refunded 600 EUR to acct_42"
    assert runs == [{"account": "acct_42", "amount": 600}]
    assert len(await asyncio.to_thread(all_reviews, signoff)) == 1


async def test_interrupt_mode_rejection_reaches_the_model_and_the_tool_never_runs(signoff):
    runs: list[dict[str, Any]] = []
    async with AsyncClient(signoff.target, token="bot") as bot:
        guarded = guard_tool(_refund_tool(runs), client=bot, action="refund.issue", interrupt=True)
        agent, _ = _agent(guarded, 750)
        result = await Runner.run(agent, "refund", run_config=NO_TRACING)
        (review,) = await asyncio.to_thread(all_reviews, signoff)
        await asyncio.to_thread(act, signoff, review.review_id, "reject", comment="duplicate")
        resumed = await Runner.run(
            agent, await wait_for_reviews(result.to_state()), run_config=NO_TRACING
        )
    assert _tool_output(resumed) == f"review {review.review_id} rejected by alice: duplicate"
    assert runs == []


async def test_interrupt_mode_does_not_interrupt_allowed_or_denied_calls(signoff):
    runs: list[dict[str, Any]] = []
    async with AsyncClient(signoff.target, token="bot") as bot:
        guarded = guard_tool(_refund_tool(runs), client=bot, action="refund.issue", interrupt=True)
        assert await _run(guarded, 120) == "refunded 120 EUR to acct_42"
        # Another tool call id: the request id is derived from it.
        assert (await _run(guarded, 25_000, call_id="c2")).startswith("denied by policy")
    assert runs == [{"account": "acct_42", "amount": 120}]


async def test_wait_for_reviews_times_out_and_leaves_the_state_pending(signoff):
    async with AsyncClient(signoff.target, token="bot") as bot:
        guarded = guard_tool(_refund_tool([]), client=bot, action="refund.issue", interrupt=True)
        agent, _ = _agent(guarded, 750)
        state = (await Runner.run(agent, "refund", run_config=NO_TRACING)).to_state()
        with pytest.raises(errors.ReviewTimeout):
            await wait_for_reviews(state, timeout=0.2)
    assert len(state.get_interruptions()) == 1


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (
            '["acct_42", 120]',
            "issue_refund: the arguments must be a JSON object of named "
            "arguments, got a JSON array; nothing was run",
        ),
        (
            '"acct_42"',
            "issue_refund: the arguments must be a JSON object of named "
            "arguments, got a JSON string; nothing was run",
        ),
        (
            "{account: acct_42",
            "issue_refund: the arguments are not valid JSON (Expecting "
            "property name enclosed in double quotes: line 1 column 2 (char 1)); nothing was run",
        ),
    ],
)
async def test_arguments_that_are_not_a_json_object_are_refused_precisely(
    signoff, arguments, expected
):
    runs: list[dict[str, Any]] = []
    async with AsyncClient(signoff.target, token="bot") as bot:
        guarded = guard_tool(_refund_tool(runs), client=bot, action="refund.issue")
        ctx = ToolContext(
            None, tool_name="issue_refund", tool_call_id="c9", tool_arguments=arguments
        )
        assert await guarded.on_invoke_tool(ctx, arguments) == expected
    assert runs == []
    assert all_reviews(signoff) == []


def test_bad_options_are_refused():
    with pytest.raises(TypeError, match=r"expected an agents.FunctionTool .*, got 42"):
        guard_tool(42, client=None)
    with pytest.raises(ValueError, match=r'on_refusal must be "message" or "raise", got \'log\''):
        guard_tool(_refund_tool([]), client=None, on_refusal="log")


def test_the_adapter_names_its_extra():
    code = (
        "import sys\n"
        "sys.modules['agents'] = None\n"
        "try:\n"
        "    import signoff_client.adapters.openai_agents\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    assert fresh_output(code) == (
        "signoff_client.adapters.openai_agents needs the OpenAI Agents SDK: "
        f"{shlex.quote(sys.executable)} -m pip install 'openai-agents<0.25,>=0.24'"
    )
