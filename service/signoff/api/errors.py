"""The one place where Signoff errors become gRPC status codes."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from signoff import errors
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
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

M = TypeVar("M", bound=Message)
Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


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


def mapped(fn: Handler) -> Handler:
    """Run a handler, turning Signoff errors into status codes and hiding internal ones."""

    @functools.wraps(fn)
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await fn(request, context)
        except errors.SignoffError as exc:
            code = CODES.get(type(exc), grpc.StatusCode.UNKNOWN)
            if code == grpc.StatusCode.UNAVAILABLE:
                event(log, "rpc.unavailable", logging.ERROR, method=fn.__name__, error=exc.message)
            await context.abort(code, exc.message)
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("internal error", extra={"method": fn.__name__})
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")

    return wrapper
