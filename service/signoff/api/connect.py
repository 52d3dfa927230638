"""Serves the method tables over the Connect protocol (https://connectrpc.com/docs/protocol/),
so that browsers reach the same methods through the same Guard as gRPC clients.

Supported: unary calls as `application/proto` or `application/json`, server streams as
`application/connect+proto` or `application/connect+json`, `Connect-Timeout-Ms`, and only the
identity encoding. Not supported: GET for unary calls, compression, client and bidirectional
streams (no method has them).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from typing import Any, Final, TypeVar

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message

from signoff import errors
from signoff.api.errors import Failure, Guard
from signoff.api.methods import Method
from signoff.limits.ingress import HttpLimits
from signoff.limits.peers import Bodies, BodyTicket

S = grpc.StatusCode
# Connect's names and HTTP statuses for gRPC codes, from the protocol's table.
CODES: Final[dict[grpc.StatusCode, tuple[str, int]]] = {
    S.CANCELLED: ("canceled", 499),
    S.UNKNOWN: ("unknown", 500),
    S.INVALID_ARGUMENT: ("invalid_argument", 400),
    S.DEADLINE_EXCEEDED: ("deadline_exceeded", 504),
    S.NOT_FOUND: ("not_found", 404),
    S.ALREADY_EXISTS: ("already_exists", 409),
    S.PERMISSION_DENIED: ("permission_denied", 403),
    S.RESOURCE_EXHAUSTED: ("resource_exhausted", 429),
    S.FAILED_PRECONDITION: ("failed_precondition", 400),
    S.ABORTED: ("aborted", 409),
    S.OUT_OF_RANGE: ("out_of_range", 400),
    S.UNIMPLEMENTED: ("unimplemented", 501),
    S.INTERNAL: ("internal", 500),
    S.UNAVAILABLE: ("unavailable", 503),
    S.DATA_LOSS: ("data_loss", 500),
    S.UNAUTHENTICATED: ("unauthenticated", 401),
}
UNARY_TYPES: Final = {"application/proto": "proto", "application/json": "json"}
STREAM_TYPES: Final = {"application/connect+proto": "proto", "application/connect+json": "json"}
END_STREAM: Final = 0x02
CONNECT_TIMEOUT: Final = "the call exceeded its Connect-Timeout-Ms"
T = TypeVar("T")


@dataclass(frozen=True)
class _Route:
    method: Method
    from_json: Method  # the same method, taking its request as JSON


class ConnectHandler:
    """Answers Connect calls to the given methods; `close()` ends the open streams."""

    def __init__(
        self,
        methods: Iterable[Method],
        guard: Guard,
        max_message_bytes: int,
        limits: HttpLimits | None = None,
    ) -> None:
        self.guard = guard
        self.max_bytes = max_message_bytes
        self.limits = limits or HttpLimits()
        self.bodies = Bodies(self.limits)
        self.routes = {m.path: _Route(m, _with_json_request(m)) for m in methods}
        self.services = frozenset(r.method.service for r in self.routes.values())
        self.closing = asyncio.Event()
        self.open_streams = 0
        self.idle = asyncio.Event()  # set while no stream is open
        self.idle.set()

    def owns(self, path: str) -> bool:
        """True when `path` names one of the services (whether or not the method exists)."""
        return path.split("/")[1] in self.services

    def close(self) -> None:
        """End every open stream (with `unavailable`) and every one opened from now on."""
        self.closing.set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one Connect call."""
        if request.method != "POST":
            return _error(
                S.UNIMPLEMENTED, f"{request.method}: Connect calls are POST", {"Allow": "POST"}, 405
            )
        route = self.routes.get(request.path)
        if route is None:
            return _error(S.UNIMPLEMENTED, f"{request.path}: no such method", status=404)
        streaming = route.method.stream is not None
        codec = (STREAM_TYPES if streaming else UNARY_TYPES).get(request.content_type)
        if codec is None:
            accepted = ", ".join(STREAM_TYPES if streaming else UNARY_TYPES)
            return _error(
                S.UNIMPLEMENTED,
                f"content type {request.content_type!r} is not supported here; use {accepted}",
                {"Accept-Post": accepted},
                415,
            )
        version = request.headers.get("Connect-Protocol-Version")
        if version not in (None, "1"):
            return _error(S.INVALID_ARGUMENT, f"Connect-Protocol-Version {version!r}: only 1")
        method = route.from_json if codec == "json" else route.method
        if streaming:
            return await self._stream(request, method, codec)
        return await self._unary(request, method, codec)

    async def _unary(self, request: web.Request, method: Method, codec: str) -> web.Response:
        try:
            _identity_only(request.headers.get("Content-Encoding"))
            timeout = _timeout(request)
            async with asyncio.timeout(timeout):
                # The body is read only once the Guard has admitted the caller.
                reply = await self.guard.unary(
                    method, ConnectCall(request, timeout), lambda: self._body(request, False)
                )
        except TimeoutError:
            return _unread(request, _error(S.DEADLINE_EXCEEDED, CONNECT_TIMEOUT))
        except Failure as f:
            return _unread(request, _error(f.code, f.message, details=f.details))
        return web.Response(body=_encode(reply, codec), content_type=f"application/{codec}")

    async def _body(self, request: web.Request, enveloped: bool) -> bytes:
        """The request body (its one message, if enveloped), read within the body caps and
        `limits.http.body_timeout`; refusals are SignoffErrors, for the Guard to report."""
        limit = self.max_bytes + 5 if enveloped else self.max_bytes
        announced = request.content_length
        if announced is not None and announced > limit:
            raise _too_big(self.max_bytes)
        with self.bodies.open(request.remote or "", announced) as ticket:
            try:
                async with asyncio.timeout(self.limits.body_timeout):
                    body = await _read(request, limit, self.max_bytes, ticket)
            except TimeoutError:
                raise errors.DeadlineExceeded(
                    f"the request body did not arrive within {self.limits.body_timeout:g} s "
                    "(limits.http.body_timeout)"
                ) from None
        return _unenvelope(body) if enveloped else body

    async def _stream(self, request: web.Request, method: Method, codec: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": f"application/connect+{codec}"})
        await response.prepare(request)
        end: dict[str, Any] = {}
        self.open_streams += 1
        self.idle.clear()
        try:
            _identity_only(request.headers.get("Connect-Content-Encoding"))
            timeout = _timeout(request)
            async with asyncio.timeout(timeout):
                call = ConnectCall(request, timeout)
                items = self.guard.stream(method, call, lambda: self._body(request, True))
                async with contextlib.aclosing(_until(self.closing, items)) as until:
                    async for item in until:
                        # Each message is written (and so sent) as soon as it is produced:
                        # the console's live queue depends on it.
                        await response.write(_envelope(0, _encode(item, codec)))
        except TimeoutError:
            end = _end_error(S.DEADLINE_EXCEEDED, CONNECT_TIMEOUT)
        except Failure as f:
            end = _end_error(f.code, f.message, f.details)
        except ConnectionResetError:
            return response  # the client left; there is nobody to tell
        finally:
            self.open_streams -= 1
            if not self.open_streams:
                self.idle.set()
        if not request.content.is_eof():
            response.force_close()  # what the caller still sends is not read: see _unread
        with contextlib.suppress(ConnectionResetError):
            await response.write(_envelope(END_STREAM, json.dumps(end).encode()))
            await response.write_eof()
        return response


def _with_json_request(method: Method) -> Method:
    """The method taking a JSON request, decoded after authentication like a binary one, so
    that a caller without a token learns nothing from parse errors."""
    cls = method.request
    if method.unary is not None:
        unary = method.unary

        async def unary_json(who: Any, data: bytes) -> Message:
            return await unary(who, _from_json(cls, data))

        return replace(method, unary=unary_json)
    assert method.stream is not None
    stream = method.stream

    async def stream_json(who: Any, data: bytes) -> AsyncIterator[Message]:
        async for item in stream(who, _from_json(cls, data)):
            yield item

    return replace(method, stream=stream_json)


def _from_json(cls: type[Message], data: bytes) -> bytes:
    """The binary form of a JSON request; a malformed one is INVALID_ARGUMENT naming why."""
    name = cls.DESCRIPTOR.full_name
    try:
        # NaN and Infinity are not JSON; Python's parser would accept them as numbers.
        value = json.loads(data or b"{}", parse_constant=_refuse_constant)
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object, got {type(value).__name__}")
        # Unknown fields are refused, not skipped: a misspelt field must not silently change
        # what is evaluated. The console ships with the server, so versions never skew.
        message = json_format.ParseDict(value, cls())
    except (ValueError, json_format.ParseError) as exc:
        detail = " ".join(str(exc).split())
        raise errors.InvalidArgument("request", f"invalid JSON for {name}: {detail}") from None
    except RecursionError:
        raise errors.InvalidArgument("request", f"{name} is nested too deeply") from None
    return message.SerializeToString()


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _encode(message: Message, codec: str) -> bytes:
    if codec == "proto":
        return message.SerializeToString()
    # lowerCamelCase names, int64 as strings, enums by name: proto3's JSON, as protobuf-es reads.
    return json.dumps(json_format.MessageToDict(message), separators=(",", ":")).encode()


class ConnectCall:
    """The Guard's view of one Connect call."""

    __slots__ = ("_deadline", "_request")

    def __init__(self, request: web.Request, timeout: float | None) -> None:
        self._request = request
        self._deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout

    def header(self, name: str) -> str | None:
        """The request header `name`."""
        return self._request.headers.get(name)

    def time_remaining(self) -> float | None:
        """Seconds left of the caller's Connect-Timeout-Ms, None without one."""
        if self._deadline is None:
            return None
        return self._deadline - asyncio.get_running_loop().time()

    def peer_certificate(self) -> bytes | None:
        """The client's certificate (DER) when it presented one over TLS (mTLS), else None."""
        transport = self._request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is None:
            return None
        der: bytes | None = ssl_object.getpeercert(binary_form=True)
        return der

    def peer(self) -> str:
        """The client's IP address, as the socket says (a proxy's, behind one)."""
        return self._request.remote or ""


def _identity_only(encoding: str | None) -> None:
    if encoding not in (None, "", "identity"):
        raise Failure(S.UNIMPLEMENTED, f"encoding {encoding!r} is not supported; use identity")


def _timeout(request: web.Request) -> float | None:
    raw = request.headers.get("Connect-Timeout-Ms")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10):
        raise Failure(S.INVALID_ARGUMENT, f"Connect-Timeout-Ms {raw!r}: must be at most 10 digits")
    return int(raw) / 1000


