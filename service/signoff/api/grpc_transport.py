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
from signoff.limits.ingress import HttpLimits
from signoff.limits.peers import peer_address

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

    def peer(self) -> str:
        """The client's IP address."""
        return peer_address(self._context.peer() or "")


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


# Header metadata a client may send (gRPC's default is 8 KiB; a bearer JWT fits in 4 KiB).
MAX_METADATA_BYTES = 16 * 1024
# Calls at once on one HTTP/2 connection; the limits (max_concurrent, max_streams) hold
# across connections, this keeps one connection from opening thousands of streams.
MAX_STREAMS_PER_CONNECTION = 100


def connection_options(limits: HttpLimits) -> list[tuple[str, int]]:
    """gRPC core's options for slow, idle and abusive connections (docs/security.md)."""
    idle_ms = round(limits.idle_timeout * 1000)
    return [
        ("grpc.max_metadata_size", MAX_METADATA_BYTES),
        ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
        # A connection must finish its TLS and HTTP/2 handshake (the preface) in time.
        ("grpc.server_handshake_timeout_ms", idle_ms),
        # A connection with no call open for this long is sent GOAWAY and closed.
        ("grpc.max_connection_idle_ms", idle_ms),
        # The server pings an idle-looking connection every minute; no answer in 20 s: dead.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        # Pings from clients more often than every 10 s count as strikes; 2 strikes: GOAWAY.
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 2),
    ]
