"""The MCP server the agent talks to: upstream tools listed (less those the policies deny
whatever their arguments: toolfilter.py), every call asked of Signoff first, with the
tool's annotations (hints.py); the rest passes through (passthrough.py)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import mcp_types as types
from mcp.server.context import CallNext, ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError

from signoff import __version__, logs
from signoff.mcp_proxy.gate import Call, Gate, Refused, coerce_integers
from signoff.mcp_proxy.hints import cautious, hints_of, title_of, tool_context
from signoff.mcp_proxy.passthrough import Passthrough, namespaced
from signoff.mcp_proxy.toolfilter import Screened, ToolFilter
from signoff.mcp_proxy.upstreams import Upstream, UpstreamError

log = logging.getLogger("signoff.mcp_proxy")
# A call forwarded this soon after the upstream answered the list skips the ping that
# tells a crash between calls (the list just did); after a review it pings again.
_FRESH_S = 1.0


class Proxy:
    """Routes the agent's requests to the upstreams, with Signoff in front of tool calls."""

    def __init__(self, upstreams: Sequence[Upstream], gate: Gate) -> None:
        self.upstreams = {u.name: u for u in upstreams}
        # A session per client connection (by session id), to pass notifications on.
        self.clients: dict[str, ServerSession] = {}
        self.gate = gate
        # One stdio process serves one client: its calls share this session id.
        self.process_session = uuid.uuid4().hex
        self.routes: dict[str, tuple[Upstream, types.Tool]] = {}
        self.passthrough = Passthrough(self.upstreams, self.clients, self._session_id)
        for upstream in upstreams:
            upstream.on_notice = self.passthrough.relay
        self._route_tools([(u, u.tools) for u in upstreams])
        self.filter = ToolFilter(gate.config, gate.client)
        self.filter.on_change = self._tools_changed
        gate.on_version = self.filter.saw_version

    async def keep_tools_current(self) -> None:
        """Re-screen the tools as the bundle changes; tell clients when their list did."""
        await self.filter.keep_current(self._screened)

    async def _tools_changed(self) -> None:
        await self.passthrough.broadcast(types.ToolListChangedNotification())

    def server(self) -> Server[Any]:
        """A low-level MCP server whose handlers are this proxy's."""
        server: Server[Any] = _Server(
            "signoff-mcp-proxy",
            version=__version__,
            instructions="Tool calls go through Signoff: some need a human's approval first.",
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
        )
        self.passthrough.register(server)
        server.middleware.append(self._middleware)
        return server

    async def _middleware(self, ctx: ServerRequestContext[Any], call_next: CallNext) -> Any:
        """Every request: remember its client (for list-changed notifications), and give a
        tools/call whose arguments are not an object a tool error the model can read; the
        SDK's validation, which runs after middleware, would answer a protocol error."""
        if ctx.request_id is not None and ctx.method not in ("initialize", "ping"):
            self.clients[self._session_id(ctx)] = ctx.session
        params = ctx.params
        if ctx.method == "tools/call" and isinstance(params, Mapping):
            arguments = params.get("arguments")
            if arguments is not None and not isinstance(arguments, dict):
                return _tool_error(
                    f"the arguments of {params.get('name')} must be a JSON object, not "
                    f"{_json_type(arguments)}; nothing was called"
                )
        return await call_next(ctx)

    # --- tools -------------------------------------------------------------------------

    async def list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        """Every upstream's tools, less those the policies deny whatever their arguments; an
        upstream that is down is left out (and logged)."""
        listed: list[tuple[Upstream, list[types.Tool]]] = []
        for upstream in self.upstreams.values():
            try:
                listed.append((upstream, await upstream.list_tools()))
            except (UpstreamError, MCPError) as exc:
                logs.event(
                    log, "mcp.tools.unlisted", logging.ERROR, upstream=upstream.name, error=str(exc)
                )
        self._route_tools(listed)
        hidden = await self.filter.hidden(self._screened())
        if hidden:
            logs.event(log, "mcp.tools.hidden", tools=",".join(sorted(hidden)))
        tools = [
            tool.model_copy(update={"name": name})
            for name, (_, tool) in self.routes.items()
            if name not in hidden
        ]
        return types.ListToolsResult(tools=tools)

    def _screened(self) -> dict[str, Screened]:
        """Each routed tool as Signoff screens it: action, upstream, the tool's context."""
        return {
            name: (
                f"mcp.{upstream.name}.{tool.name}",
                upstream.name,
                self._tool_context(upstream, tool.name, hints_of(tool), title_of(tool)),
            )
            for name, (upstream, tool) in self.routes.items()
        }

    def _tool_context(
        self, upstream: Upstream, tool: str, hints: dict[str, bool], title: str
    ) -> dict[str, Any]:
        pins = upstream.config.annotations.get(tool)
        return {"upstream": upstream.name, "tool": tool, **tool_context(hints, title, pins)}

    def _route_tools(self, listed: Iterable[tuple[Upstream, list[types.Tool]]]) -> None:
        self.routes = namespaced(listed, lambda tool: tool.name)

    async def call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        """Ask Signoff, then forward (or refuse with a tool error the model can read)."""
        route = self.routes.get(params.name)
        if route is None:
            await self.list_tools(ctx, None)  # an upstream may have gained the tool
            route = self.routes.get(params.name)
        if route is None:
            return _tool_error(f"unknown tool '{params.name}'")
        upstream, tool = route
        arguments = {} if params.arguments is None else params.arguments
        hints, listed_at = await self._hints_now(upstream, tool)
        call = Call(
            upstream=upstream.name,
            tool=tool.name,
            arguments=arguments,
            request_id=f"mcp:{self._session_id(ctx)}:{ctx.request_id}",
            context={"mcp": self._context(ctx, upstream, tool, hints)},
        )
        progress = _Progress(ctx)
        try:
            approved = await self.gate.check(call, progress.beat)
        except Refused as exc:
            logs.event(log, "mcp.call.refused", action=call.action, reason=str(exc))
            return _tool_error(str(exc))
        approved = coerce_integers(approved, tool.input_schema)
        try:
            # The list just answered: no ping first, unless a review made the call wait.
            fresh = listed_at is not None and time.monotonic() - listed_at < _FRESH_S
            result = await upstream.call_tool(tool.name, approved, progress.relay, not fresh)
        except UpstreamError as exc:
            return _tool_error(str(exc))
        except MCPError as exc:
            return _tool_error(
                f"upstream '{upstream.name}' failed {tool.name}: {exc.error.message}"
            )
        logs.event(log, "mcp.call.forwarded", action=call.action, is_error=result.is_error)
        return result

    def _session_id(self, ctx: ServerRequestContext[Any]) -> str:
        headers = getattr(ctx.request, "headers", None)
        http_session = headers.get("mcp-session-id") if headers is not None else None
        return http_session or self.process_session

    def _context(
        self,
        ctx: ServerRequestContext[Any],
        upstream: Upstream,
        tool: types.Tool,
        hints: dict[str, bool],
    ) -> dict[str, Any]:
        client = ctx.session.client_params.client_info if ctx.session.client_params else None
        return {
            "session_id": self._session_id(ctx),
            "client": {
                "name": client.name if client else "",
                "version": client.version if client else "",
            },
            **self._tool_context(upstream, tool.name, hints, title_of(tool)),
        }

    async def _hints_now(
        self, upstream: Upstream, listed: types.Tool
    ) -> tuple[dict[str, bool], float | None]:
        """The hints the call is decided with: those listed to the client and those the
        upstream lists now, merged toward caution (hints.cautious); and when it listed.
        A tool it no longer lists has no hints now; if it cannot list, the listed hints
        are used and the call's own failure will tell."""
        try:
            current = await upstream.list_tools()
        except (UpstreamError, MCPError):
            return hints_of(listed), None
        listed_at = time.monotonic()
        now = next((t for t in current if t.name == listed.name), None)
        merged = cautious(hints_of(listed), hints_of(now) if now is not None else {})
        return merged, listed_at


class _Progress:
    """One call's progress notifications: the proxy's beats while a review waits, then the
    upstream's own, shifted past them (progress must increase for the whole call)."""

    def __init__(self, ctx: ServerRequestContext[Any]) -> None:
        self._report = ctx.session.report_progress  # a no-op if the client gave no token
        self._beats = 0.0

    async def beat(self, progress: float, total: float | None, message: str | None) -> None:
        """A beat of the wait for a review."""
        self._beats = progress
        await self._report(progress, total, message)

    async def relay(self, progress: float, total: float | None, message: str | None) -> None:
        """The upstream's progress on the call itself."""
        shifted_total = None if total is None else self._beats + total
        await self._report(self._beats + progress, shifted_total, message)


class _Server(Server[Any]):
    """The low-level server, announcing `listChanged` for tools, and for prompts and resources
    if it has them (upstreams' changes are relayed)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        """The SDK's options with the list changes on."""
        changes = NotificationOptions(
            prompts_changed=True, resources_changed=True, tools_changed=True
        )
        return super().create_initialization_options(
            notification_options or changes,
            experimental_capabilities,
            extensions,
        )


def _tool_error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else type(value).__name__