def _too_big(message_limit: int) -> errors.ResourceExhausted:
    return errors.ResourceExhausted(
        f"request: larger than the {message_limit}-byte limit (max_message_bytes)"
    )


async def _read(request: web.Request, limit: int, message_limit: int, ticket: BodyTicket) -> bytes:
    """The request body, refused as soon as it exceeds `limit` (never buffered beyond it);
    without a Content-Length the bytes are held on `ticket` as they arrive."""
    announced = request.content_length is not None
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise _too_big(message_limit)
        if not announced:
            ticket.grow(len(chunk))
    return bytes(body)


def _unread(request: web.Request, response: web.Response) -> web.Response:
    """`response`, closing the connection after it if the body was not read to its end: the
    rest is not worth reading (a refused caller), nor may it be taken for the next request."""
    if not request.content.is_eof():
        response.force_close()
    return response


def _unenvelope(body: bytes) -> bytes:
    """The one message of a server-streaming request."""
    if len(body) < 5:
        raise errors.InvalidArgument("request", "expected one enveloped message, got none")
    flags, size = body[0], int.from_bytes(body[1:5], "big")
    if flags != 0:
        raise errors.InvalidArgument(
            "request", f"envelope flags {flags:#04x}; requests are uncompressed, not end-stream"
        )
    if len(body) != 5 + size:
        raise errors.InvalidArgument(
            "request",
            f"the envelope announces {size} bytes but {len(body) - 5} follow; "
            "a server-streaming call takes exactly one message",
        )
    return body[5:]


