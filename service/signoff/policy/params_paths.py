"""Load time: the `action.params` paths of an expression, checked and typed by its schema.

The paths come from the checked AST (policy/reads.py's wire-format helpers), not from the
text, so scoping is the engine's: in `xs.exists(action, action.params.y)` or
`cel.bind(action, ..., ...)` the name is a comprehension variable, not the request's. Every
way of naming a param is a path: `action.params.x`, `action.params["x"]`,
`action.params.?x`, `action.params[?"x"]` and `action.?params...`, each step as written.

`rewrite` (see params.py's doc) reports a name the schema does not declare as a typo, at the
name, and replaces each declared path by a fresh identifier padded to the path's length
(newlines kept), so the engine's lines and columns stay the author's. Identifiers come from
a table of paths, not from the names: `a_b.c` and `a.b_c` get two identifiers, the same path
written twice (`x.y`, `x["y"]`) one. A path read through `.?` or `[?...]` is optional:
`optional.of(<identifier>)` has its type, `optional_type(T)`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from signoff.policy import wire
from signoff.policy.celtext import Token, scan
from signoff.policy.params import ParamSchema, cel_type

if TYPE_CHECKING:
    from signoff.policy.cel import Program

# cel-spec syntax.proto / checked.proto field numbers.
_ANY_VALUE, _CHECKED_EXPR, _SOURCE_INFO, _POSITIONS = 2, 4, 5, 4
_ID, _CONST, _IDENT, _SELECT, _CALL, _LIST, _STRUCT, _COMPREHENSION = 2, 3, 4, 5, 6, 7, 8, 9
_CONST_STRING = 6
# Index functions: `m["k"]`, and the optional-types extension's `m.?k` and `m[?"k"]`.
_INDEX, _OPT_SELECT, _OPT_INDEX = "_[_]", "_?._", "_[?_]"


@dataclass(frozen=True)
class Step:
    """One name of a path, as written: `.x` (select), `.?x`, `["x"]` or `[?"x"]`."""

    kind: str  # select, test (has()'s field), opt, index, optindex
    name: str
    at: int  # offset of the name in the text (where a typo is reported)
    end: int  # offset just past the step's text; -1 when the text is not the path's alone

    @property
    def optional(self) -> bool:
        """Read with `.?` or `[?`: the path's value is an optional from here on."""
        return self.kind in ("opt", "optindex")

    def written(self) -> str:
        """The step as an author would write it."""
        quoted = json.dumps(self.name)
        return {"opt": f".?{self.name}", "index": f"[{quoted}]", "optindex": f"[?{quoted}]"}.get(
            self.kind, f".{self.name}"
        )


@dataclass(frozen=True)
class ParamsPath:
    """`action` at `start`, its `params` step, then the names under params."""

    start: int
    params: Step
    steps: tuple[Step, ...]


def params_paths(
    program: Program, text: str, tokens: list[Token] | None = None
) -> list[ParamsPath]:
    """Every path under the request's `action.params` that `program` (compiled from `text`,
    which `tokens` are the scan of) reads by constant names, in the order of the AST."""
    checked = wire.fields(wire.one(wire.fields(program.serialized()), _ANY_VALUE))
    positions: dict[int, int] = {}
    for entry in wire.every(wire.fields(wire.one(checked, _SOURCE_INFO)), _POSITIONS):
        f = wire.fields(entry)
        key, value = f.get(1, [0])[-1], f.get(2, [0])[-1]
        if isinstance(key, int) and isinstance(value, int):
            positions[key] = value
    walk = _Walk(positions, scan(text) if tokens is None else tokens)
    return list(walk.paths(wire.one(checked, _CHECKED_EXPR), frozenset()))


