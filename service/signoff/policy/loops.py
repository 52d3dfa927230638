"""The work inside a compiled program's loops, read from its checked AST (for cost.py).

`terms()` walks the checked expression (cel.expr.CheckedExpr, which the engine serializes
inside a google.protobuf.Any) and keeps, for every node inside a loop body that can do
work in proportion to its operands, a Term: the loops around it and the request paths its
operands come from. A call counts, and so does a field read, which copies a string (the
engine converts the request's Struct values as they are read). Logical operators, calls
whose operands are all numbers, booleans or times, and comparisons with one such operand
are O(1) and do not count; neither does anything outside loops, which is linear in the
request. A loop's range is a request path (its length), a literal list, the range of the
map()/filter() it iterates, the characters of what split() splits, or else the engine's
whole budget. A loop variable reads the elements of its range (a path ending in ELEMENT);
an accumulator or cel.bind name, whatever its start and steps read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from signoff.policy import wire

Path = tuple[str, ...]  # a request path; () is the whole request
# A loop's iterations: a request path's length, a fixed count, or (a frozenset) at most one
# more than the size (widest list or map plus longest string) of these paths' values: a
# range read through a loop variable, or split() of these values.
Range = Path | int | frozenset[Path]

# A path's last name: any element (or key) of the value at the rest of the path.
ELEMENT = "*"
ENGINE_ITERATIONS = 10_000  # the engine's fixed budget, shared by every loop of an eval
_REQUEST_ROOTS = frozenset({"action", "principal", "resource", "context"})
_BATCH_ROOT = "__request"  # cel.combine reads the request as one variable
_CONST, _IDENT, _SELECT, _CALL, _LIST, _STRUCT, _COMPREHENSION = 3, 4, 5, 6, 7, 8, 9
_ANY_VALUE, _TYPE_MAP, _CHECKED_EXPR = 2, 3, 4
_INDEXES = frozenset({"_[_]", "_?._", "_[?_]"})
# O(1) whatever their operands: they pick one operand, they do not read it.
_LOGICAL = frozenset({"_&&_", "_||_", "!_", "@not_strictly_false", "_?_:_"})
# O(1) as soon as one side is a number, bool or time: a mismatch ends at the type.
_COMPARISONS = frozenset({"_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_"})


@dataclass(frozen=True)
class Term:
    """`weight` nodes inside `loops` (outermost first), each reading `sources`; `copy`: the
    nodes read a field, which copies a string but wraps a list or map as it is."""

    loops: tuple[Range, ...]
    sources: frozenset[Path]
    weight: int
    copy: bool = False


def terms(serialized: bytes) -> tuple[Term, ...]:
    """The terms of a checked expression (Program.serialized()); () when it has no loop."""
    checked = wire.fields(wire.one(wire.fields(serialized), _ANY_VALUE))
    cheap = {
        int(wire.fields(entry)[1][0]): _cheap_type(wire.one(wire.fields(entry), 2))
        for entry in wire.every(checked, _TYPE_MAP)
    }
    walk = _Walk(cheap)
    walk.sources(wire.one(checked, _CHECKED_EXPR), {}, ())
    return tuple(Term(loops, src, n, copy) for (loops, src, copy), n in walk.terms.items())


def _cheap_type(data: bytes) -> bool:
    """Whether a cel.expr.Type is a number, bool, null, timestamp or duration."""
    f = wire.fields(data)
    primitive = f.get(3, []) + f.get(4, [])  # primitive, wrapper: BOOL..DOUBLE are 1..4
    return (
        2 in f
        or any(v in (1, 2, 3, 4) for v in primitive)
        or any(
            v in (2, 3)
            for v in f.get(5, [])  # well_known: TIMESTAMP, DURATION
        )
    )


class _Walk:
    """One pass over the AST: each node's sources, and the terms of the nodes in loops."""

    def __init__(self, cheap: dict[int, bool]) -> None:
        self.cheap = cheap
        self.terms: Counter[tuple[tuple[Range, ...], frozenset[Path], bool]] = Counter()

    def _count(self, f: dict, sources: frozenset[Path], loops: tuple[Range, ...]) -> None:
        """Count a field read (a copy) inside loops."""
        if loops and sources and not self._is_cheap(f):
            self.terms[(loops, sources, True)] += 1

    def _is_cheap(self, f: dict) -> bool:
        return self.cheap.get(int(f.get(2, [0])[0]), False)

    def sources(self, expr: bytes, env: dict[str, frozenset[Path]], loops: tuple) -> frozenset:
        """The request paths `expr`'s value can come from; records terms on the way."""
        f = wire.fields(expr)
        chain = _chain(f, env)
        if chain is not None:
            if _IDENT not in f:  # a variable itself is a reference; a field read copies
                self._count(f, chain, loops)
            return chain
        if _SELECT in f:
            found = self.sources(wire.one(wire.fields(wire.one(f, _SELECT)), 1), env, loops)
            self._count(f, found, loops)
            return found
        if _CALL in f:
            return self._call(f, env, loops)
        if _LIST in f:
            return self._union(wire.every(wire.fields(wire.one(f, _LIST)), 1), env, loops)
        if _STRUCT in f:
            return self._union(_children(_STRUCT, wire.fields(wire.one(f, _STRUCT))), env, loops)
        if _COMPREHENSION in f:
            return self._comprehension(wire.fields(wire.one(f, _COMPREHENSION)), env, loops)
        return frozenset()  # a constant

    def _union(self, exprs: Iterable[bytes], env: dict, loops: tuple) -> frozenset[Path]:
        found: frozenset[Path] = frozenset()
        for e in exprs:
            found |= self.sources(e, env, loops)
        return found

    def _call(self, f: dict, env: dict, loops: tuple) -> frozenset[Path]:
        call = wire.fields(wire.one(f, _CALL))
        function = wire.text(call, 2)
        operands = wire.every(call, 1) + wire.every(call, 3)  # target, args
        found: frozenset[Path] = frozenset()
        cheap_operand = False
        for operand in operands:
            found |= self.sources(operand, env, loops)
            cheap_operand = cheap_operand or self._is_cheap(wire.fields(operand))
        all_cheap = all(self._is_cheap(wire.fields(o)) for o in operands)
        if function in _LOGICAL or all_cheap or (function in _COMPARISONS and cheap_operand):
            return found
        if loops and found:
            self.terms[(loops, found, False)] += 1
        return found

    def _comprehension(self, c: dict, env: dict, loops: tuple) -> frozenset[Path]:
        # cel-spec Comprehension: iter_var 1, iter_range 2, accu_var 3, accu_init 4,
        # loop_condition 5, loop_step 6, result 7, iter_var2 8 (two-variable macros).
        iter_range = wire.one(c, 2)
        ranged = self.sources(iter_range, env, loops)
        init = self.sources(wire.one(c, 4), env, loops)
        # Elements of elements are inside the elements: a path ends in one ELEMENT at most.
        elements = frozenset(p if p[-1:] == (ELEMENT,) else (*p, ELEMENT) for p in ranged)
        inner = {**env, **{v: elements for v in (wire.text(c, 1), wire.text(c, 8)) if v}}
        # The accumulator holds what the steps put in it: map() collects its elements.
        accu = init | ranged | _mentions(wire.one(c, 6), inner)
        inner[wire.text(c, 3)] = accu
        nested = (*loops, _range(iter_range, env))
        self.sources(wire.one(c, 5), inner, nested)
        self.sources(wire.one(c, 6), inner, nested)
        return accu | self.sources(wire.one(c, 7), {**env, wire.text(c, 3): accu}, loops)


