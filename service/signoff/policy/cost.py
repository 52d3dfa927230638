"""A bound on what one evaluation can cost, from the program's loops and the request's sizes.

The engine (cel-expr-python 0.1.3) has no cost limit, cost tracker or interrupt: its only
runtime bound is 10,000 comprehension iterations per evaluation. Core CEL's string
functions are linear, so a rule that scans a request string once per element of a request
list is quadratic in the request: `xs.exists(x, s.contains(x))` with a 200 KiB `s` and
10,000 elements ran 11 s of CPU, and merely reading `s` inside the loop copies it (1.4 s).

At load, `shape()` takes the work inside the program's loops (loops.terms) and plans its
pricing. Before each evaluation, `over()` prices each term on the actual request:

    weight x min(10,000, product of the lengths of the enclosing loops) x size

where a term's size is the longest string plus the widest list or map among the values it
reads (for a field read, the longest string alone: a list or map is not copied): what one
scan, copy, comparison or membership test can touch. `quick()` prices with each value's
serialized size, an upper bound computed in C; only a request that this puts over the
limit has its values walked, to price them exactly. Values built inside the expression
(`s + s`) count as the largest value they come from: a constant factor the author wrote;
the builders that can grow faster are the builder guard's (celtext.BUILDERS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import message, struct_pb2

from signoff.policy import loops
from signoff.policy.loops import ELEMENT, ENGINE_ITERATIONS, Path, Range, Term


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
    once (`paths`, ELEMENT stripped), and per term (weight, loops, sources) by index into
    them. A loop is a count (>= 0), ~i (the length of paths[i]), or a tuple of indexes (at
    most one more than the largest of those values)."""

    terms: tuple[Term, ...]
    paths: tuple[Path, ...]
    plan: tuple[tuple[int, tuple[int | tuple[int, ...], ...], tuple[int, ...]], ...]


def shape(serialized: bytes) -> Shape | None:
    """The shape of a checked expression (Program.serialized()); None when it has no loop."""
    terms = loops.terms(serialized)
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
    return path[:-1] if path[-1:] == (ELEMENT,) else path


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
    for weight, ranges, sources in found.plan:
        iterations = 1  # capped once at the end: the same, as every factor is >= 0
        for r in ranges:
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
    if path[-1:] == (ELEMENT,):
        return f"the elements of {_name(path[:-1])}"
    return ".".join(path) or "the request"


# --- at evaluation: the request's sizes -------------------------------------------------


class _Sizes:
    """The exact sizes of a request's values by path, each walked once (cached per request)."""

    def __init__(self, request: message.Message, cache: dict) -> None:
        self.request = request
        self.cache = cache

    def value(self, path: Path) -> Any:
        """The value at path (for a path ending in ELEMENT, the value holding them)."""
        key = ("value", path)
        if key not in self.cache:
            self.cache[key] = _at(self.request, path[:-1] if path[-1:] == (ELEMENT,) else path)
        return self.cache[key]

    def needs_walk(self, path: Path) -> bool:
        """Whether the exact size of the value at path is not known yet."""
        return not isinstance(_string(self.value(path)), str) and ("walk", path) not in self.cache

    def size(self, path: Path, copy: bool = False) -> int:
        """The widest list or map plus the longest string inside the value at path (for a
        path ending in ELEMENT, inside its elements); with `copy`, the longest string."""
        value = _string(self.value(path))
        if isinstance(value, str):
            return len(value)
        key = ("walk", path)
        if key not in self.cache:
            self.cache[key] = _measure(value, path[-1:] == (ELEMENT,))
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
