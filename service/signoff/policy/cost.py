"""A bound on what one evaluation can cost, from the program's loops and the request's sizes.

The engine (cel-expr-python 0.1.3) has no cost limit, cost tracker or interrupt: its only
runtime bound is 10,000 comprehension iterations per evaluation. Core CEL's string
functions are linear, so a rule that scans a request string once per element of a request
list is quadratic in the request: `xs.exists(x, s.contains(x))` with a 200 KiB `s` and
10,000 elements ran 11 s of CPU, and merely reading `s` inside the loop copies it (1.4 s).

At load, `shape()` walks the checked AST and keeps, for every node inside a loop body
that can do work in proportion to its operands (a call, a read of a request value), a
Term: the loops around it and the request paths its operands come from. Logical
operators, and calls whose operands are numbers, booleans or times, cost O(1) and are left
out; so is everything outside loops, which is linear in the request. At evaluation,
`bound()` prices each term on the actual request:

    weight x min(10,000, product of the iterations of the enclosing loops) x size of its sources

where a loop's iterations are the length of its range when that is a request path (else
the length of a list literal, or the range of the map()/filter() it iterates, else the
engine's budget), and a source's size is the longest string plus the widest list or map
inside it: what one scan, copy, comparison or membership test can touch. Values built
inside the expression (`s + s`) are counted once per node, a constant factor the author
wrote; the rest of that risk is the builder guard's (celtext.BUILDERS).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import message, struct_pb2

from signoff.policy import wire

Path = tuple[str, ...]  # a request path; () is the whole request
# A loop's iterations: a request path's length, a fixed count, or (a frozenset) at most one
# more than the size (widest list or map plus longest string) of these paths' values: a
# range read through a loop variable, or split() of these values.
Range = Path | int | frozenset[Path]

# A path's last name: any element (or key) of the value at the rest of the path.
_ELEMENT = "*"
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


@dataclass(frozen=True)
class Bound:
    """What one evaluation can cost on one request, and its largest term (for messages)."""

    total: int
    iterations: int
    size: int
    loops: tuple[Range, ...]
    sources: frozenset[Path]


@dataclass(frozen=True)
class Shape:
    """A program's terms, and the same as a plan for the quick bound: each path it reads
    once (`paths`, _ELEMENT stripped), and per term (weight, loops, sources) by index into
    them. A loop is a count (>= 0), ~i (the length of paths[i]), or a tuple of indexes (at
    most one more than the largest of those values)."""

    terms: tuple[Term, ...]
    paths: tuple[Path, ...]
    plan: tuple[tuple[int, tuple[int | tuple[int, ...], ...], tuple[int, ...]], ...]


def shape(serialized: bytes) -> Shape | None:
    """The shape of a checked expression (Program.serialized()); None when it has no loop."""
    checked = wire.fields(wire.one(wire.fields(serialized), _ANY_VALUE))
    cheap = {
        int(wire.fields(entry)[1][0]): _cheap_type(wire.one(wire.fields(entry), 2))
        for entry in wire.every(checked, _TYPE_MAP)
    }
    walk = _Walk(cheap)
    walk.sources(wire.one(checked, _CHECKED_EXPR), {}, ())
    terms = tuple(Term(loops, src, n, copy) for (loops, src, copy), n in walk.terms.items())
    if not terms:
        return None
    paths: dict[Path, int] = {}

    def index(path: Path) -> int:
        return paths.setdefault(_base(path), len(paths))

    def loop(r: Range) -> int | tuple[int, ...]:
        if isinstance(r, int):
            return r
        if isinstance(r, tuple):
            return ~index(r)
        return tuple(index(p) for p in sorted(r))

    plan = tuple(
        (t.weight, tuple(loop(r) for r in t.loops), tuple(index(p) for p in sorted(t.sources)))
        for t in terms
    )
    return Shape(terms, tuple(paths), plan)


def _base(path: Path) -> Path:
    """The value a path reads: a path's elements are inside the value at the path."""
    return path[:-1] if path[-1:] == (_ELEMENT,) else path


