"""Values read off request messages, checked where several RPCs share them: timestamps,
durations and enums.

The protobuf runtime accepts anything the wire can carry: a Timestamp of year 300000 or
with negative nanos, a Duration of a million years, an enum number no version of the API
defined, a NaN. Converting those naively raises ValueError or OverflowError deep in a
handler, which the API reports as INTERNAL with a stack trace; and a caller could not tell
what to fix. Every such conversion goes through here and fails as InvalidArgument naming
the field.
"""

from __future__ import annotations

import datetime as dt

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import Message

from signoff.errors import InvalidArgument

# google.protobuf.Timestamp's documented range: 0001-01-01T00:00:00Z to
# 9999-12-31T23:59:59.999999999Z, with 0 <= nanos < 10^9.
MIN_SECONDS = -62_135_596_800
MAX_SECONDS = 253_402_300_799
NANOS = 1_000_000_000
# Free-form JSON: its strings are stored escaped, so a NUL in them is only data.
JSON_TYPES = frozenset(
    {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}
)
# The longest age a listing may ask for: a century, far past any retention, and far enough
# from year 1 that `now - age` cannot underflow.
MAX_AGE = dt.timedelta(days=36_525)


def timestamp(ts: timestamp_pb2.Timestamp, field: str) -> dt.datetime:
    """`ts` as an aware UTC datetime; InvalidArgument outside years 1-9999 or bad nanos."""
    if not 0 <= ts.nanos < NANOS:
        raise InvalidArgument(field, f"nanos must be 0-999999999, not {ts.nanos}")
    if not MIN_SECONDS <= ts.seconds <= MAX_SECONDS:
        raise InvalidArgument(
            field,
            f"seconds {ts.seconds} is outside years 1-9999 "
            f"({MIN_SECONDS} to {MAX_SECONDS} seconds since the epoch)",
        )
    return ts.ToDatetime(tzinfo=dt.UTC)


def age(d: duration_pb2.Duration, field: str, limit: dt.timedelta = MAX_AGE) -> dt.timedelta:
    """`d` as a timedelta between 0 and `limit`; InvalidArgument otherwise."""
    if not 0 <= d.nanos < NANOS:
        # Negative nanos mean a negative duration (the sign of seconds and nanos agree).
        raise InvalidArgument(field, f"must not be negative (nanos {d.nanos})")
    if d.seconds < 0:
        raise InvalidArgument(field, f"must not be negative ({d.seconds} s)")
    most = int(limit.total_seconds())
    if d.seconds > most or (d.seconds == most and d.nanos):
        raise InvalidArgument(field, f"{d.seconds} s is longer than the limit of {most} s")
    return dt.timedelta(seconds=d.seconds, microseconds=d.nanos // 1000)


def enum(kind: EnumTypeWrapper, value: int, field: str, *, unspecified: bool = True) -> int:
    """`value` if it is a number of the enum `kind` (its 0, UNSPECIFIED, only if allowed)."""
    if value not in kind.values() or (value == 0 and not unspecified):
        names = ", ".join(n for n, v in kind.items() if unspecified or v != 0)
        raise InvalidArgument(field, f"{value} is not one of {names}")
    return value


def no_nul(message: Message, prefix: str = "") -> None:
    """Refuse a NUL character in any string field of `message` (Structs aside), naming it.

    PostgreSQL cannot hold NUL in text: a lookup or a write with one failed in the driver,
    which the store reports as UNAVAILABLE, and clients retry it forever. SQLite would take
    it; refusing it on every backend keeps the API the same on both.
    """
    for f, value in message.ListFields():
        kind = _kind(f)
        if kind == _SKIP:
            continue
        name = prefix + f.name
        if kind == _TEXT:
            if "\x00" in value:
                raise InvalidArgument(name, "must not contain NUL characters")
        elif kind == _TEXTS:
            for i, item in enumerate(value):
                if "\x00" in item:
                    raise InvalidArgument(f"{name}[{i}]", "must not contain NUL characters")
        elif kind == _MESSAGE:
            no_nul(value, name + ".")
        elif kind == _MESSAGES:
            for i, item in enumerate(value):
                no_nul(item, f"{name}[{i}].")
        else:  # a map: its keys and values
            value_field = f.message_type.fields_by_name["value"]
            for key, item in value.items():
                if isinstance(key, str) and "\x00" in key:
                    raise InvalidArgument(name, "keys must not contain NUL characters")
                if isinstance(item, Message):
                    no_nul(item, f"{name}[{key!r}].")
                elif value_field.type == FieldDescriptor.TYPE_STRING and "\x00" in item:
                    raise InvalidArgument(f"{name}[{key!r}]", "must not contain NUL characters")


_SKIP, _TEXT, _TEXTS, _MESSAGE, _MESSAGES, _MAP = range(6)
_KINDS: dict[FieldDescriptor, int] = {}


def _kind(f: FieldDescriptor) -> int:
    # Cached per field: reading a field's options on every request would cost more than the
    # check itself (Evaluate is the hot path).
    kind = _KINDS.get(f)
    if kind is None:
        if f.message_type is not None:
            if f.message_type.GetOptions().map_entry:
                kind = _MAP
            elif f.message_type.full_name in JSON_TYPES:
                kind = _SKIP
            else:
                kind = _MESSAGES if f.is_repeated else _MESSAGE
        elif f.type == FieldDescriptor.TYPE_STRING:
            kind = _TEXTS if f.is_repeated else _TEXT
        else:
            kind = _SKIP
        _KINDS[f] = kind
    return kind