class _Walk:
    def __init__(self, positions: dict[int, int], tokens: list[Token]) -> None:
        self.positions = positions
        self.tokens = tokens
        self.by_start = {t.start: i for i, t in enumerate(tokens)}

    def paths(self, expr: bytes, bound: frozenset[str]) -> Iterator[ParamsPath]:
        """The params paths of `expr`, with `bound` the comprehension variables in scope."""
        chain = self._chain(expr)
        if chain is not None and len(chain) > 1:
            (_, root, start), (kind, name, _) = chain[0], chain[1]
            if root == "action" and root not in bound:
                if name == "params" and kind in ("select", "opt", "test") and len(chain) > 2:
                    yield self._located(start, chain[1:])
                return  # other fields of action (or an unnamed part of params): nothing to check
        f = wire.fields(expr)
        if _SELECT in f:
            yield from self.paths(wire.one(wire.fields(wire.one(f, _SELECT)), 1), bound)
        elif _CALL in f:
            call = wire.fields(wire.one(f, _CALL))
            for part in [*wire.every(call, 1), *wire.every(call, 3)]:  # target, args
                yield from self.paths(part, bound)
        elif _LIST in f:
            for element in wire.every(wire.fields(wire.one(f, _LIST)), 1):
                yield from self.paths(element, bound)
        elif _STRUCT in f:
            for entry in wire.every(wire.fields(wire.one(f, _STRUCT)), 2):
                e = wire.fields(entry)
                for part in [*wire.every(e, 3), *wire.every(e, 4)]:  # map key, value
                    yield from self.paths(part, bound)
        elif _COMPREHENSION in f:
            # The scoping of reads.py: the iteration variables (iter_var, iter_var2) are
            # bound in the loop, the accumulator (cel.bind's variable) in the loop and result.
            c = wire.fields(wire.one(f, _COMPREHENSION))
            iter_vars = {wire.text(c, 1), wire.text(c, 8)} - {""}
            accu = bound | {wire.text(c, 3)}
            for part in wire.every(c, 2) + wire.every(c, 4):  # range, accumulator's start
                yield from self.paths(part, bound)
            for part in wire.every(c, 5) + wire.every(c, 6):  # loop condition, step
                yield from self.paths(part, accu | iter_vars)
            for part in wire.every(c, 7):  # result
                yield from self.paths(part, accu)

    def _chain(self, expr: bytes) -> list[tuple[str, str, int]] | None:
        """(kind, name, position) from the root identifier through each constant step."""
        f = wire.fields(expr)
        pos = self.positions.get(_int(f, _ID), -1)
        if _IDENT in f:
            return [("ident", wire.text(wire.fields(wire.one(f, _IDENT)), 1), pos)]
        if _SELECT in f:
            select = wire.fields(wire.one(f, _SELECT))
            operand = self._chain(wire.one(select, 1))
            kind = "test" if _int(select, 3) else "select"
            return None if operand is None else [*operand, (kind, wire.text(select, 2), pos)]
        if _CALL in f:
            call = wire.fields(wire.one(f, _CALL))
            function, args = wire.text(call, 2), wire.every(call, 3)
            kinds = {_INDEX: "index", _OPT_SELECT: "opt", _OPT_INDEX: "optindex"}
            if function in kinds and len(args) == 2 and not wire.every(call, 1):
                key = _constant_string(args[1])
                operand = self._chain(args[0])
                if key is not None and operand is not None:
                    return [*operand, (kinds[function], key, pos)]
        return None

    def _located(self, start: int, chain: list[tuple[str, str, int]]) -> ParamsPath:
        """The path with each step found in the tokens, walking on from `action`."""
        steps: list[Step] = []
        j: int | None = self.by_start.get(start)
        for kind, name, pos in chain:
            shape = _SHAPES[kind]
            if j is not None and self._matches(j, shape, name):
                at = self.tokens[j + shape.index("name") + 1].start
                j += len(shape)
                steps.append(Step(kind, name, at, self.tokens[j].end))
            else:
                j = None  # `(action.params).x`: the path's text is not one piece
                steps.append(Step(kind, name, self._name_after(pos, name), -1))
        return ParamsPath(start, steps[0], tuple(steps[1:]))

    def _matches(self, j: int, shape: tuple[str, ...], name: str) -> bool:
        got = self.tokens[j + 1 : j + 1 + len(shape)]
        if len(got) != len(shape):
            return False
        for want, tok in zip(shape, got, strict=True):
            if want == "name" and not (
                (tok.kind == "ident" and tok.text == name) or tok.kind == "string"
            ):
                return False
            if want != "name" and tok.text != want:
                return False
        return True

    def _name_after(self, pos: int, name: str) -> int:
        """Where `name` is written at or after the step's position (the dot or bracket)."""
        i = self.by_start.get(pos)
        if i is None:
            return max(pos, 0)
        for tok in self.tokens[i : i + 4]:
            if tok.text == name or (tok.kind == "string" and name in tok.text):
                return tok.start
        return pos


