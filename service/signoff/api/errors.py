"""The one place where Signoff errors become status codes, and where callers are
authenticated: every call of every transport goes through `Guard.unary` or `Guard.stream`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2

from signoff import errors
from signoff.api.methods import Method
from signoff.core import wire
from signoff.limits import Limiter, LimitSettings
from signoff.limits.peers import PeerGate
from signoff.logs import event

log = logging.getLogger("signoff.api")

CODES: dict[type[errors.SignoffError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DataLoss: grpc.StatusCode.DATA_LOSS,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
}
DENIALS = (errors.Unauthenticated, errors.PermissionDenied)

M = TypeVar("M", bound=Message)


class Call(Protocol):
    """What a transport knows of one call; the Guard reads only what it needs, when it does."""

    def header(self, name: str) -> str | None:
        """The value of a request header (gRPC metadata key), `name` in lower case."""
        ...

    def time_remaining(self) -> float | None:
        """Seconds left before the caller's deadline; None when the caller set none."""
        ...

    def peer_certificate(self) -> bytes | None:
        """The client's TLS certificate (DER) when it presented one, else None."""
        ...

    def peer(self) -> str:
        """The client's IP address (or what names the peer when it has none)."""
        ...


class Failure(Exception):
    """A call's failure, already logged and audited: the transport only has to send it, with
    its `details` (google.rpc error details such as RetryInfo) where the protocol has room."""

    def __init__(
        self, code: grpc.StatusCode, message: str, details: tuple[Message, ...] = ()
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    """google.rpc.RetryInfo: how long the client should wait before retrying."""
    info = error_details_pb2.RetryInfo()
    info.retry_delay.FromNanoseconds(max(1_000_000, round(seconds * 1e9)))  # at least 1 ms
    return info


class Authenticator(Protocol):
    """Turns a bearer token (None when absent) and, if it `uses_certificates`, the client's
    TLS certificate into an identity, or raises Unauthenticated."""

    def authenticate(self, token: str | None, certificate: bytes | None = None) -> Any:
        """Return the caller's identity."""
        ...


OnDenied = Callable[[str, str, str, str], Awaitable[None]]
# A request body: bytes already read (gRPC), or read on demand once the caller is admitted
# (Connect), so that nobody without credentials makes the server read or hold a body.
Body = bytes | Callable[[], Awaitable[bytes]]
Trace = Callable[[Callable[[str], str | None]], AbstractContextManager[Any]]
_NO_TRACE = contextlib.nullcontext()


def _no_trace(header: Callable[[str], str | None]) -> AbstractContextManager[Any]:
    return _NO_TRACE


def parse(cls: type[M], data: bytes) -> M:
    """Decode a request; a malformed or too deeply nested one, or one with a NUL character
    in a string field, is INVALID_ARGUMENT."""
    try:
        request = cls.FromString(data)
    except DecodeError as exc:
        # upb refuses messages nested deeper than 100 levels, about 32 levels of params.
        raise errors.InvalidArgument(
            "request",
            f"cannot decode {cls.DESCRIPTOR.name}: {exc}; nesting deeper than about 30 levels "
            "is refused",
        ) from None
    wire.no_nul(request)
    return request


def bearer_of(authorization: str | None) -> str | None:
    """The token of an `authorization` header or metadata value, if any."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    raise errors.Unauthenticated("authorization must be 'Bearer <token>'")


class Guard:
    """Authenticates each call, applies the limits, maps errors to status codes, and audits
    denials."""

    def __init__(
        self,
        authenticator: Authenticator,
        on_denied: OnDenied,
        limiter: Limiter | None = None,
        trace: Trace = _no_trace,
        peers: PeerGate | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.on_denied = on_denied
        self.limiter = limiter or Limiter(LimitSettings(max_concurrent=0, max_streams=0))
        self.trace = trace  # continues the caller's trace context (Telemetry.incoming)
        self.peers = peers  # the per-address rate, checked before any credential
        # Reading the peer certificate costs a little on every call; only mTLS needs it.
        self._certificates = bool(getattr(authenticator, "uses_certificates", False))

    def _identity(self, call: Call) -> Any:
        token = bearer_of(call.header("authorization"))
        if self._certificates:
            return self.authenticator.authenticate(token, call.peer_certificate())
        return self.authenticator.authenticate(token)

    def _admit_peer(self, call: Call) -> str:
        """The caller's address, once admitted by its rate; nothing else is known of it yet."""
        peer = call.peer()
        if self.peers is not None:
            self.peers.admit(peer)
        return peer

    async def _failure(self, method: str, who: str, exc: Exception, peer: str = "") -> Failure:
        if isinstance(exc, errors.SignoffError):
            code = CODES.get(type(exc), grpc.StatusCode.UNKNOWN)
            if isinstance(exc, DENIALS):
                event(log, "rpc.denied", logging.WARNING, method=method, who=who, code=code.name)
                # The denial stands even if it could not be recorded.
                with contextlib.suppress(errors.SignoffError):
                    await self.on_denied(method, who, exc.message, peer)
            elif code == grpc.StatusCode.UNAVAILABLE:
                event(log, "rpc.unavailable", logging.ERROR, method=method, error=exc.message)
            elif code == grpc.StatusCode.DATA_LOSS:
                # The caller is told; the operator must be too: the database lost or changed rows.
                event(log, "rpc.data_loss", logging.ERROR, method=method, error=exc.message)
            elif isinstance(exc, errors.ResourceExhausted) and exc.retry_after is not None:
                return Failure(code, exc.message, (retry_info(exc.retry_after),))
            return Failure(code, exc.message)
        log.error("internal error", exc_info=exc, extra={"method": method})
        return Failure(grpc.StatusCode.INTERNAL, "internal error; see the server log")

    async def unary(self, method: Method, call: Call, data: Body) -> Message:
        """Run a unary call; every failure comes out as `Failure`."""
        assert method.unary is not None
        who = peer = ""
        try:
            self.limiter.check_deadline(call.time_remaining())
            peer = self._admit_peer(call)
            identity = self._identity(call)
            who = identity.id
            self.limiter.enter(identity)
            try:
                body = data if isinstance(data, bytes) else await data()
                with self.trace(call.header):
                    return await method.unary(identity, body)
            finally:
                self.limiter.leave(identity)
        except Exception as exc:
            raise await self._failure(method.full_name, who, exc, peer) from None

    async def stream(self, method: Method, call: Call, data: Body) -> AsyncIterator[Message]:
        """Run a server-streaming call; every failure comes out as `Failure`."""
        assert method.stream is not None
        who = peer = ""
        try:
            self.limiter.check_deadline(call.time_remaining())
            peer = self._admit_peer(call)
            identity = self._identity(call)
            who = identity.id
            self.limiter.open_stream(identity)
            try:
                body = data if isinstance(data, bytes) else await data()
                async for item in method.stream(identity, body):
                    yield item
            finally:
                self.limiter.close_stream(identity)
        except Exception as exc:
            raise await self._failure(method.full_name, who, exc, peer) from None
