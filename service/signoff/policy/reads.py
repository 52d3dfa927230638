"""What a compiled CEL expression reads: the paths of the request it selects, from its AST.

`reads(program)` walks the checked expression (cel.expr.CheckedExpr, which the engine
serializes inside a google.protobuf.Any) and returns every path rooted at one of the
request's variables: `action.params.amount` is ("action", "params", "amount"),
`context["mcp"].tool` is ("context", "mcp", "tool"), `has(x.y)` reads ("x", "y"). A path
ends where the expression stops selecting by constant names: `size(context)` and
`context[k]` read ("context",), all of it. Comprehension variables that shadow a request
variable (`xs.exists(action, ...)`) are not the request's.

No cel.expr protos ship with the engine's Python binding, so the few messages needed are
read straight from the protobuf wire format (field numbers of cel-spec's syntax.proto).
"""

from __future__ import annotations

from collections.abc import Iterator

from signoff.policy.cel import Program

Path = tuple[str, ...]
ROOTS = frozenset({"action", "principal", "resource", "context", "now"})

# cel-spec syntax.proto: Expr's oneof, and the fields of its kinds read here.
_ANY_VALUE, _CHECKED_EXPR = 2, 4
_CONST, _IDENT, _SELECT, _CALL, _LIST, _STRUCT, _COMPREHENSION = 3, 4, 5, 6, 7, 8, 9
_CONST_STRING = 6
# `m["k"]`, and the optional-types extension's `m.?k` and `m[?"k"]`: each reads m.k.
_INDEXES = frozenset({"_[_]", "_?._", "_[?_]"})
_Fields = dict[int, list[int | bytes]]


def reads(program: Program) -> frozenset[Path]:
    """Every request path `program` reads (see the module doc)."""
    checked = _one(_fields(program.serialized()), _ANY_VALUE)
    expr = _one(_fields(checked), _CHECKED_EXPR)
    return frozenset(_paths(expr, frozenset()))


def _paths(expr: bytes, bound: frozenset[str]) -> Iterator[Path]:
    chain = _chain(expr)
    if chain is not None and chain[0] in ROOTS and chain[0] not in bound:
        yield chain
        return
    f = _fields(expr)
    if _SELECT in f:
        yield from _paths(_one(_fields(_one(f, _SELECT)), 1), bound)
    elif _CALL in f:
        call = _fields(_one(f, _CALL))
        for part in [*_all(call, 1), *_all(call, 3)]:  # target, args
            yield from _paths(part, bound)
    elif _LIST in f:
        for element in _all(_fields(_one(f, _LIST)), 1):
            yield from _paths(element, bound)
    elif _STRUCT in f:
        for entry in _all(_fields(_one(f, _STRUCT)), 2):
            e = _fields(entry)
            for part in [*_all(e, 3), *_all(e, 4)]:  # map key, value
                yield from _paths(part, bound)
    elif _COMPREHENSION in f:
        c = _fields(_one(f, _COMPREHENSION))
        iter_vars = {_text(c, 1), _text(c, 8)} - {""}
        accu = bound | {_text(c, 3)}
        for part in _all(c, 2) + _all(c, 4):  # range, accumulator's start
            yield from _paths(part, bound)
        for part in _all(c, 5) + _all(c, 6):  # loop condition, step
            yield from _paths(part, accu | iter_vars)
        for part in _all(c, 7):  # result
            yield from _paths(part, accu)


def _chain(expr: bytes) -> Path | None:
    """The path of an identifier followed by constant selections, else None."""
    f = _fields(expr)
    if _IDENT in f:
        return (_text(_fields(_one(f, _IDENT)), 1),)
    if _SELECT in f:
        select = _fields(_one(f, _SELECT))
        operand = _chain(_one(select, 1))
        return None if operand is None else (*operand, _text(select, 2))
    if _CALL in f:
        call = _fields(_one(f, _CALL))
        args = _all(call, 3)
        if _text(call, 2) in _INDEXES and len(args) == 2 and not _all(call, 1):
            key = _constant_string(args[1])
            operand = _chain(args[0])
            if key is not None and operand is not None:
                return (*operand, key)
    return None


def _constant_string(expr: bytes) -> str | None:
    f = _fields(expr)
    if _CONST not in f:
        return None
    constant = _fields(_one(f, _CONST))
    return _text(constant, _CONST_STRING) if _CONST_STRING in constant else None


# --- protobuf wire format: just enough to walk the messages above ---------------------


def _fields(data: bytes) -> _Fields:
    """Field number -> values (ints for varints, bytes for length-delimited fields)."""
    out: _Fields = {}
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


def _all(fields: _Fields, number: int) -> list[bytes]:
    return [v for v in fields.get(number, []) if isinstance(v, bytes)]


def _one(fields: _Fields, number: int) -> bytes:
    values = _all(fields, number)
    return values[-1] if values else b""


def _text(fields: _Fields, number: int) -> str:
    return _one(fields, number).decode()
