"""The AST of a compiled CEL expression as small Python values, for the translator.

The checked expression is read from the engine's serialized form with policy/reads.py's
protobuf wire-format helpers (no cel.expr protos ship with the engine's binding); the field
numbers are those of cel-spec's syntax.proto.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from signoff.policy import wire
from signoff.policy.cel import Program

_ANY_VALUE, _CHECKED_EXPR = 2, 4
_CONST, _IDENT, _SELECT, _CALL, _LIST, _COMPREHENSION = 3, 4, 5, 6, 7, 9
# Constant's oneof: null, bool, int64, uint64, double, string.
_NULL, _BOOL, _INT, _UINT, _DOUBLE, _STRING = 1, 2, 3, 4, 5, 6


@dataclass(frozen=True)
class Const:
    """A literal: None (null), bool, int, float or str."""

    value: object


@dataclass(frozen=True)
class Ident:
    """A variable (`action`, `context`, ...)."""

    name: str


@dataclass(frozen=True)
class Select:
    """`operand.field`, or `has(operand.field)` when `test_only`."""

    operand: Node
    field: str
    test_only: bool


@dataclass(frozen=True)
class Call:
    """A function or operator (`_&&_`, `startsWith`, ...), with its receiver if any."""

    function: str
    target: Node | None
    args: tuple[Node, ...]


@dataclass(frozen=True)
class ListLit:
    """A list literal `[a, b]`."""

    elements: tuple[Node, ...]


@dataclass(frozen=True)
class Comprehension:
    """A macro's loop (all, exists, cel.bind, ...) as the parser expands it: `accu` starts
    as `init`; per element of `range` (`var`, or `var` = index and `var2` = element), while
    `condition` holds, `accu` becomes `step`; the value is `result`."""

    var: str
    var2: str
    range: Node
    accu: str
    init: Node
    condition: Node
    step: Node
    result: Node


@dataclass(frozen=True)
class Other:
    """Anything else (map and message literals): never analysed."""

    what: str


Node = Const | Ident | Select | Call | ListLit | Comprehension | Other


def tree(program: Program) -> Node:
    """The AST of a compiled program."""
    checked = wire.one(wire.fields(program.serialized()), _ANY_VALUE)
    return _node(wire.one(wire.fields(checked), _CHECKED_EXPR))


def _node(data: bytes) -> Node:
    f = wire.fields(data)
    if _CONST in f:
        return Const(_constant(wire.fields(wire.one(f, _CONST))))
    if _IDENT in f:
        return Ident(wire.text(wire.fields(wire.one(f, _IDENT)), 1))
    if _SELECT in f:
        s = wire.fields(wire.one(f, _SELECT))
        test_only = any(v == 1 for v in s.get(3, []))
        return Select(_node(wire.one(s, 1)), wire.text(s, 2), test_only)
    if _CALL in f:
        c = wire.fields(wire.one(f, _CALL))
        target = wire.every(c, 1)
        return Call(
            wire.text(c, 2),
            _node(target[0]) if target else None,
            tuple(_node(a) for a in wire.every(c, 3)),
        )
    if _LIST in f:
        return ListLit(tuple(_node(e) for e in wire.every(wire.fields(wire.one(f, _LIST)), 1)))
    if _COMPREHENSION in f:
        c = wire.fields(wire.one(f, _COMPREHENSION))
        return Comprehension(
            wire.text(c, 1),
            wire.text(c, 8) if 8 in c else "",
            *(_node(wire.one(c, n)) for n in (2,)),
            wire.text(c, 3),
            *(_node(wire.one(c, n)) for n in (4, 5, 6, 7)),
        )
    return Other("a map or message literal")


def _constant(c: dict[int, list[int | bytes]]) -> object:
    if _NULL in c:
        return None
    if _BOOL in c:
        return bool(c[_BOOL][-1])
    if _INT in c:
        raw = int(c[_INT][-1])  # varint: two's complement for negatives
        return raw - (1 << 64) if raw >= 1 << 63 else raw
    if _UINT in c:
        return Other("a uint literal")
    if _DOUBLE in c:
        raw_bytes = c[_DOUBLE][-1]
        assert isinstance(raw_bytes, bytes)
        return float(struct.unpack("<d", raw_bytes)[0])
    if _STRING in c:
        return wire.text(c, _STRING)
    return Other("a bytes, duration or timestamp literal")