def quick(found: Shape, request: message.Message, cache: dict) -> list[int]:
    """An upper bound of each term's cost, from serialized sizes (computed in C, once per
    path)."""
    values = []
    for path in found.paths:
        sizes = cache.get(path)
        if sizes is None:
            value = _at(request, path)
            sizes = cache[path] = (_length(value), _upper(value))
        values.append(sizes)
    costs = []
    for weight, loops, sources in found.plan:
        iterations = 1  # capped once at the end: the same, as every factor is >= 0
        for r in loops:
            if type(r) is int:
                iterations *= r if r >= 0 else values[~r][0]
            else:
                iterations *= max(values[i][1] for i in r) + 1
        size = max(values[i][1] for i in sources) if sources else 0
        costs.append(weight * min(ENGINE_ITERATIONS, iterations) * size)
    return costs


def over(found: Shape, request: message.Message, cache: dict, limit: int) -> Bound | None:
    """None when one evaluation of `found` on `request` costs at most `limit`; else its
    bound, over it. `cache` keeps each path's sizes for the request's next program.

    First quick(): an ordinary request passes in microseconds. Over `limit`, the terms are
    priced on the values themselves (walked in Python), largest quick term first, stopping
    as soon as the total is over: then `total` is a lower bound, still over `limit`.
    """
    costs = quick(found, request, cache)
    if sum(costs) <= limit:
        return None
    sizes = _Sizes(request, cache)
    total, worst = 0, Bound(0, 0, 0, (), frozenset())
    for _, term in sorted(zip(costs, found.terms, strict=True), key=lambda ct: -ct[0]):
        priced = _price(term, sizes, limit - total)
        total += priced.total
        worst = max(worst, priced, key=lambda b: b.total)
        if total > limit:
            return Bound(total, worst.iterations, worst.size, worst.loops, worst.sources)
    return None


def _price(term: Term, sizes: _Sizes, room: int) -> Bound:
    """The term's exact cost; sources stop being measured once it is over `room`."""
    iterations = 1
    for loop in term.loops:
        if isinstance(loop, int):
            n = loop
        elif isinstance(loop, tuple):
            n = _length(sizes.value(loop))
        else:  # at most one element per character or element of these values, plus one
            n = max((sizes.size(p) for p in loop), default=0) + 1
        iterations = min(ENGINE_ITERATIONS, iterations * n)
    size = 0
    # Strings first: their sizes cost nothing, and one may be enough to refuse.
    for path in sorted(term.sources, key=sizes.needs_walk):
        size = max(size, sizes.size(path, term.copy))
        if room < term.weight * iterations * size:
            break
    return Bound(term.weight * iterations * size, iterations, size, term.loops, term.sources)


def describe(b: Bound) -> str:
    """The largest term of `b` in words, naming paths and sizes, never values."""
    loops = " x ".join(
        _name(r) if isinstance(r, tuple) else (str(r) if isinstance(r, int) else "a nested list")
        for r in b.loops
    )
    sources = ", ".join(sorted(_name(p) for p in b.sources))
    return (
        f"{b.iterations:,} iterations (of {loops}), each reading up to {b.size:,} characters "
        f"or elements (of {sources})"
    )


def _name(path: Path) -> str:
    if path[-1:] == (_ELEMENT,):
        return f"the elements of {_name(path[:-1])}"
    return ".".join(path) or "the request"


# --- at load: the terms -----------------------------------------------------------------


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
        # Elements of elements are inside the elements: a path ends in one _ELEMENT at most.
        elements = frozenset(p if p[-1:] == (_ELEMENT,) else (*p, _ELEMENT) for p in ranged)
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


# --- at evaluation: the request's sizes -------------------------------------------------


