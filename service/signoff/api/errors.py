"""The one place where Signoff errors become gRPC status codes, and where callers are
authenticated: every handler goes through `Guard.unary` or `Guard.stream`."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from signoff import errors
from signoff.logs import event
from signoff.review_app import Identity

log = logging.getLogger("signoff.api")

CODES: dict[type[errors.SignoffError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
DENIALS = (errors.Unauthenticated, errors.PermissionDenied)

M = TypeVar("M", bound=Message)
Ctx = grpc.aio.ServicerContext
Unary = Callable[[Identity, bytes, Ctx], Awaitable[Message]]
Stream = Callable[[Identity, bytes, Ctx], AsyncIterator[Message]]


class Authenticator(Protocol):
    """Turns a bearer token (None when absent) into an identity, or raises Unauthenticated."""

    def authenticate(self, token: str | None) -> Any:
        """Return the caller's identity."""
        ...


OnDenied = Callable[[str, str, str], Awaitable[None]]


def parse(cls: type[M], data: bytes) -> M:
    """Decode a request; a malformed or too deeply nested one is INVALID_ARGUMENT."""
    try:
        return cls.FromString(data)
    except DecodeError as exc:
        # upb refuses messages nested deeper than 100 levels, about 32 levels of params.
        raise errors.InvalidArgument(
            "request",
            f"cannot decode {cls.DESCRIPTOR.name}: {exc}; nesting deeper than about 30 levels "
            "is refused",
        ) from None


def bearer(context: Ctx) -> str | None:
    """The bearer token of the call's `authorization` metadata, if any."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            raise errors.Unauthenticated("authorization metadata must be 'Bearer <token>'")
    return None


class Guard:
    """Authenticates each call, maps errors to status codes, and audits denials."""

    def __init__(self, authenticator: Authenticator, on_denied: OnDenied) -> None:
        self.authenticator = authenticator
        self.on_denied = on_denied

    async def _fail(self, method: str, who: str, exc: Exception, context: Ctx) -> None:
        if isinstance(exc, errors.SignoffError):
            code = CODES.get(type(exc), grpc.StatusCode.UNKNOWN)
            if isinstance(exc, DENIALS):
                event(log, "rpc.denied", logging.WARNING, method=method, who=who, code=code.name)
                # The denial stands even if it could not be recorded.
                with contextlib.suppress(errors.SignoffError):
                    await self.on_denied(method, who, exc.message)
            elif code == grpc.StatusCode.UNAVAILABLE:
                event(log, "rpc.unavailable", logging.ERROR, method=method, error=exc.message)
            await context.abort(code, exc.message)
        log.exception("internal error", extra={"method": method})
        await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")

    def unary(self, method: str, fn: Unary) -> Callable[[bytes, Ctx], Awaitable[Message]]:
        """Wrap a unary handler."""

        @functools.wraps(fn)
        async def handler(data: bytes, context: Ctx) -> Message:
            who = ""
            try:
                identity = self.authenticator.authenticate(bearer(context))
                who = identity.id
                return await fn(identity, data, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._fail(method, who, exc, context)
                raise  # unreachable: abort raises

        return handler

    def stream(self, method: str, fn: Stream) -> Callable[[bytes, Ctx], AsyncIterator[Message]]:
        """Wrap a server-streaming handler."""

        async def handler(data: bytes, context: Ctx) -> AsyncIterator[Message]:
            who = ""
            try:
                identity = self.authenticator.authenticate(bearer(context))
                who = identity.id
                async for item in fn(identity, data, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._fail(method, who, exc, context)

        return handler


def unary_handler(fn: Callable[..., Any], out: type[Message]) -> grpc.RpcMethodHandler:
    """A unary-unary handler that receives raw bytes (decoding errors are ours to report)."""
    return grpc.unary_unary_rpc_method_handler(fn, response_serializer=out.SerializeToString)


def stream_handler(fn: Callable[..., Any], out: type[Message]) -> grpc.RpcMethodHandler:
    """A unary-stream handler that receives raw bytes."""
    return grpc.unary_stream_rpc_method_handler(fn, response_serializer=out.SerializeToString)
