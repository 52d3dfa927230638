"""Hypothesis strategies for any protobuf message, built from its descriptor.

Values lean to the edges the server must refuse precisely rather than crash on: integers at
their type's limits, NaN and infinities, unknown enum numbers, Timestamps outside years
1-9999 or with negative nanos, Durations of a million years, Structs nested deep, and
strings that name real objects (`known`) so calls get past the first lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

F = FieldDescriptor
INT_RANGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1),
    F.TYPE_FIXED64: (0, 2**64 - 1),
}
# Seconds since the epoch at and around the edges of Timestamp's range (years 1-9999) and
# of the datetime arithmetic done with them.
EDGE_SECONDS = [
    0,
    -1,
    1,
    -62_135_596_800,  # 0001-01-01
    -62_135_596_801,  # year 0
    253_402_300_799,  # 9999-12-31T23:59:59
    253_402_300_800,  # year 10000
    10**12,
    -(10**12),
    2**63 - 1,
    -(2**63),
    1_767_225_600,  # 2026-01-01
]
EDGE_NANOS = [0, 1, -1, 999_999_999, 1_000_000_000, -(10**9), 2**31 - 1, -(2**31)]
EDGE_FLOATS = [float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1e308, -1e308, 5e-324]


def _int(lo: int, hi: int) -> st.SearchStrategy[int]:
    edges = [v for v in (0, 1, -1, lo, hi, lo + 1, hi - 1, 10**12) if lo <= v <= hi]
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


def _text(known: Sequence[str]) -> st.SearchStrategy[str]:
    specials = ["", " ", "*", "**", "?", "a" * 300, "\x00", "=1+1", "é", "\U0001f600", "..", "/"]
    return st.one_of(
        st.sampled_from([*known, *specials]),
        st.text(max_size=20),
        st.sampled_from(known).map(lambda k: k + "x") if known else st.just("x"),
    )


def json_values(depth: int = 4) -> st.SearchStrategy[Any]:
    """JSON-like values as a Struct carries them (every number a double, NaN included)."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(EDGE_FLOATS),
        st.text(max_size=10),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=12,
    )


def deep_struct(levels: int) -> struct_pb2.Struct:
    """A Struct nested `levels` deep: {"a": {"a": ...}}."""
    doc: dict[str, Any] = {"leaf": 1.0}
    for _ in range(levels):
        doc = {"a": doc}
    out = struct_pb2.Struct()
    out.update(doc)
    return out


def deep_struct_bytes(levels: int) -> bytes:
    """A Struct nested `levels` deep, encoded by hand: the runtime refuses to build one
    deeper than its own limit, but the wire carries any depth."""

    def field(number: int, payload: bytes) -> bytes:
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    data = b""
    for _ in range(levels):
        value = field(5, data)  # Value.struct_value
        data = field(1, field(1, b"a") + field(2, value))  # Struct.fields["a"]
    return data


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def messages(
    desc: Descriptor, known: Sequence[str] = (), depth: int = 3
) -> st.SearchStrategy[Message]:
    """Messages of the type `desc`, each field set or not, to edge-heavy values."""
    cls = GetMessageClass(desc)
    name = desc.full_name
    if name == "google.protobuf.Timestamp" or name == "google.protobuf.Duration":
        return st.builds(
            cls,
            seconds=st.one_of(st.sampled_from(EDGE_SECONDS), st.integers(-(2**63), 2**63 - 1)),
            nanos=st.one_of(st.sampled_from(EDGE_NANOS), st.integers(-(2**31), 2**31 - 1)),
        )
    if name == "google.protobuf.Struct":
        return st.one_of(
            st.dictionaries(st.text(max_size=8), json_values(), max_size=4).map(_struct),
            st.sampled_from([deep_struct(20), deep_struct(40)]),
        )
    if name == "google.protobuf.Value":
        return json_values().map(_value)
    fields = [f for f in desc.fields if depth > 0 or f.message_type is None]

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        msg = cls()
        for f in fields:
            if not draw(st.booleans()):
                continue
            if _is_map(f):
                key_f, value_f = (
                    f.message_type.fields_by_name["key"],
                    f.message_type.fields_by_name["value"],
                )
                items = draw(
                    st.dictionaries(
                        _scalar(key_f, known), _value_of(value_f, known, depth), max_size=3
                    )
                )
                target = getattr(msg, f.name)
                for k, v in items.items():
                    if value_f.message_type is None:
                        target[k] = v
                    else:
                        target[k].CopyFrom(v)
            elif f.is_repeated:
                values = draw(st.lists(_value_of(f, known, depth), max_size=3))
                target = getattr(msg, f.name)
                if f.message_type is None:
                    target.extend(values)
                else:
                    for v in values:
                        target.add().CopyFrom(v)
            elif f.message_type is not None:
                getattr(msg, f.name).CopyFrom(draw(_value_of(f, known, depth)))
            else:
                setattr(msg, f.name, draw(_value_of(f, known, depth)))
        return msg

    return build()


def _is_map(f: FieldDescriptor) -> bool:
    return f.message_type is not None and f.message_type.GetOptions().map_entry


def _value_of(f: FieldDescriptor, known: Sequence[str], depth: int) -> st.SearchStrategy[Any]:
    if f.message_type is not None:
        return messages(f.message_type, known, depth - 1)
    return _scalar(f, known)


def _scalar(f: FieldDescriptor, known: Sequence[str]) -> st.SearchStrategy[Any]:
    if f.type in INT_RANGES:
        return _int(*INT_RANGES[f.type])
    if f.type == F.TYPE_ENUM:
        # Known numbers, and numbers no version of the API defined (open enums keep them).
        defined = [v.number for v in f.enum_type.values]
        return st.one_of(st.sampled_from(defined), _int(-(2**31), 2**31 - 1))
    if f.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        width = 64 if f.type == F.TYPE_DOUBLE else 32
        return st.one_of(st.sampled_from([*EDGE_FLOATS[:3], 0.0, 0.5, 1.0]), st.floats(width=width))
    if f.type == F.TYPE_BOOL:
        return st.booleans()
    if f.type == F.TYPE_BYTES:
        return st.binary(max_size=20)
    return _text(known)


def _struct(doc: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(doc)
    return out


def _value(v: Any) -> struct_pb2.Value:
    return _struct({"v": v}).fields["v"]
