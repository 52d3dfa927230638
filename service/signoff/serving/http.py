"""The HTTP port (`http_listen`): the Connect API for browsers, the reviewer console's files,
`/healthz` (liveness) and `/readyz` (readiness), on aiohttp in the event loop that runs the
gRPC server."""

from __future__ import annotations

import logging
import math
import ssl
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Final
from urllib.parse import unquote

from aiohttp import web

from signoff import errors
from signoff.api.connect import ConnectHandler
from signoff.limits.peers import PeerGate
from signoff.net import is_loopback

log = logging.getLogger("signoff.http")

STATIC: Final = Path(__file__).parents[1] / "console" / "static"
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PROMETHEUS_TEXT: Final = "text/plain; version=0.0.4; charset=utf-8"
# Files under assets/ have a content hash in their name, so they never change.
IMMUTABLE: Final = "public, max-age=31536000, immutable"
# aiohttp's own caps on a request's head, set here so that they are stated: a request line or
# header line of at most 8 KiB, at most 128 header fields.
MAX_LINE: Final = 8190
MAX_HEADERS: Final = 128
# After a response to a request whose body was not read (a refused caller), aiohttp reads and
# discards what is still coming for this long, so the answer is not lost to a reset, then
# closes the connection. Its default, 10 s, would let each refused upload hold a connection.
LINGER_S: Final = 1.0

PostHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpServer:
    """The aiohttp application and its one listening site."""

    def __init__(
        self,
        connect: ConnectHandler,
        grace: float,
        static: Path = STATIC,
        loopback_only: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
        metrics: Callable[[], bytes] | None = None,
        posts: Mapping[str, PostHandler] | None = None,
        peers: PeerGate | None = None,
    ) -> None:
        self.connect = connect
        # Endpoints outside Connect that authenticate their own callers, by exact path: the
        # Slack app's interactivity endpoint (Slack's signature), the e-mail link redeem
        # (the link's). POST only; each call first takes a token of its address's rate
        # (`peers`, as every RPC does): what it costs before its caller is known is bounded.
        self.posts = dict(posts or {})
        self.peers = peers
        self.reuse_port = reuse_port  # `serve --workers`: every worker listens on the port
        self.metrics = metrics  # renders /metrics (Prometheus text); None: no such path
        self.static = static.resolve()
        # In dev mode (no authentication) a page on any site could reach a loopback port
        # through DNS rebinding; the Host it sends then names that site, so it is refused.
        self.loopback_only = loopback_only
        self.stopping = False
        self.ready = False  # set once the store is open, the bundle loaded, gRPC serving
        self.ssl_context = ssl_context  # None: plain HTTP
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._dispatch)
        app.on_response_prepare.append(_secure)
        # Cancelling the handler when the client goes away ends its stream. Bodies are not
        # decompressed: only identity is accepted, so no small body inflates past the limit.
        # aiohttp treats a shutdown timeout of 0 as "wait forever", hence the floor.
        # aiohttp arms its keep-alive timer when a connection opens and again after each
        # response, and closes the connection if no complete request head arrived by then:
        # with idle_timeout that is the header timeout too (slowloris), not just idleness.
        idle = connect.limits.idle_timeout
        self.runner = web.AppRunner(
            app,
            handler_cancellation=True,
            auto_decompress=False,
            access_log=None,
            shutdown_timeout=max(grace, 0.1),
            keepalive_timeout=idle,
            max_line_size=MAX_LINE,
            max_field_size=MAX_LINE,
            max_headers=MAX_HEADERS,
            lingering_time=LINGER_S,
        )

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: any free port); return the bound port."""
        await self.runner.setup()
        site = web.TCPSite(
            self.runner,
            host.strip("[]"),
            port,
            reuse_address=True,
            reuse_port=self.reuse_port,
            ssl_context=self.ssl_context,
        )
        try:
            await site.start()
        except BaseException:
            await self.runner.cleanup()
            raise
        return int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop accepting, end open streams, let other calls finish within the grace."""
        self.stopping = True
        self.connect.close()
        await self.runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if self.loopback_only and not _is_loopback_host(request):
            return web.Response(
                status=403,
                text="with no authentication configured (dev mode) the server answers only "
                "requests addressed to localhost\n",
            )
        path = request.path
        if path in self.posts:
            return await self._post(request, self.posts[path])
        if request.method == "POST" or self.connect.owns(path):
            return await self.connect.handle(request)
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD"})
        if path == "/healthz":
            if self.stopping:
                return web.Response(status=503, text="stopping\n")
            return web.Response(text="ok\n")
        if path == "/readyz":
            if self.stopping or not self.ready:
                return web.Response(
                    status=503, text="stopping\n" if self.stopping else "starting\n"
                )
            return web.Response(text="ready\n")
        if path == "/metrics" and self.metrics is not None:
            return web.Response(body=self.metrics(), headers={"Content-Type": PROMETHEUS_TEXT})
        # Dot segments are refused as sent (aiohttp resolves them in request.path) and once
        # decoded (%2e%2e, %2f): neither may reach outside the static directory.
        raw = unquote(request.raw_path.partition("?")[0])
        if any(p in (".", "..") or "\\" in p or "\0" in p for p in raw.split("/")):
            return web.Response(status=404, text="not found\n")
        return self._file(path)

    async def _post(self, request: web.Request, handler: PostHandler) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405, headers={"Allow": "POST"})
        if self.peers is not None:
            try:
                self.peers.admit(request.remote or "")
            except errors.ResourceExhausted as exc:
                wait = max(1, math.ceil(exc.retry_after or 1))
                return web.json_response(
                    {"error": exc.message}, status=429, headers={"Retry-After": str(wait)}
                )
        return await handler(request)

    def _file(self, path: str) -> web.StreamResponse:
        """A console file, or index.html for the app's own routes (/reviews/<id>, /audit)."""
        parts = path.split("/")
        candidate = (self.static / path.lstrip("/")).resolve()
        if candidate.is_relative_to(self.static) and candidate.is_file():
            rel = candidate.relative_to(self.static).parts
            cache = IMMUTABLE if rel[0] == "assets" and len(rel) > 1 else "no-cache"
            return web.FileResponse(candidate, headers={"Cache-Control": cache})
        # A missing hashed file must not turn into HTML that the browser then runs as code.
        if parts[1] == "assets":
            return web.Response(status=404, text="not found\n")
        index = self.static / "index.html"
        if not index.is_file():
            return web.Response(status=404, text="the console is not built into this package\n")
        return web.FileResponse(index, headers={"Cache-Control": "no-cache"})


async def _secure(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


def _is_loopback_host(request: web.Request) -> bool:
    try:
        name = request.url.host or ""
    except ValueError:  # a Host header that is not a host
        return False
    return name.endswith(".localhost") or is_loopback(name)
