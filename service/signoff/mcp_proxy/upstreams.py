"""The MCP servers behind the proxy: connect, list, call, and reconnect after a crash.

Each upstream's transport and `ClientSession` live in one task of their own (anyio's
cancel scopes must be left in the task that entered them); the proxy talks to the session
that task publishes, and cancels the task to disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import tempfile
from collections.abc import Awaitable, Callable
from typing import IO, Any, TypeVar

import anyio
import httpx2
import mcp_types as types
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from signoff import __version__, logs
from signoff.mcp_proxy.config import UpstreamConfig

log = logging.getLogger("signoff.mcp_proxy")

T = TypeVar("T")
Progress = Callable[[float, float | None, str | None], Awaitable[None]]
# Told of the upstream's notifications (list changes, updated resources, log messages).
OnNotice = Callable[["Upstream", object], Awaitable[None]]
# Given each new session after a restart, before any request uses it.
Resume = Callable[["Upstream", ClientSession], Awaitable[None]]
# What a dead transport raises at the session's user, besides MCPError(CONNECTION_CLOSED).
_GONE = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)
_TAIL_PREFIX = "; its stderr ends with: "
_STDERR_TAIL = 800  # characters of a dead upstream's stderr read for the error
_TAIL_LINES = 3  # of them, the last lines quoted (a traceback's frame, source, exception)


class UpstreamError(Exception):
    """An upstream cannot be reached, did not start, or died; the message says which and why."""


class Upstream:
    """One upstream MCP server; connects on `start()` and again after it died."""

    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self.on_notice: OnNotice | None = None
        self.resume: Resume | None = None
        self.name = config.name
        self.tools: list[types.Tool] = []
        # What it declared when it (first) connected; kept while it is down.
        self.capabilities: types.ServerCapabilities | None = None
        self._connected_once = False
        self._session: ClientSession | None = None
        self._holder: asyncio.Task[None] | None = None
        self._stderr: IO[str] | None = None
        self._http_error: str | None = None
        self._lock = asyncio.Lock()
        self._notices: set[asyncio.Task[None]] = set()  # held: the loop keeps weak references
        self._last_notice: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and list the tools; UpstreamError saying why it failed."""
        async with self._lock:
            await self._connect()

    async def _connect(self) -> None:
        await self._disconnect()
        self._http_error = None
        if self.config.command is not None:
            # A real file (the child writes to its descriptor), kept past the process's end
            # to explain why it ended; one per process, so the tail is this process's.
            self._close_stderr()
            self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
        self._holder = asyncio.create_task(self._hold(ready), name=f"mcp-upstream-{self.name}")
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                session = await asyncio.shield(ready)
                self.capabilities = session.server_capabilities
                if self._connected_once and self.resume is not None:
                    await self.resume(self, session)
                self.tools = await self._list_tools(session)
                self._session = session
                self._connected_once = True
        except TimeoutError:
            tail = self._last_words()  # before the disconnect closes the file
            await self._disconnect()
            raise UpstreamError(
                f"upstream '{self.name}' ({self.config.where}) did not answer within "
                f"{self.config.connect_timeout:g}s (connect_timeout){tail}"
            ) from None
        except Exception as exc:
            tail = self._last_words()
            await self._disconnect()
            raise UpstreamError(
                f"upstream '{self.name}' ({self.config.where}) did not start: "
                f"{_describe(exc, self.config)}{tail}"
            ) from None
        logs.event(log, "mcp.upstream.connected", upstream=self.name, tools=len(self.tools))

    async def _hold(self, ready: asyncio.Future[ClientSession]) -> None:
        """Open the transport and the session, publish it, and keep both until told to stop."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self.config.url is not None:
                    http = await stack.enter_async_context(
                        httpx2.AsyncClient(
                            headers=self.config.headers,
                            timeout=httpx2.Timeout(30.0, read=300.0),
                            event_hooks={"response": [self._note_response]},
                        )
                    )
                    streams = await stack.enter_async_context(
                        streamable_http_client(self.config.url, http_client=http)
                    )
                else:
                    params = StdioServerParameters(
                        command=self.config.command or "",
                        args=self.config.args,
                        env=self.config.env or None,
                        cwd=self.config.cwd,
                    )
                    streams = await stack.enter_async_context(
                        stdio_client(params, self._stderr or sys.stderr)
                    )
                session = await stack.enter_async_context(
                    ClientSession(
                        *streams,
                        client_info=types.Implementation(
                            name="signoff-mcp-proxy", version=__version__
                        ),
                        message_handler=self._on_message,
                    )
                )
                await session.initialize()
                ready.set_result(session)
                await asyncio.Event().wait()  # until cancelled by _disconnect
        except Exception as exc:
            if not ready.done():
                ready.set_exception(_unwrap(exc))
        except BaseException:
            ready.cancel()  # no-op once the session was published
            raise

    async def _on_message(self, message: object) -> None:
        """The upstream's notifications, passed on (transport errors arrive here too)."""
        if isinstance(message, _NOTICES) and self.on_notice is not None:
            logs.event(log, "mcp.upstream.notice", upstream=self.name, method=message.method)
            # Not awaited here: the clients may re-list through this very session. Each
            # waits for the one before, so that the clients get them in the upstream's order.
            task = asyncio.get_running_loop().create_task(
                self._pass_on(self._last_notice, self.on_notice, message)
            )
            self._last_notice = task
            self._notices.add(task)
            task.add_done_callback(self._notices.discard)

    async def _pass_on(
        self, before: asyncio.Task[None] | None, on_notice: OnNotice, message: object
    ) -> None:
        if before is not None:
            with contextlib.suppress(Exception):
                await before
        try:
            await on_notice(self, message)
        except Exception as exc:  # one notice lost, not the ones after it
            logs.event(log, "mcp.notice.lost", logging.ERROR, upstream=self.name, error=str(exc))

    async def _disconnect(self) -> None:
        self._session = None
        holder, self._holder = self._holder, None
        if holder is None:
            return
        # Cancelling unwinds the session and the transport; the SDK shields and bounds the
        # stdio shutdown (stdin closed, then SIGTERM, then SIGKILL: at most ~4.5 s).
        holder.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(holder, timeout=10)

    async def close(self) -> None:
        """Disconnect (stop the process of a stdio upstream)."""
        async with self._lock:
            await self._disconnect()
            self._close_stderr()

    def _close_stderr(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    async def _live_session(self, ping: bool = True) -> ClientSession:
        """The session, reconnected first if the upstream died since the last call (which
        a ping tells; `ping=False` when a request just answered on it)."""
        async with self._lock:
            session = self._session
            if session is not None and not ping:
                return session
            if session is not None:
                try:
                    # A crash between calls shows here, before a call is sent that could
                    # otherwise not be told apart from one that died mid-execution.
                    await session.send_ping()
                    return session
                except (MCPError, *_GONE) as exc:
                    logs.event(
                        log,
                        "mcp.upstream.lost",
                        logging.WARNING,
                        upstream=self.name,
                        error=_describe(exc, self.config),
                        stderr=self._last_words().removeprefix(_TAIL_PREFIX),
                    )
            await self._connect()
            assert self._session is not None
            return self._session

    async def list_tools(self) -> list[types.Tool]:
        """The upstream's tools now (reconnecting if needed)."""
        self.tools = await self.use(self._list_tools)
        return self.tools

    async def use(self, request: Callable[[ClientSession], Awaitable[T]], ping: bool = True) -> T:
        """Run one request on the live session; UpstreamError if the upstream is down or
        dies during it. A JSON-RPC error the upstream answers with is raised as MCPError."""
        session = await self._live_session(ping)
        try:
            return await request(session)
        except MCPError as exc:
            if not _connection_closed(exc):
                raise
            raise self._died(exc) from None
        except _GONE as exc:
            raise self._died(exc) from None

    def offers(self, capability: str) -> bool:
        """Whether the upstream declared `capability` (prompts, resources, completions,
        logging) when it connected."""
        caps = self.capabilities
        return caps is not None and getattr(caps, capability, None) is not None

    async def call_tool(
        self, name: str, arguments: dict[str, Any], progress: Progress | None, ping: bool = True
    ) -> types.CallToolResult:
        """Forward one tool call, relaying the upstream's progress to `progress`; `ping`:
        see _live_session."""

        async def call(session: ClientSession) -> types.CallToolResult:
            result = await session.call_tool(name, arguments, progress_callback=progress)
            if not isinstance(result, types.CallToolResult):
                raise UpstreamError(
                    f"upstream '{self.name}' answered {name} with a non-tool result"
                )
            return result

        return await self.use(call, ping)

    def _died(self, exc: BaseException) -> UpstreamError:
        self._session = None  # the next call reconnects
        tail = self._last_words()
        logs.event(
            log,
            "mcp.upstream.died",
            logging.ERROR,
            upstream=self.name,
            error=_describe(exc, self.config),
            stderr=tail.removeprefix(_TAIL_PREFIX),
        )
        return UpstreamError(
            f"upstream '{self.name}' ({self.config.where}) died during the call: "
            f"{_describe(exc, self.config)}; the call may or may not have run there, and the "
            f"upstream is restarted on the next call{tail}"
        )

    async def _list_tools(self, session: ClientSession) -> list[types.Tool]:
        tools: list[types.Tool] = []
        cursor: str | None = None
        while True:
            page = await session.list_tools(
                params=types.PaginatedRequestParams(cursor=cursor) if cursor else None
            )
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                return tools

    async def _note_response(self, response: httpx2.Response) -> None:
        # The SDK turns an HTTP error into "Server returned an error response": keep the
        # status, which says what is wrong (401: the headers; 404: the URL's path).
        if response.status_code >= 400:
            self._http_error = (
                f"HTTP {response.status_code} {response.reason_phrase} from {response.url}"
            )

    def _last_words(self) -> str:
        if self.config.url is not None:
            return f"; last HTTP error: {self._http_error}" if self._http_error else ""
        if self._stderr is None or self._stderr.closed:
            return ""
        try:
            self._stderr.flush()
            self._stderr.seek(0, 2)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - _STDERR_TAIL))
            text = self._stderr.read()
        except (OSError, ValueError):
            return ""
        # One line, as every error of the proxy: a traceback's last lines name the failure
        # (its ^^^ markers, which point into a line no longer above them, are left out).
        lines = [line.strip() for line in text.splitlines() if line.strip(" \t^~")]
        tail = " | ".join(lines[-_TAIL_LINES:])
        return f"{_TAIL_PREFIX}{tail}" if tail else ""


_NOTICES = (
    types.ToolListChangedNotification,
    types.PromptListChangedNotification,
    types.ResourceListChangedNotification,
    types.ResourceUpdatedNotification,
    types.LoggingMessageNotification,
)


def _connection_closed(exc: MCPError) -> bool:
    return exc.error.code == types.CONNECTION_CLOSED


def _unwrap(exc: Exception) -> Exception:
    """The first real error inside anyio's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        first = exc.exceptions[0]
        if not isinstance(first, Exception):
            break
        exc = first
    return exc


def _describe(exc: BaseException, config: UpstreamConfig) -> str:
    exc = _unwrap(exc) if isinstance(exc, Exception) else exc
    if isinstance(exc, FileNotFoundError) and config.command is not None:
        return f"command '{config.command}' not found (is it installed and on PATH?)"
    if isinstance(exc, PermissionError) and config.command is not None:
        return f"command '{config.command}' is not executable"
    if isinstance(exc, MCPError) and _connection_closed(exc):
        return "its process exited" if config.command else f"the connection closed ({exc})"
    if isinstance(exc, _GONE):
        return "the connection closed"
    if isinstance(exc, httpx2.HTTPError):
        return f"HTTP: {exc}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
