"""What is not a tool call passes through Signoff-free: prompts, resources and their
templates, completions, resource subscriptions, the log level, and the upstreams'
notifications about them. Each request goes to the upstream that owns its prompt,
resource or template; a capability no upstream has is not announced."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, get_args

import mcp_types as types
from mcp import ClientSession
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError
from mcp.shared.uri_template import InvalidUriTemplate, UriTemplate

from signoff import logs
from signoff.mcp_proxy.upstreams import Upstream, UpstreamError

log = logging.getLogger("signoff.mcp_proxy")
SEPARATOR = "__"  # <server>__<name> for tool and prompt names several upstreams share
T = TypeVar("T")
SessionId = Callable[[ServerRequestContext[Any]], str]
_LEVELS: list[types.LoggingLevel] = list(get_args(types.LoggingLevel))  # lowest first


def namespaced(
    listed: Iterable[tuple[Upstream, list[T]]], name: Callable[[T], str]
) -> dict[str, tuple[Upstream, T]]:
    """Items by the name the client sees: their own, or <server>__<name> when several
    upstreams list the same name (so that no upstream's item hides another's)."""
    listed = list(listed)
    owners: dict[str, int] = {}
    for _, items in listed:
        for item in items:
            owners[name(item)] = owners.get(name(item), 0) + 1
    routes: dict[str, tuple[Upstream, T]] = {}
    for upstream, items in listed:
        for item in items:
            own = name(item)
            shown = f"{upstream.name}{SEPARATOR}{own}" if owners[own] > 1 else own
            routes[shown] = (upstream, item)
    return routes


class Passthrough:
    """The proxy's handlers for everything but tools, and the relay of upstream notices."""

    def __init__(
        self,
        upstreams: dict[str, Upstream],
        clients: dict[str, ServerSession],
        session_id: SessionId,
    ) -> None:
        self.upstreams = upstreams
        self.clients = clients  # shared with the proxy: the sessions by session id
        self.session_id = session_id
        self.prompts: dict[str, tuple[Upstream, types.Prompt]] = {}
        self.resources: dict[str, Upstream] = {}  # by URI; the first upstream wins a URI
        self.templates: dict[str, Upstream] = {}  # by URI template, likewise
        self.subscribers: dict[str, set[str]] = {}  # URI -> session ids
        self.subscribed: dict[str, Upstream] = {}  # URI -> the upstream subscribed to it
        self.levels: dict[str, types.LoggingLevel] = {}  # session id -> the level it set
        for upstream in upstreams.values():
            upstream.resume = self._resume

    def register(self, server: Server[Any]) -> None:
        """Add the handlers of what the upstreams offer (which decides the capabilities)."""
        add = server.add_request_handler
        if self._offering("prompts"):
            add("prompts/list", types.PaginatedRequestParams, self.list_prompts)
            add("prompts/get", types.GetPromptRequestParams, self.get_prompt)
        if self._offering("resources"):
            add("resources/list", types.PaginatedRequestParams, self.list_resources)
            add("resources/templates/list", types.PaginatedRequestParams, self.list_templates)
            add("resources/read", types.ReadResourceRequestParams, self.read_resource)
        if any(self._subscribable(u) for u in self.upstreams.values()):
            add("resources/subscribe", types.SubscribeRequestParams, self.subscribe)
            add("resources/unsubscribe", types.UnsubscribeRequestParams, self.unsubscribe)
        if self._offering("completions"):
            add("completion/complete", types.CompleteRequestParams, self.complete)
        if self._offering("logging"):
            add("logging/setLevel", types.SetLevelRequestParams, self.set_level)

    # --- prompts -------------------------------------------------------------------------

    async def list_prompts(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        """Every upstream's prompts, namespaced like tools when names clash."""
        listed = []
        for upstream in self._offering("prompts"):
            page = await self._quietly(upstream, lambda s: s.list_prompts())
            listed.append((upstream, page.prompts if page else []))
        self.prompts = namespaced(listed, lambda p: p.name)
        prompts = [p.model_copy(update={"name": name}) for name, (_, p) in self.prompts.items()]
        return types.ListPromptsResult(prompts=prompts)

    async def get_prompt(
        self, ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        """The prompt from the upstream that listed it."""
        upstream, prompt = await self._prompt(ctx, params.name)
        return await self._relay(
            upstream, lambda s: s.get_prompt(prompt.name, arguments=params.arguments)
        )

    async def _prompt(self, ctx: ServerRequestContext[Any], name: str) -> tuple[Upstream, Any]:
        if name not in self.prompts:
            await self.list_prompts(ctx, None)
        if name not in self.prompts:
            raise MCPError(types.INVALID_PARAMS, f"unknown prompt '{name}'")
        return self.prompts[name]

    # --- resources and templates ---------------------------------------------------------

    async def list_resources(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        """Every upstream's resources."""
        resources: list[types.Resource] = []
        self.resources = {}
        for upstream in self._offering("resources"):
            page = await self._quietly(upstream, lambda s: s.list_resources())
            for resource in page.resources if page else []:
                if self.resources.setdefault(str(resource.uri), upstream) is upstream:
                    resources.append(resource)
        return types.ListResourcesResult(resources=resources)

    async def list_templates(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        """Every upstream's resource templates."""
        templates: list[types.ResourceTemplate] = []
        self.templates = {}
        for upstream in self._offering("resources"):
            page = await self._quietly(upstream, lambda s: s.list_resource_templates())
            for template in page.resource_templates if page else []:
                if self.templates.setdefault(template.uri_template, upstream) is upstream:
                    templates.append(template)
        return types.ListResourceTemplatesResult(resource_templates=templates)

    async def read_resource(
        self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        """The resource from the upstream that listed it or a template it matches."""
        uri = str(params.uri)
        upstream = await self._owner(ctx, uri)
        return await self._relay(upstream, lambda s: s.read_resource(uri))

    async def _owner(self, ctx: ServerRequestContext[Any], uri: str) -> Upstream:
        """The upstream of `uri`: listed, else of a template it matches, else the only one
        with resources (a server may serve URIs it does not list)."""
        if uri not in self.resources:
            await self.list_resources(ctx, None)
        if uri in self.resources:
            return self.resources[uri]
        if not self.templates:
            await self.list_templates(ctx, None)
        for template, upstream in self.templates.items():
            if _matches(template, uri):
                return upstream
        offering = self._offering("resources")
        if len(offering) == 1:
            return offering[0]
        raise MCPError(
            types.INVALID_PARAMS,
            f"unknown resource '{uri}': no upstream lists it or a template it matches",
        )

    # --- subscriptions -------------------------------------------------------------------

    async def subscribe(
        self, ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        """Subscribe the client to `uri`; the owner is subscribed once for all clients."""
        uri = str(params.uri)
        upstream = await self._owner(ctx, uri)
        if not self._subscribable(upstream):
            raise MCPError(
                types.INVALID_PARAMS,
                f"upstream '{upstream.name}' (which serves '{uri}') has no resource subscriptions",
            )
        if not self.subscribers.get(uri):
            await self._relay(upstream, lambda s: _subscribe(s, uri))
            self.subscribed[uri] = upstream
        self.subscribers.setdefault(uri, set()).add(self.session_id(ctx))
        return types.EmptyResult()

    async def unsubscribe(
        self, ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        """Unsubscribe the client; the owner too once no client is subscribed."""
        uri = str(params.uri)
        sessions = self.subscribers.get(uri, set())
        sessions.discard(self.session_id(ctx))
        if sessions:
            return types.EmptyResult()
        self.subscribers.pop(uri, None)
        upstream = self.subscribed.pop(uri, None)
        if upstream is not None:
            await self._relay(upstream, lambda s: _unsubscribe(s, uri))
        return types.EmptyResult()

    # --- completions and logging ---------------------------------------------------------

    async def complete(
        self, ctx: ServerRequestContext[Any], params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        """Completions from the upstream of the prompt or resource template."""
        ref = params.ref
        if isinstance(ref, types.PromptReference):
            upstream, prompt = await self._prompt(ctx, ref.name)
            ref = ref.model_copy(update={"name": prompt.name})
        else:
            upstream = await self._template_owner(ctx, ref.uri)
        if not upstream.offers("completions"):
            return types.CompleteResult(completion=types.Completion(values=[]))
        request = types.CompleteRequest(params=params.model_copy(update={"ref": ref}))
        return await self._relay(upstream, lambda s: s.send_request(request, types.CompleteResult))

    async def _template_owner(self, ctx: ServerRequestContext[Any], template: str) -> Upstream:
        if template not in self.templates:
            await self.list_templates(ctx, None)
        if template not in self.templates:
            raise MCPError(types.INVALID_PARAMS, f"unknown resource template '{template}'")
        return self.templates[template]

    async def set_level(
        self, ctx: ServerRequestContext[Any], params: types.SetLevelRequestParams
    ) -> types.EmptyResult:
        """The client's level. An upstream has one level for all clients: it gets the lowest
        any client asked for, and each client only the messages at its level or above."""
        self.levels[self.session_id(ctx)] = params.level
        lowest = self._lowest_level()
        for upstream in self._offering("logging"):
            await self._relay(upstream, lambda s: _set_level(s, lowest))
        return types.EmptyResult()

    def _lowest_level(self) -> types.LoggingLevel:
        return min(self.levels.values(), key=_LEVELS.index)

    # --- the upstreams' notifications ----------------------------------------------------

    async def relay(self, upstream: Upstream, notice: object) -> None:
        """An upstream's notification, to the clients it concerns."""
        if isinstance(notice, types.ResourceUpdatedNotification):
            uri = str(notice.params.uri)
            if self.subscribed.get(uri) is upstream:  # not another's resource of that URI
                await self._tell(self.subscribers.get(uri, set()), notice)
        elif isinstance(notice, types.LoggingMessageNotification):
            # Which upstream said it: the logger name says, before the upstream's own logger.
            logger = upstream.name + (f"/{notice.params.logger}" if notice.params.logger else "")
            params = notice.params.model_copy(update={"logger": logger})
            rank = _LEVELS.index(params.level)
            wanting = [
                session_id
                for session_id in self.clients
                if _LEVELS.index(self.levels.get(session_id, "debug")) <= rank
            ]
            await self._tell(wanting, notice.model_copy(update={"params": params}))
        elif isinstance(
            notice,
            types.ToolListChangedNotification
            | types.PromptListChangedNotification
            | types.ResourceListChangedNotification,
        ):
            await self._tell(self.clients, notice)

    async def broadcast(self, notice: Any) -> None:
        """A notification of the proxy's own, to every client."""
        await self._tell(self.clients, notice)

    async def _tell(self, sessions: Iterable[str], notice: Any) -> None:
        for session_id in list(sessions):
            session = self.clients.get(session_id)
            if session is None:
                continue
            try:
                await session.send_notification(notice)
            except Exception as exc:  # that client is gone: forget it
                self.clients.pop(session_id, None)
                self.levels.pop(session_id, None)
                for subscribed in self.subscribers.values():
                    subscribed.discard(session_id)
                logs.event(log, "mcp.client.gone", session_id=session_id, error=str(exc))

    async def _resume(self, upstream: Upstream, session: ClientSession) -> None:
        """A restarted upstream forgot the level and the subscriptions: give them again."""
        try:
            if self.levels and upstream.offers("logging"):
                await _set_level(session, self._lowest_level())
            for uri, owner in list(self.subscribed.items()):
                if owner is upstream:
                    await _subscribe(session, uri)
        except MCPError as exc:  # it refuses now what it took before: carry on without
            logs.event(
                log, "mcp.upstream.unresumed", logging.ERROR, upstream=upstream.name, error=str(exc)
            )

    # --- helpers -------------------------------------------------------------------------

    def _offering(self, capability: str) -> list[Upstream]:
        return [u for u in self.upstreams.values() if u.offers(capability)]

    @staticmethod
    def _subscribable(upstream: Upstream) -> bool:
        resources = upstream.capabilities.resources if upstream.capabilities else None
        return bool(resources and resources.subscribe)

    async def _quietly(self, upstream: Upstream, request: Any) -> Any:
        try:
            return await upstream.use(request)
        except (UpstreamError, MCPError) as exc:
            if isinstance(exc, MCPError) and exc.error.code == types.METHOD_NOT_FOUND:
                return None  # e.g. resources without templates
            logs.event(
                log, "mcp.upstream.skipped", logging.ERROR, upstream=upstream.name, error=str(exc)
            )
            return None

    async def _relay(self, upstream: Upstream, request: Any) -> Any:
        try:
            return await upstream.use(request)
        except UpstreamError as exc:
            raise MCPError(types.INTERNAL_ERROR, str(exc)) from None


# Sent as plain requests: the SDK's helpers for these warn that the 2026-07-28 protocol
# drops them, and the upstreams here speak the handshake protocols that have them.
async def _subscribe(session: ClientSession, uri: str) -> types.EmptyResult:
    request = types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri))
    return await session.send_request(request, types.EmptyResult)


async def _unsubscribe(session: ClientSession, uri: str) -> types.EmptyResult:
    request = types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(uri=uri))
    return await session.send_request(request, types.EmptyResult)


async def _set_level(session: ClientSession, level: types.LoggingLevel) -> types.EmptyResult:
    request = types.SetLevelRequest(params=types.SetLevelRequestParams(level=level))
    return await session.send_request(request, types.EmptyResult)


def _matches(template: str, uri: str) -> bool:
    try:
        return UriTemplate.parse(template).match(uri) is not None
    except InvalidUriTemplate:
        return False
