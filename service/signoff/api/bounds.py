"""Every RPC's request checked against the field bound table before its handler runs."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from google.protobuf.message import Message

from signoff.api.errors import parse
from signoff.api.methods import Method, StreamFn, UnaryFn
from signoff.core.validate_fields import check_fields


def bounded(methods: Iterable[Method], sizes: Mapping[str, int]) -> list[Method]:
    """The methods, each refusing a request with a field over its bound (INVALID_ARGUMENT)."""
    return [_bounded(m, sizes) for m in methods]


def _bounded(m: Method, sizes: Mapping[str, int]) -> Method:
    # The handler decodes the bytes again: decoding a request costs microseconds, and keeping
    # the handlers' signature lets both transports share them unchanged.
    def check(data: bytes) -> None:
        check_fields(parse(m.request, data), sizes)

    unary: UnaryFn | None = None
    stream: StreamFn | None = None
    if m.unary is not None:
        inner_unary = m.unary

        async def unary(who: Any, data: bytes) -> Message:
            check(data)
            return await inner_unary(who, data)

    if m.stream is not None:
        inner_stream = m.stream

        async def stream(who: Any, data: bytes) -> AsyncIterator[Message]:
            check(data)
            async for item in inner_stream(who, data):
                yield item

    return dataclasses.replace(m, unary=unary, stream=stream)
