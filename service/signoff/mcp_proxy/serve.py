"""Start the upstreams, then serve the proxy over stdio or streamable HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
import sys
from collections.abc import Mapping
from typing import Any

import grpc
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from signoff import logs
from signoff.mcp_proxy import in_band
from signoff.mcp_proxy.config import McpConfigError, ProxyConfig
from signoff.mcp_proxy.gate import Gate
from signoff.mcp_proxy.proxy import Proxy
from signoff.mcp_proxy.upstreams import Upstream
from signoff_client import AsyncClient, tls_credentials

log = logging.getLogger("signoff.mcp_proxy")


async def serve(
    config: ProxyConfig,
    target: str,
    http: tuple[str, int] | None,
    tls_origins: Mapping[str, str] | None = None,
) -> None:
    """Connect every upstream (UpstreamError if one cannot start), then serve until the
    client leaves (stdio) or the process is stopped (HTTP). `tls_origins` names where a
    TLS file came from when not from the config (`--ca`, `$SIGNOFF_CA`), for errors."""
    credentials = _tls(config, tls_origins or {})
    upstreams = [Upstream(c) for c in config.upstreams]
    try:
        for upstream in upstreams:
            await upstream.start()
        async with AsyncClient(
            target,
            token=config.signoff.token,
            timeout=config.signoff.timeout,
            credentials=credentials,
        ) as client:
            human = _human(config, target, credentials)
            console = config.in_band.console_url if config.in_band is not None else None
            asks = in_band.InBand(human, console) if human is not None else None
            proxy = Proxy(upstreams, Gate(config, client, asks))
            logs.event(
                log,
                "mcp.proxy.ready",
                signoff=target,
                fail_mode=config.fail_mode,
                upstreams=",".join(u.name for u in upstreams),
                tools=len(proxy.routes),
            )
            server = proxy.server()
            if asks is not None:
                server.middleware.append(in_band.middleware)
            screening = asyncio.create_task(proxy.keep_tools_current(), name="mcp-tool-filter")
            try:
                if http is None:
                    await _serve_stdio(server)
                else:
                    await _serve_http(server, *http, config.http_token)
            finally:
                screening.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await screening
                if human is not None:
                    await human.close()
    finally:
        for upstream in upstreams:
            await upstream.close()


def _human(
    config: ProxyConfig, target: str, credentials: grpc.ChannelCredentials | None
) -> AsyncClient | None:
    """The client of the human at the MCP client (`in_band.token`), if configured."""
    if config.in_band is None:
        return None
    if config.in_band.token == config.signoff.token:
        # The act would be the agent's own: Signoff refuses it anyway; say so now.
        raise McpConfigError(
            "in_band.token is the agent's token (signoff.token): in-band approvals are made "
            "with the human's own token"
        )
    return AsyncClient(
        target, token=config.in_band.token, timeout=config.signoff.timeout, credentials=credentials
    )


def _tls(config: ProxyConfig, origins: Mapping[str, str]) -> grpc.ChannelCredentials | None:
    """Credentials from signoff.ca/cert/key; McpConfigError naming the setting (or flag) of
    a file that is missing or no PEM, or of a certificate without its key."""
    files = {
        name: path
        for name in ("ca", "cert", "key")
        if (path := getattr(config.signoff, name)) is not None
    }
    if not files:
        return None
    try:
        return tls_credentials(files.get("ca"), files.get("cert"), files.get("key"))
    except ValueError as exc:
        # The message names the file it could not use; else it is about cert and key.
        blamed = [n for n, path in files.items() if str(path) in str(exc)]
        blamed = blamed or [n for n in files if n != "ca"]
        where = ", ".join(origins.get(n, f"signoff.{n}") for n in blamed)
        raise McpConfigError(f"{where}: {exc}") from None


async def _serve_stdio(server: Server[Any]) -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


async def _serve_http(server: Server[Any], host: str, port: int, token: str | None) -> None:
    import uvicorn  # the MCP SDK's own dependency for its HTTP transports

    mcp_app = server.streamable_http_app(host=host)
    app = mcp_app if token is None else _bearer(mcp_app, token)
    # Bound here, not by uvicorn, so that the real port (of port 0) is known and printed.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    print(f"signoff mcp-proxy: serving MCP on http://{shown}:{bound}/mcp", file=sys.stderr)
    sys.stderr.flush()
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve(sockets=[sock])


def _bearer(app: Any, token: str) -> Any:
    """The ASGI app behind `Authorization: Bearer <token>` (401 otherwise)."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, expected):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"www-authenticate", b"Bearer")],
                    }
                )
                await send({"type": "http.response.body", "body": b"bearer token required"})
                return
        await app(scope, receive, send)

    return guarded