# The tokens of each kind of step after the previous one ("name": the name or the key).
_SHAPES: dict[str, tuple[str, ...]] = {
    "select": (".", "name"),
    "test": (".", "name"),
    "opt": (".", "?", "name"),
    "index": ("[", "name", "]"),
    "optindex": ("[", "?", "name", "]"),
}


def _int(fields: dict[int, list[int | bytes]], number: int) -> int:
    values = [v for v in fields.get(number, []) if isinstance(v, int)]
    return values[-1] if values else 0


def _constant_string(expr: bytes) -> str | None:
    f = wire.fields(expr)
    if _CONST not in f:
        return None
    constant = wire.fields(wire.one(f, _CONST))
    return wire.text(constant, _CONST_STRING) if _CONST_STRING in constant else None


# --- the check and the rewrite --------------------------------------------------------


@dataclass(frozen=True)
class Rewritten:
    """An expression with its declared params paths as typed identifiers."""

    text: str
    declared: dict[str, str]  # identifier -> type (see cel.check_typed)
    typos: list[tuple[int, str]]  # (offset, message)


def rewrite(text: str, program: Program, schema: ParamSchema) -> Rewritten:
    """Typos found and declared paths replaced by typed identifiers (see the module doc)."""
    tokens = scan(text)
    idents = {t.text for t in tokens if t.kind == "ident"}
    prefix = "_p"
    while any(i.startswith(prefix) for i in idents):
        prefix = "_" + prefix  # never a name the expression binds itself
    table: dict[tuple[str, ...], str] = {}
    declared: dict[str, str] = {}
    typos: list[tuple[int, str]] = []
    replaced: list[tuple[int, int, str]] = []
    for path in params_paths(program, text, tokens):
        count, node, typo = _declared(path, schema)
        if typo is not None:
            typos.append(typo)
            continue
        steps = path.steps[:count]
        if count and steps[-1].kind == "test":  # has() needs a field selection: keep it
            steps = steps[:-1]
            node = _node_of(schema.schema, [s.name for s in steps])
        if not steps or steps[-1].end < 0:
            continue  # nothing typed, or the text is not one piece: it keeps its dyn select
        key = tuple(s.name for s in steps)
        ident = table.setdefault(key, f"{prefix}{len(table)}")
        optional = path.params.optional or any(s.optional for s in steps)
        replacement = f"optional.of({ident})" if optional else ident
        span = text[path.start : steps[-1].end]
        if len(replacement) > len(span) or "\n" in span[: len(replacement)]:
            continue  # too short to hold it (a one-letter name under `.?`): stays dyn
        declared[ident] = cel_type(node)
        pad = "".join("\n" if ch == "\n" else " " for ch in span[len(replacement) :])
        replaced.append((path.start, steps[-1].end, replacement + pad))
    parts, pos = [], 0
    for start, end, new in sorted(replaced):
        parts += [text[pos:start], new]
        pos = end
    return Rewritten("".join(parts) + text[pos:], declared, typos)


def _declared(
    path: ParamsPath, schema: ParamSchema
) -> tuple[int, Mapping[str, Any], tuple[int, str] | None]:
    """How many steps the schema declares, the schema of the last, and (offset, message) of
    the first name it does not declare. Past an object without `properties` (or a scalar)
    the schema says nothing more: the rest is left to the type check."""
    node: Mapping[str, Any] = schema.schema
    written = f"action{path.params.written()}"
    plain = "action.params"
    for count, step in enumerate(path.steps):
        properties = node.get("properties")
        if not isinstance(properties, Mapping):
            return count, node, None
        if step.name not in properties:
            known = ", ".join(properties) or "none"
            message = (
                f"{written}{step.written()} is not declared in the params schema of "
                f"'{schema.glob}' (declared in {plain}: {known})"
            )
            return count, node, (step.at, message)
        node = properties[step.name]
        written += step.written()
        plain += f".{step.name}" if step.name.isidentifier() else f"[{json.dumps(step.name)}]"
    return len(path.steps), node, None


def _node_of(schema: Mapping[str, Any], names: list[str]) -> Mapping[str, Any]:
    for name in names:
        schema = schema["properties"][name]
    return schema