def _envelope(flags: int, data: bytes) -> bytes:
    return bytes([flags]) + len(data).to_bytes(4, "big") + data


async def _until(closing: asyncio.Event, items: AsyncIterator[T]) -> AsyncIterator[T]:
    """The items, until they end or `closing` is set: a stream that would never end by itself
    (the console's live queue) must not hold up shutdown."""
    stop = asyncio.ensure_future(closing.wait())
    step: asyncio.Future[T] | None = None
    try:
        while True:
            step = asyncio.ensure_future(anext(items))
            await asyncio.wait((step, stop), return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                raise Failure(S.UNAVAILABLE, "the server is shutting down; reconnect")
            try:
                item = step.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        stop.cancel()
        if step is not None:
            if not step.done():
                step.cancel()
                await asyncio.wait((step,))
            # Retrieved, so asyncio does not log it as lost: also when the step had just
            # ended (StopAsyncIteration) as the call was cancelled by the client leaving.
            if not step.cancelled():
                step.exception()
        if hasattr(items, "aclose"):
            await items.aclose()


def _error(
    code: grpc.StatusCode,
    message: str,
    headers: dict[str, str] | None = None,
    status: int | None = None,
    details: tuple[Message, ...] = (),
) -> web.Response:
    """A Connect error: JSON with the code, and the HTTP status of that code unless given."""
    name, default_status = CODES[code]
    body: dict[str, Any] = {"code": name, "message": message}
    if details:
        body["details"] = [_detail(d) for d in details]
        headers = {**(headers or {}), **_retry_after_header(details)}
    return web.json_response(body, status=status or default_status, headers=headers)


def _end_error(
    code: grpc.StatusCode, message: str, details: tuple[Message, ...] = ()
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": CODES[code][0], "message": message}
    if details:
        error["details"] = [_detail(d) for d in details]
    return {"error": error}


def _detail(message: Message) -> dict[str, str]:
    """An error detail as the Connect protocol spells it: the message's full type name and its
    binary form in base64 without padding."""
    value = base64.b64encode(message.SerializeToString()).rstrip(b"=").decode()
    return {"type": message.DESCRIPTOR.full_name, "value": value}


def _retry_after_header(details: tuple[Message, ...]) -> dict[str, str]:
    """HTTP's Retry-After (whole seconds) from a RetryInfo, for proxies and plain HTTP tools."""
    for d in details:
        if d.DESCRIPTOR.full_name == "google.rpc.RetryInfo":
            delay = d.retry_delay.ToNanoseconds() / 1e9  # type: ignore[attr-defined]
            return {"Retry-After": str(max(1, math.ceil(delay)))}
    return {}
