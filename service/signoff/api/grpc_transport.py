"""Serves the method tables over gRPC (HTTP/2)."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterable
from itertools import groupby
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import status_pb2
from grpc_status import rpc_status

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
                # Closed as the client goes away, so the Guard counts the stream as ended.
                async with contextlib.aclosing(guard.stream(method, GrpcCall(context), data)) as it:
                    async for item in it:
                        yield item
            except Failure as f:
                await _abort(context, f)

        return grpc.unary_stream_rpc_method_handler(
            stream, response_serializer=method.response.SerializeToString
        )

    async def unary(data: bytes, context: Ctx) -> Message:
        try:
            return await guard.unary(method, GrpcCall(context), data)
        except Failure as f:
            await _abort(context, f)

    return grpc.unary_unary_rpc_method_handler(
        unary, response_serializer=method.response.SerializeToString
    )


async def _abort(context: Ctx, f: Failure) -> NoReturn:
    """End the call with the failure; details go in the grpc-status-details-bin trailer."""
    if not f.details:
        await context.abort(f.code, f.message)
    packed = []
    for detail in f.details:
        any_ = any_pb2.Any()
        any_.Pack(detail)
        packed.append(any_)
    status = rpc_status.to_status(
        status_pb2.Status(code=f.code.value[0], message=f.message, details=packed)
    )
    await context.abort(status.code, status.details, status.trailing_metadata)


def handlers(methods: Iterable[Method], guard: Guard) -> list[grpc.GenericRpcHandler]:
    """One generic handler per service."""
    ordered = sorted(methods, key=lambda m: m.service)
    return [
        grpc.method_handlers_generic_handler(
            service, {m.name: _rpc_handler(m, guard) for m in group}
        )
        for service, group in groupby(ordered, key=lambda m: m.service)
    ]
