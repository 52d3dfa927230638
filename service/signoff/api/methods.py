"""The transport-neutral description of one RPC: both gRPC and the browser transport
(Connect) serve the same table, so a method cannot exist on one and not the other."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

# Handlers receive the caller's identity and the request. The api modules write them for the
# decoded message; `api.bounds.bounded` turns them into what the transports call, with the
# request's raw bytes, decoding them once (a malformed request is INVALID_ARGUMENT naming
# the message, whatever the transport) and checking the field bounds.
UnaryFn = Callable[[Any, Any], Awaitable[Message]]
StreamFn = Callable[[Any, Any], AsyncIterator[Message]]


@dataclass(frozen=True)
class Method:
    """One RPC: its names, its message types and its handler."""

    service: str
    name: str
    request: type[Message]
    response: type[Message]
    unary: UnaryFn | None = None
    stream: StreamFn | None = None

    @property
    def full_name(self) -> str:
        """`package.Service/Method`, as logs and audit entries name it."""
        return f"{self.service}/{self.name}"

    @property
    def path(self) -> str:
        """The HTTP path both gRPC and Connect use: `/package.Service/Method`."""
        return f"/{self.full_name}"
