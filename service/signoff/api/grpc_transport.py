"""Serves the method tables over gRPC (HTTP/2)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterable
from itertools import groupby

import grpc
from google.protobuf.message import Message

from signoff.api.errors import Failure, Guard
from signoff.api.methods import Method

Ctx = grpc.aio.ServicerContext


class GrpcCall:
    """The Guard's view of one gRPC call."""

    __slots__ = ("_context",)

    def __init__(self, context: Ctx) -> None:
        self._context = context

    def header(self, name: str) -> str | None:
        """The first text metadata value under `name`."""
        for key, value in self._context.invocation_metadata() or ():
            if key == name and isinstance(value, str):
                return value
        return None

    def time_remaining(self) -> float | None:
        """Seconds left of the client's deadline, None without one."""
        return self._context.time_remaining()

    def peer_certificate(self) -> bytes | None:
        """The client's certificate (DER) when it presented one over TLS (mTLS), else None."""
        pem = self._context.auth_context().get("x509_pem_cert")
        if not pem:
            return None
        return ssl.PEM_cert_to_DER_cert(pem[0].decode("ascii"))


def _rpc_handler(method: Method, guard: Guard) -> grpc.RpcMethodHandler:
    # Handlers receive raw bytes (no request_deserializer): decoding errors are ours to report.
    if method.stream is not None:

        async def stream(data: bytes, context: Ctx) -> AsyncIterator[Message]:
            try:
                async for item in guard.stream(method, GrpcCall(context), data):
                    yield item
            except Failure as f:
                await context.abort(f.code, f.message)

        return grpc.unary_stream_rpc_method_handler(
            stream, response_serializer=method.response.SerializeToString
        )

    async def unary(data: bytes, context: Ctx) -> Message:
        try:
            return await guard.unary(method, GrpcCall(context), data)
        except Failure as f:
            await context.abort(f.code, f.message)
            raise  # unreachable: abort raises

    return grpc.unary_unary_rpc_method_handler(
        unary, response_serializer=method.response.SerializeToString
    )


def handlers(methods: Iterable[Method], guard: Guard) -> list[grpc.GenericRpcHandler]:
    """One generic handler per service."""
    ordered = sorted(methods, key=lambda m: m.service)
    return [
        grpc.method_handlers_generic_handler(
            service, {m.name: _rpc_handler(m, guard) for m in group}
        )
        for service, group in groupby(ordered, key=lambda m: m.service)
    ]