def _chain(f: dict, env: dict[str, frozenset[Path]]) -> frozenset[Path] | None:
    """The sources of a variable read through constant selections, else None."""
    path = _path(f)
    if path is None:
        return None
    root, rest = path[0], path[1:]
    if root == _BATCH_ROOT:
        return frozenset({rest})
    if root in env:
        return env[root]
    if root in _REQUEST_ROOTS:
        return frozenset({path})
    if root == "now":
        return frozenset()
    return frozenset({()})  # not a name this walk knows: the whole request


def _path(f: dict) -> Path | None:
    """`ident(.field | ["key"])*` as a tuple of names, else None."""
    if _IDENT in f:
        return (wire.text(wire.fields(wire.one(f, _IDENT)), 1),)
    if _SELECT in f:
        select = wire.fields(wire.one(f, _SELECT))
        if any(v == 1 for v in select.get(3, [])):  # has(): a presence test reads nothing
            return None
        operand = _path(wire.fields(wire.one(select, 1)))
        return None if operand is None else (*operand, wire.text(select, 2))
    if _CALL in f:
        call = wire.fields(wire.one(f, _CALL))
        args = wire.every(call, 3)
        if wire.text(call, 2) in _INDEXES and len(args) == 2 and not wire.every(call, 1):
            key = wire.fields(args[1])
            constant = wire.fields(wire.one(key, _CONST)) if _CONST in key else {}
            operand = _path(wire.fields(args[0]))
            if 6 in constant and operand is not None:  # a string constant
                return (*operand, wire.text(constant, 6))
    return None


