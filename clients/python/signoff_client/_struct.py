"""Python values <-> google.protobuf.Struct, strictly JSON.

`Struct.update()` would accept or mangle values that JSON cannot carry (it raises deep
inside protobuf on a set, turns a tuple into a list silently, sends NaN that the server's
JSON audit log cannot store). We check every value first so that the error names the key
path the caller wrote, before anything is sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import struct_pb2

from signoff_client.errors import InvalidArgument

# Struct numbers are IEEE doubles: integers beyond 2**53 would arrive changed.
_MAX_EXACT_INT = 2**53


def to_struct(data: Mapping[str, Any] | None, path: str) -> struct_pb2.Struct:
    """Return `data` as a Struct; raise InvalidArgument naming the bad key under `path`."""
    struct = struct_pb2.Struct()
    if data is None:
        return struct
    if not isinstance(data, Mapping):
        raise InvalidArgument(f"expected a mapping, got {type(data).__name__}", field=path)
    _fill_struct(struct, data, path, set())
    return struct


def _fill_struct(
    struct: struct_pb2.Struct, data: Mapping[Any, Any], path: str, seen: set[int]
) -> None:
    for key, value in data.items():
        if not isinstance(key, str):
            raise InvalidArgument(f"key {key!r} is not a string", field=path)
        _set_value(struct.fields[key], value, _join(path, key), seen)


def _set_value(out: struct_pb2.Value, value: Any, path: str, seen: set[int]) -> None:
    # bool before int: bool is an int subclass and must stay a JSON boolean.
    if value is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        if abs(value) > _MAX_EXACT_INT:
            raise InvalidArgument(
                f"integer {value} does not fit a JSON number exactly (|n| > 2**53); "
                "send it as a string",
                field=path,
            )
        out.number_value = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument(f"{value} is not a JSON number", field=path)
        out.number_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, Mapping):
        with _visiting(value, path, seen):
            out.struct_value.SetInParent()  # an empty dict is still a struct, not null
            _fill_struct(out.struct_value, value, path, seen)
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        with _visiting(value, path, seen):
            out.list_value.SetInParent()
            for i, item in enumerate(value):
                _set_value(out.list_value.values.add(), item, f"{path}[{i}]", seen)
    else:
        raise InvalidArgument(
            f"{type(value).__name__} is not a JSON value "
            "(use str, int, float, bool, None, list or dict)",
            field=path,
        )


class _visiting:
    """Guard against a container that contains itself (it would recurse forever)."""

    def __init__(self, value: object, path: str, seen: set[int]) -> None:
        self._id, self._path, self._seen = id(value), path, seen

    def __enter__(self) -> None:
        if self._id in self._seen:
            raise InvalidArgument("circular reference", field=self._path)
        self._seen.add(self._id)

    def __exit__(self, *exc: object) -> None:
        self._seen.discard(self._id)


def _join(path: str, key: str) -> str:
    # Dotted where the key reads as an identifier, bracketed otherwise, so that the path
    # in an error can be pasted back into code or a CEL expression.
    if key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def from_value(value: struct_pb2.Value) -> Any:
    """Return a Struct `Value` as plain Python (numbers stay floats, as on the wire)."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return from_struct(value.struct_value)
    if kind == "list_value":
        return [from_value(v) for v in value.list_value.values]
    if kind in ("number_value", "string_value", "bool_value"):
        return getattr(value, kind)
    return None


def from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    """Return a Struct as a plain dict."""
    return {key: from_value(v) for key, v in struct.fields.items()}
