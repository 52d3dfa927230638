"""LangChain tools that run only as Signoff allows; a review becomes a LangGraph interrupt.

    from signoff_client.adapters.langgraph import signoff_tool

    refund = signoff_tool(issue_refund, client=signoff, action="refund.issue",
                          principal="support-bot")
    tools = ToolNode([refund])   # or create_agent(model, [refund], checkpointer=...)

`signoff_tool` takes a LangChain tool (a `BaseTool`, e.g. from `@tool`) or a plain
function and returns a tool with the same name, description and arguments. Every call
asks Signoff first, with the call's arguments as the action's params:

- allow: the wrapped tool runs with the approved params;
- deny, reject, expiry, cancel: the wrapped tool does not run. A `SignoffToolError` (a
  LangChain `ToolException`) carries the reason; as LangChain handles tool exceptions,
  `handle_tool_error=True` (the default here) turns it into the tool's answer
  (`ToolMessage(status="error")`) so the model can explain; `False` raises it instead,
  and a string or a function of the exception gives other content;
- review, inside a LangGraph run whose graph has a checkpointer and for a call with a
  tool call id (as `ToolNode` makes them): `interrupt()` with a description of the review
  (`review_payload`). Resume the graph with `Command(resume=...)` once the review is
  resolved; the resume value is not read, since only Signoff says what was decided.
  LangGraph re-runs the tool from the start: the request id is derived from the thread
  and the tool call id, so the re-run finds the same decision and review (no second
  review), reads how it was resolved and runs the tool with exactly what was approved (a
  reviewer's edits included, digest-checked as `require()` does). Resumed while the
  review is still pending, the graph is interrupted again;
- review otherwise (no checkpointer, or outside a graph): blocks as `client.require()`
  does, up to `timeout` seconds (`ReviewTimeout` is a refusal like the others).

Several tool calls of one model turn: give each its own task, with `Send` (as
`create_agent` does). A plain `ToolNode` runs them all in one task, and LangGraph re-runs
the whole task on resume, so a call that was approved and ran while another waited for
its review would run again.

Async tools (`ainvoke`) need an `AsyncClient`, sync ones a `Client`. Arguments LangGraph
injects (`InjectedState`, `InjectedStore`, `InjectedToolCallId`) are not sent to Signoff
and reach the wrapped tool unchanged; tools taking a `ToolRuntime` are not supported.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable, Generator, Mapping
from typing import Any

from signoff_client._extras import install_hint

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForToolRun,
        CallbackManagerForToolRun,
    )
    from langchain_core.messages.tool import tool_call
    from langchain_core.runnables import RunnableConfig
    from langchain_core.runnables.config import patch_config
    from langchain_core.tools import BaseTool, StructuredTool, ToolException
    from langchain_core.utils.pydantic import get_fields
    from langgraph.constants import CONFIG_KEY_CHECKPOINTER
    from langgraph.types import interrupt
    from pydantic_core import to_jsonable_python
except ModuleNotFoundError as exc:
    if (exc.name or "").partition(".")[0] not in {"langchain_core", "langgraph", "pydantic_core"}:
        raise
    raise ImportError(
        "signoff_client.adapters.langgraph needs LangGraph and LangChain: "
        + install_hint("signoff-client", "langgraph")
    ) from exc

from signoff_client import _approval
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
from signoff_client.reviews import Approval, Review

__all__ = ["SignoffTool", "SignoffToolError", "review_payload", "signoff_tool"]

# The tool call id of the call being run: BaseTool.run gets it, BaseTool._run does not.
_CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "signoff_tool_call_id", default=None
)

# One call on the client (a Client or an AsyncClient) that SignoffTool._approve asks for.
_Step = Callable[[Any], Any]


class SignoffToolError(ToolException):
    """Signoff did not approve the call; `error` is the `NotApproved` saying why."""

    def __init__(self, error: NotApproved) -> None:
        super().__init__(str(error))
        self.error = error


def signoff_tool(
    tool: BaseTool | Callable[..., Any],
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
    handle_tool_error: bool | str | Callable[[ToolException], Any] | None = True,
) -> SignoffTool:
    """Return `tool` guarded by Signoff: it runs only with params Signoff approved.

    `client` is a `Client` (sync calls) or an `AsyncClient` (async calls); `action`
    defaults to the tool's name. `principal`, `resource`, `context`, `justification` and
    `request_id` are values or functions of the call's arguments, as `gate()` takes them;
    without `request_id` a tool call id gives one (see the module docstring). `timeout`
    bounds a blocking wait for a review; `on_review(decision)` is called when one starts
    (an interrupt hands the review to whoever runs the graph instead).
    `handle_tool_error` is LangChain's: what a refusal becomes (see the module docstring).
    """
    if not isinstance(tool, BaseTool):
        if not callable(tool):
            raise TypeError(f"signoff_tool: expected a LangChain tool or a function, got {tool!r}")
        is_async = inspect.iscoroutinefunction(tool)
        tool = StructuredTool.from_function(
            func=None if is_async else tool, coroutine=tool if is_async else None
        )
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
    return SignoffTool(
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema,
        return_direct=tool.return_direct,
        handle_tool_error=handle_tool_error,
        tool=tool,
        guard=guard,
    )


def review_payload(review: Review, tool: str, tool_call_id: str) -> dict[str, Any]:
    """The value a guarded tool passes to `interrupt()` while its call awaits a review."""
    return {
        "type": "signoff.review",
        "review_id": review.review_id,
        "state": review.state.name,
        "reviewer_group": review.reviewer_group,
        "reason": review.reason,
        "action": review.action,
        # As the server stored them (redacted paths masked): the checkpoint keeps them.
        "params": review.params,
        "expires_at": review.expires_at.isoformat() if review.expires_at else None,
        "tool": tool,
        "tool_call_id": tool_call_id,
    }


class SignoffTool(BaseTool):
    """A LangChain tool that asks Signoff before running `tool`; see `signoff_tool`."""

    tool: BaseTool
    guard: Guard

    def run(self, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
        """Run as `BaseTool.run`, keeping the tool call id for `_run`."""
        token = _CALL_ID.set(kwargs.get("tool_call_id"))
        try:
            return super().run(tool_input, *args, **kwargs)
        finally:
            _CALL_ID.reset(token)

    async def arun(self, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
        """Run as `BaseTool.arun`, keeping the tool call id for `_arun`."""
        token = _CALL_ID.set(kwargs.get("tool_call_id"))
        try:
            return await super().arun(tool_input, *args, **kwargs)
        finally:
            _CALL_ID.reset(token)

    def _run(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        params, injected = self._split(args, kwargs)
        call_id = _CALL_ID.get()
        client = self.guard.sync_client(self.name)
        try:
            approval = _drive(self._approve(params, config, call_id), client)
        except NotApproved as exc:
            raise SignoffToolError(exc) from exc
        child = patch_config(config, callbacks=run_manager.get_child() if run_manager else None)
        return self.tool.invoke(self._call(approval, injected, call_id), child)

    async def _arun(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        params, injected = self._split(args, kwargs)
        call_id = _CALL_ID.get()
        client = self.guard.async_client(self.name)
        try:
            approval = await _adrive(self._approve(params, config, call_id), client)
        except NotApproved as exc:
            raise SignoffToolError(exc) from exc
        child = patch_config(config, callbacks=run_manager.get_child() if run_manager else None)
        return await self.tool.ainvoke(self._call(approval, injected, call_id), child)

    def _approve(
        self, params: dict[str, Any], config: RunnableConfig, call_id: str | None
    ) -> Generator[_Step, Any, Approval]:
        """Ask Signoff about the call: yields each client call, for `_drive` or `_adrive`.

        One sequence for `_run` and `_arun`, which differ only in awaiting the calls.
        """
        request = self.guard.request(params, self._derived_id(config, call_id))
        action = self.guard.action
        if call_id is None or not _checkpointed(config):
            return (
                yield lambda client: client.require(
                    action,
                    params,
                    **request,
                    timeout=self.guard.timeout,
                    on_review=self.guard.on_review,
                )
            )
        decision = yield lambda client: client.evaluate(action, params, **request)
        approval = _approval.from_decision(decision, params)
        if approval is not None:
            return approval
        review = yield lambda client: client.get_review(decision.review_id)
        while not review.final:
            interrupt(review_payload(review, self.name, call_id))
            review = yield lambda client: client.get_review(decision.review_id)
        return _approval.from_review(action, params, decision, review)

    def _split(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return (the params for Signoff: what the model wrote, the injected arguments)."""
        if args:
            # A bare string input: the reviewer would see params without names.
            raise TypeError(
                f"{self.name} is guarded by Signoff: call it with a dict of arguments or "
                f"a ToolCall, not a bare {type(args[0]).__name__} input"
            )
        visible = _model_fields(self.tool)
        params = {k: v for k, v in kwargs.items() if k in visible}
        injected = {k: v for k, v in kwargs.items() if k not in visible}
        # Signoff params are JSON: pydantic values (models, dates) as their JSON form.
        return to_jsonable_python(params), injected

    def _derived_id(self, config: RunnableConfig, call_id: str | None) -> str | None:
        if call_id is None:
            return None
        thread = (config.get("configurable") or {}).get("thread_id")
        return derive_request_id("langchain", str(thread or "-"), call_id)

    def _call(self, approval: Approval, injected: Mapping[str, Any], call_id: str | None) -> Any:
        args = {**approval.params, **injected}
        if call_id is None:
            return args
        # A ToolCall in, a ToolMessage out: the wrapped tool's own output format applies.
        return tool_call(name=self.tool.name, args=args, id=call_id)


def _drive(steps: Generator[_Step, Any, Approval], client: Client) -> Approval:
    """Run `_approve`'s steps, each a call on a sync `client`; return the approval."""
    result = None
    try:
        while True:
            result = steps.send(result)(client)
    except StopIteration as done:
        return done.value


async def _adrive(steps: Generator[_Step, Any, Approval], client: AsyncClient) -> Approval:
    """Run `_approve`'s steps, each an awaited call on an async `client`; return the approval."""
    result = None
    try:
        while True:
            result = await steps.send(result)(client)
    except StopIteration as done:
        return done.value


def _checkpointed(config: RunnableConfig) -> bool:
    """True inside a LangGraph run whose graph has a checkpointer, so interrupt() works."""
    # LangGraph keeps the key public "for backwards compatibility" until v2 (we pin <2).
    return (config.get("configurable") or {}).get(CONFIG_KEY_CHECKPOINTER) is not None


def _model_fields(tool: BaseTool) -> frozenset[str]:
    """The arguments the model writes (not those LangGraph injects)."""
    schema = tool.tool_call_schema
    if isinstance(schema, dict):
        return frozenset(schema.get("properties", {}))
    return frozenset(get_fields(schema))