def _mentions(expr: bytes, env: dict[str, frozenset[Path]]) -> frozenset[Path]:
    """Every source named anywhere in `expr` (a linear pass: no terms, no loops)."""
    found: set[Path] = set()
    stack = [expr]
    while stack:
        f = wire.fields(stack.pop())
        path = _path(f)
        if path is not None:
            # A name bound inside `expr` (a nested loop's variable) adds nothing: the
            # range or start it comes from is itself in `expr`.
            if path[0] in env or path[0] in _REQUEST_ROOTS or path[0] == _BATCH_ROOT:
                found |= _chain(f, env) or frozenset()
            continue
        for kind in (_SELECT, _CALL, _LIST, _STRUCT, _COMPREHENSION):
            if kind in f:
                stack.extend(_children(kind, wire.fields(wire.one(f, kind))))
    return frozenset(found)


def _children(kind: int, f: dict) -> list[bytes]:
    if kind == _SELECT:
        return wire.every(f, 1)
    if kind == _CALL:
        return wire.every(f, 1) + wire.every(f, 3)
    if kind == _LIST:
        return wire.every(f, 1)
    if kind == _STRUCT:
        entries = [wire.fields(e) for e in wire.every(f, 2)]
        return [p for e in entries for p in wire.every(e, 3) + wire.every(e, 4)]  # key, value
    return [p for n in (2, 4, 5, 6, 7) for p in wire.every(f, n)]


def _range(expr: bytes, env: dict[str, frozenset[Path]]) -> Range:
    """How many times a loop over `expr` can run, as far as the AST tells."""
    f = wire.fields(expr)
    path = _path(f)
    if path is not None:
        if path[0] in env:
            return env[path[0]]  # inside an element of an outer range
        if path[0] == _BATCH_ROOT:
            return path[1:]
        if path[0] in _REQUEST_ROOTS:
            return path
    if _LIST in f:
        return len(wire.every(wire.fields(wire.one(f, _LIST)), 1))
    if _COMPREHENSION in f:
        c = wire.fields(wire.one(f, _COMPREHENSION))
        # map(), filter() and transformList() keep at most one element per iteration.
        if wire.text(c, 3) and wire.every(c, 2):
            return _range(wire.one(c, 2), env)
    if _CALL in f:
        call = wire.fields(wire.one(f, _CALL))
        target = wire.every(call, 1)
        # s.split(sep) has at most one piece per character of s, plus one.
        if wire.text(call, 2) == "split" and target and (found := _mentions(target[0], env)):
            return found
    return ENGINE_ITERATIONS
