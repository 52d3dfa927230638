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

from signoff.policy import wire
from signoff.policy.cel import Program

Path = tuple[str, ...]
ROOTS = frozenset({"action", "principal", "resource", "context", "now"})

# cel-spec syntax.proto: Expr's oneof, and the fields of its kinds read here.
_ANY_VALUE, _CHECKED_EXPR = 2, 4
_CONST, _IDENT, _SELECT, _CALL, _LIST, _STRUCT, _COMPREHENSION = 3, 4, 5, 6, 7, 8, 9
_CONST_STRING = 6
# `m["k"]`, and the optional-types extension's `m.?k` and `m[?"k"]`: each reads m.k.
_INDEXES = frozenset({"_[_]", "_?._", "_[?_]"})


def reads(program: Program) -> frozenset[Path]:
    """Every request path `program` reads (see the module doc)."""
    checked = wire.one(wire.fields(program.serialized()), _ANY_VALUE)
    expr = wire.one(wire.fields(checked), _CHECKED_EXPR)
    return frozenset(_paths(expr, frozenset()))


def _paths(expr: bytes, bound: frozenset[str]) -> Iterator[Path]:
    chain = _chain(expr)
    if chain is not None and chain[0] in ROOTS and chain[0] not in bound:
        yield chain
        return
    f = wire.fields(expr)
    if _SELECT in f:
        yield from _paths(wire.one(wire.fields(wire.one(f, _SELECT)), 1), bound)
    elif _CALL in f:
        call = wire.fields(wire.one(f, _CALL))
        for part in [*wire.every(call, 1), *wire.every(call, 3)]:  # target, args
            yield from _paths(part, bound)
    elif _LIST in f:
        for element in wire.every(wire.fields(wire.one(f, _LIST)), 1):
            yield from _paths(element, bound)
    elif _STRUCT in f:
        for entry in wire.every(wire.fields(wire.one(f, _STRUCT)), 2):
            e = wire.fields(entry)
            for part in [*wire.every(e, 3), *wire.every(e, 4)]:  # map key, value
                yield from _paths(part, bound)
    elif _COMPREHENSION in f:
        c = wire.fields(wire.one(f, _COMPREHENSION))
        iter_vars = {wire.text(c, 1), wire.text(c, 8)} - {""}
        accu = bound | {wire.text(c, 3)}
        for part in wire.every(c, 2) + wire.every(c, 4):  # range, accumulator's start
            yield from _paths(part, bound)
        for part in wire.every(c, 5) + wire.every(c, 6):  # loop condition, step
            yield from _paths(part, accu | iter_vars)
        for part in wire.every(c, 7):  # result
            yield from _paths(part, accu)


def _chain(expr: bytes) -> Path | None:
    """The path of an identifier followed by constant selections, else None."""
    f = wire.fields(expr)
    if _IDENT in f:
        return (wire.text(wire.fields(wire.one(f, _IDENT)), 1),)
    if _SELECT in f:
        select = wire.fields(wire.one(f, _SELECT))
        operand = _chain(wire.one(select, 1))
        return None if operand is None else (*operand, wire.text(select, 2))
    if _CALL in f:
        call = wire.fields(wire.one(f, _CALL))
        args = wire.every(call, 3)
        if wire.text(call, 2) in _INDEXES and len(args) == 2 and not wire.every(call, 1):
            key = _constant_string(args[1])
            operand = _chain(args[0])
            if key is not None and operand is not None:
                return (*operand, key)
    return None


def _constant_string(expr: bytes) -> str | None:
    f = wire.fields(expr)
    if _CONST not in f:
        return None
    constant = wire.fields(wire.one(f, _CONST))
    return wire.text(constant, _CONST_STRING) if _CONST_STRING in constant else None