class _Sizes:
    """The exact sizes of a request's values by path, each walked once (cached per request)."""

    def __init__(self, request: message.Message, cache: dict) -> None:
        self.request = request
        self.cache = cache

    def value(self, path: Path) -> Any:
        """The value at path (for a path ending in _ELEMENT, the value holding them)."""
        key = ("value", path)
        if key not in self.cache:
            self.cache[key] = _at(self.request, path[:-1] if path[-1:] == (_ELEMENT,) else path)
        return self.cache[key]

    def needs_walk(self, path: Path) -> bool:
        """Whether the exact size of the value at path is not known yet."""
        return not isinstance(_string(self.value(path)), str) and ("walk", path) not in self.cache

    def size(self, path: Path, copy: bool = False) -> int:
        """The widest list or map plus the longest string inside the value at path (for a
        path ending in _ELEMENT, inside its elements); with `copy`, the longest string."""
        value = _string(self.value(path))
        if isinstance(value, str):
            return len(value)
        key = ("walk", path)
        if key not in self.cache:
            self.cache[key] = _measure(value, path[-1:] == (_ELEMENT,))
        widest, longest = self.cache[key]
        return longest if copy else widest + longest


def _string(value: Any) -> Any:
    """A string Value as its str; anything else as it is."""
    if type(value) is struct_pb2.Value and value.WhichOneof("kind") == "string_value":
        return value.string_value
    return value


def _length(value: Any) -> int:
    """How many elements (or keys) `value` has; 0 for anything else."""
    if type(value) is struct_pb2.Value:
        value = _unwrap(value)
    if isinstance(value, struct_pb2.Struct):
        return len(value.fields)
    if isinstance(value, struct_pb2.ListValue):
        return len(value.values)
    return len(value) if isinstance(value, Sequence) and not isinstance(value, str) else 0


def _upper(value: Any) -> int:
    """At least the widest list or map plus the longest string or key inside `value`: each
    element takes a byte or more to serialize, each character one or more."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, message.Message):
        return value.ByteSize()
    if isinstance(value, Sequence) and not isinstance(value, str):  # a repeated field
        return sum(map(len, value)) + len(value)
    return 0


def _at(value: Any, path: Path) -> Any:
    """The value at `path` of the request (a message, Struct, list or scalar), or None."""
    for name in path:
        kind = type(value)
        if kind is struct_pb2.Value:
            value = _unwrap(value)
            kind = type(value)
        if kind is struct_pb2.Struct:
            value = value.fields.get(name)
        elif isinstance(value, message.Message) and name in value.DESCRIPTOR.fields_by_name:
            value = getattr(value, name)
        else:
            return None  # no such field, a list indexed by name, a scalar: the engine errors
        if value is None:
            return None
    return value


def _unwrap(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return value.struct_value
    if kind == "list_value":
        return value.list_value
    return value.string_value if kind == "string_value" else None


def _measure(value: Any, inside: bool) -> tuple[int, int]:
    """(widest, longest) of a request value, walking all of it once; with `inside`, widest
    leaves out the value's own length."""
    length, children, longest = _open(value)
    widest = 0 if inside else length
    stack = children
    while stack:
        n, more, chars = _open(stack.pop())
        widest, longest = max(widest, n), max(longest, chars)
        stack.extend(more)
    return widest, longest


def _open(item: Any) -> tuple[int, list[Any], int]:
    """(length, children, longest string or key) of one value, not looking deeper."""
    kind = type(item)
    if kind is struct_pb2.Value:
        item = _unwrap(item)
        kind = type(item)
    if kind is str:
        return 0, [], len(item)
    if kind is struct_pb2.Struct:
        fields = item.fields
        return len(fields), list(fields.values()), max(map(len, fields), default=0)
    if kind is struct_pb2.ListValue:
        return len(item.values), list(item.values), 0
    if isinstance(item, message.Message):
        return 0, [v for _, v in item.ListFields()], 0
    if isinstance(item, Sequence):  # a repeated field
        return len(item), list(item), 0
    return 0, [], 0
