"""OpenAI Agents SDK function tools that run only as Signoff allows.

    from agents import Agent, function_tool
    from signoff_client.adapters.openai_agents import guard_tool

    refund = guard_tool(function_tool(issue_refund), client=signoff, action="refund.issue",
                        principal="support-bot")
    agent = Agent(name="support", tools=[refund])

`guard_tool` returns a copy of a `FunctionTool` (name, schema, settings unchanged) whose
every invocation asks Signoff first, with the model's arguments as the action's params,
and a request id derived from the SDK's tool call id (a retried run finds the same
decision and review):

- allow: the tool runs with the approved params;
- review: the invocation waits, as `client.require()` does, up to `timeout`, and then
  runs the tool with exactly what was approved (a reviewer's edits included);
- deny, reject, expiry, cancel, timeout: the tool does not run. By default the model gets
  the reason as the tool's output (`"denied by policy: ..."`, `"review ... rejected by
  alice: duplicate"`), as the SDK does for failing tools, so it can explain;
  `on_refusal="raise"` raises the `NotApproved` error instead, which ends the run (the
  SDK raises its `UserError`, with the `NotApproved` as `__cause__`).

With `interrupt=True` a review interrupts the run instead of blocking it, through the
SDK's own human-in-the-loop: the tool's `needs_approval` asks Signoff, and a call whose
review is pending becomes one of the run's `interruptions`. Keep the state
(`result.to_state()`, serializable with `to_string()`), and once the reviews are decided
`await wait_for_reviews(state)` approves or rejects each such interruption as Signoff
decided; `Runner.run(agent, state)` then resumes. The resumed call finds the same review
by its request id and runs exactly what was approved.

Why not the SDK's tool input guardrails (`ToolInputGuardrail`): a guardrail can only let
the call through or reject it, with the arguments the model wrote. A reviewer who edits
the call (MODIFIED) approves other arguments, and running the model's would run what
nobody approved; wrapping `on_invoke_tool` is the one place that can run the approved
params. The SDK's approval (`needs_approval`, `state.approve()`) is used only to pause
the run: what runs, and whether, is still read from Signoff when the call is invoked.

Invocations are async in the SDK: an `AsyncClient` is awaited, a `Client` runs in a
worker thread.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from typing import Any, Literal

from signoff_client._extras import install_hint

try:
    from agents import FunctionTool, RunContextWrapper, RunState
    from agents.items import ToolApprovalItem
    from agents.tool_context import ToolContext
except ModuleNotFoundError as exc:
    if (exc.name or "").partition(".")[0] not in {"agents", "openai"}:
        raise
    raise ImportError(
        "signoff_client.adapters.openai_agents needs the OpenAI Agents SDK: "
        + install_hint("signoff-client", "openai-agents")
    ) from exc

from signoff_client._async_client import AsyncClient
from signoff_client._client import Client
from signoff_client.adapters._common import (
    ContextOption,
    Guard,
    PrincipalOption,
    RequestIdOption,
    ResourceOption,
    TextOption,
    derive_request_id,
)
from signoff_client.errors import NotApproved, ReviewTimeout
from signoff_client.models import Decision
from signoff_client.reviews import Approval, Review

__all__ = ["guard_tool", "wait_for_reviews"]

# Where wait_for_reviews finds how a guarded tool asks (an attribute of the tool's copy).
_GUARD_ATTR = "_signoff_guard"

_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def guard_tool(
    tool: FunctionTool,
    *,
    client: Client | AsyncClient,
    action: str | None = None,
    principal: PrincipalOption = None,
    resource: ResourceOption = None,
    context: ContextOption = None,
    justification: TextOption = "",
    request_id: RequestIdOption = None,
    timeout: float | None = None,
    on_review: Callable[[Decision], object] | None = None,
    on_refusal: Literal["message", "raise"] = "message",
    interrupt: bool = False,
) -> FunctionTool:
    """Return a copy of `tool` that runs only with params Signoff approved.

    `client` is a `Client` or an `AsyncClient`; `action` defaults to the tool's name.
    `principal`, `resource`, `context`, `justification` and `request_id` are values or
    functions of the call's arguments, as `gate()` takes them. `timeout` bounds the wait
    for a review; `on_review(decision)` is called when one starts. `on_refusal` says
    whether a refusal is the tool's output for the model ("message") or raised ("raise").
    `interrupt=True` makes a review interrupt the run (see the module docstring).
    """
    if not isinstance(tool, FunctionTool):
        raise TypeError(
            f"guard_tool: expected an agents.FunctionTool (e.g. from @function_tool), got {tool!r}"
        )
    if on_refusal not in ("message", "raise"):
        raise ValueError(f'guard_tool: on_refusal must be "message" or "raise", got {on_refusal!r}')
    if interrupt and tool.needs_approval is not False:
        # Two approvals of one call would have to agree; Signoff's is the one that counts.
        raise ValueError(f"guard_tool: {tool.name} has needs_approval set already")
    guard = Guard(
        client=client,
        action=action or tool.name,
        principal=principal,
        resource=resource,
        context=context,
        justification=justification,
        request_id=request_id,
        timeout=timeout,
        on_review=on_review,
    )
    invoke_original = tool.on_invoke_tool
    name = tool.name

    async def invoke(ctx: ToolContext[Any], input_json: str) -> Any:
        params = _params(name, input_json)
        if isinstance(params, str):
            return params  # the model's mistake: tell it, as the SDK does for bad JSON
        try:
            approval = await _require(guard, params, ctx.tool_call_id)
        except NotApproved as exc:
            if on_refusal == "raise":
                raise
            return str(exc)
        return await invoke_original(ctx, json.dumps(approval.params))

    async def pending_review(
        ctx: RunContextWrapper[Any], params: dict[str, Any], call_id: str
    ) -> bool:
        decision = await _evaluate(guard, params, call_id)
        if not decision.needs_review:
            return False  # allowed or denied: the invocation says which
        return not (await _review(guard, decision.review_id)).final

    guarded = copy.copy(tool)
    guarded.on_invoke_tool = invoke
    if interrupt:
        guarded.needs_approval = pending_review
    setattr(guarded, _GUARD_ATTR, guard)
    return guarded


async def wait_for_reviews(
    state: RunState[Any],
    *,
    timeout: float | None = None,  # noqa: ASYNC109 - as require()'s: the whole wait
) -> RunState[Any]:
    """Wait for the Signoff reviews `state` is interrupted on; approve or reject each in it.

    Interruptions of tools not guarded with `interrupt=True` are left for the caller.
    Returns `state`, ready for `Runner.run(agent, state)`. `timeout` bounds each wait;
    on `ReviewTimeout` the interruptions not yet decided stay pending in `state` (and their
    reviews open), so calling again later carries on.
    """
    for item in state.get_interruptions():
        guard = _guard_of(item)
        if guard is None:
            continue
        params = _params(item.tool_name or "?", item.arguments or "")
        if isinstance(params, str):
            state.reject(item, rejection_message=params)
            continue
        try:
            await _require(guard, params, item.call_id or "", wait_for=timeout)
        except ReviewTimeout:
            raise
        except NotApproved as exc:
            state.reject(item, rejection_message=str(exc))
            continue
        # "Go ahead and ask again": the invocation reads the outcome from Signoff.
        state.approve(item)
    return state


def _guard_of(item: ToolApprovalItem) -> Guard | None:
    tools = getattr(item.agent, "tools", ())
    for tool in tools:
        if isinstance(tool, FunctionTool) and tool.name == item.tool_name:
            guard = getattr(tool, _GUARD_ATTR, None)
            return guard if isinstance(guard, Guard) and tool.needs_approval else None
    return None


async def _require(
    guard: Guard, params: dict[str, Any], call_id: str, *, wait_for: float | None = None
) -> Approval:
    request = guard.request(params, derive_request_id("openai-agents", call_id))
    wait = guard.timeout if wait_for is None else wait_for
    options = {**request, "timeout": wait, "on_review": guard.on_review}
    if isinstance(guard.client, AsyncClient):
        return await guard.client.require(guard.action, params, **options)
    client = guard.sync_client(guard.action)
    return await asyncio.to_thread(client.require, guard.action, params, **options)


async def _evaluate(guard: Guard, params: dict[str, Any], call_id: str) -> Decision:
    request = guard.request(params, derive_request_id("openai-agents", call_id))
    if isinstance(guard.client, AsyncClient):
        return await guard.client.evaluate(guard.action, params, **request)
    client = guard.sync_client(guard.action)
    return await asyncio.to_thread(client.evaluate, guard.action, params, **request)


async def _review(guard: Guard, review_id: str) -> Review:
    if isinstance(guard.client, AsyncClient):
        return await guard.client.get_review(review_id)
    return await asyncio.to_thread(guard.sync_client(guard.action).get_review, review_id)


def _params(tool: str, input_json: str) -> dict[str, Any] | str:
    """The call's arguments as params, or what is wrong with them (for the model)."""
    try:
        params = json.loads(input_json) if input_json.strip() else {}
    except json.JSONDecodeError as exc:
        return f"{tool}: the arguments are not valid JSON ({exc}); nothing was run"
    if not isinstance(params, dict):
        # Positional arguments: nothing names them for the reviewer or the policy.
        return (
            f"{tool}: the arguments must be a JSON object of named arguments, "
            f"got a JSON {_JSON_TYPES.get(type(params), 'value')}; nothing was run"
        )
    return params
