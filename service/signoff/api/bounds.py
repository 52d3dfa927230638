"""Every RPC's request decoded once and checked against the field bound table before its
handler runs; the handler receives the decoded message."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from google.protobuf.message import Message

from signoff.api.errors import parse
from signoff.api.methods import Method, StreamFn, UnaryFn
from signoff.core.validate_fields import check_fields


def bounded(methods: Iterable[Method], sizes: Mapping[str, int]) -> list[Method]:
    """The methods as the transports call them (with the request's bytes), each decoding its
    request once, refusing one with a field over its bound (INVALID_ARGUMENT), and handing
    the message to the handler the api module wrote for it."""
    return [_bounded(m, sizes) for m in methods]


def _bounded(m: Method, sizes: Mapping[str, int]) -> Method:
    def decoded(data: bytes) -> Message:
        # Decoded once here, not again by the handler (it cost a second parse per call).
        request = parse(m.request, data)
        check_fields(request, sizes)
        return request

    unary: UnaryFn | None = None
    stream: StreamFn | None = None
    if m.unary is not None:
        inner_unary = m.unary

        async def unary(who: Any, data: bytes) -> Message:
            return await inner_unary(who, decoded(data))

    if m.stream is not None:
        inner_stream = m.stream

        async def stream(who: Any, data: bytes) -> AsyncIterator[Message]:
            async for item in inner_stream(who, decoded(data)):
                yield item

    return dataclasses.replace(m, unary=unary, stream=stream)
