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

Why not the SDK's tool input guardrails (`ToolInputGuardrail`): a guardrail can only let
the call through or reject it, with the arguments the model wrote. A reviewer who edits
the call (MODIFIED) approves other arguments, and running the model's would run what
nobody approved; wrapping `on_invoke_tool` is the one place that can run the approved
params. For the same reason the SDK's `needs_approval` (approval inside the run state) is
left to the application: Signoff's review is the approval.

Invocations are async in the SDK: an `AsyncClient` is awaited, a `Client` runs in a
worker thread.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from typing import Any, Literal

try:
    from agents import FunctionTool
    from agents.tool_context import ToolContext
except ModuleNotFoundError as exc:
    if (exc.name or "").partition(".")[0] not in {"agents", "openai"}:
        raise
    raise ImportError(
        "signoff_client.adapters.openai_agents needs the OpenAI Agents SDK: "
        "pip install 'signoff-client[openai-agents]'"
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
from signoff_client.errors import NotApproved
from signoff_client.models import Decision
from signoff_client.reviews import Approval

__all__ = ["guard_tool"]

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
) -> FunctionTool:
    """Return a copy of `tool` that runs only with params Signoff approved.

    `client` is a `Client` or an `AsyncClient`; `action` defaults to the tool's name.
    `principal`, `resource`, `context`, `justification` and `request_id` are values or
    functions of the call's arguments, as `gate()` takes them. `timeout` bounds the wait
    for a review; `on_review(decision)` is called when one starts. `on_refusal` says
    whether a refusal is the tool's output for the model ("message") or raised ("raise").
    """
    if not isinstance(tool, FunctionTool):
        raise TypeError(
            f"guard_tool: expected an agents.FunctionTool (e.g. from @function_tool), got {tool!r}"
        )
    if on_refusal not in ("message", "raise"):
        raise ValueError(f'guard_tool: on_refusal must be "message" or "raise", got {on_refusal!r}')
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

    guarded = copy.copy(tool)
    guarded.on_invoke_tool = invoke
    return guarded


async def _require(guard: Guard, params: dict[str, Any], call_id: str) -> Approval:
    request = guard.request(params, derive_request_id("openai-agents", call_id))
    options = {**request, "timeout": guard.timeout, "on_review": guard.on_review}
    if isinstance(guard.client, AsyncClient):
        return await guard.client.require(guard.action, params, **options)
    client = guard.sync_client(guard.action)
    return await asyncio.to_thread(client.require, guard.action, params, **options)


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
