"""Just enough of the protobuf wire format to walk a checked CEL expression.

No cel.expr protos ship with the engine's Python binding, so the messages loops.py reads
(cel-spec's syntax.proto and checked.proto) are decoded field by field. This module
imports nothing of the policy layer: cel.py's compile() uses it through cost.py and
loops.py. reads.py holds the same helpers (it imports cel.py, so cel.py cannot import it).
"""

from __future__ import annotations

Fields = dict[int, list[int | bytes]]


def fields(data: bytes) -> Fields:
    """Field number -> values (ints for varints, bytes for length-delimited fields)."""
    out: Fields = {}
    i, n = 0, len(data)
    while i < n:
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            length, i = _varint(data, i)
            value, i = data[i : i + length], i + length
        elif wire in (1, 5):  # fixed64, fixed32: doubles in constants, never read here
            size = 8 if wire == 1 else 4
            value, i = data[i : i + size], i + size
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7


def every(f: Fields, number: int) -> list[bytes]:
    """Every length-delimited value of field `number` (a repeated message field)."""
    return [v for v in f.get(number, []) if isinstance(v, bytes)]


def one(f: Fields, number: int) -> bytes:
    """The last length-delimited value of field `number`, or b"" (proto3: last one wins)."""
    values = every(f, number)
    return values[-1] if values else b""


def text(f: Fields, number: int) -> str:
    """Field `number` as a string ("" when absent)."""
    return one(f, number).decode()
