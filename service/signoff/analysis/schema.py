"""Action schemas (policy/params.py) as solver constraints, and as filler for examples.

A request whose params break a schema of its action is refused before any rule runs, so
no such request can decide anything or be a counterexample. Each schema therefore adds,
for requests whose action name matches its glob, constraints on every params path the
rules read: its JSON kind (`integer` is a whole number), `minimum`/`maximum` (and the
`exclusive` forms), `enum`, `minLength`/`maxLength`, `required` keys present and, under
`additionalProperties: false`, undeclared keys absent. Array items are not modelled (a
list is only its size). Every constraint is implied by the schema: what is left out only
lets the solver propose a request the re-check then refuses, it never hides one.

A model only names the paths the rules read, so `complete` adds what the schema still
requires (a required key nobody reads, the items of a list) with the plainest valid value.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import z3

from signoff.analysis.symbols import BOOL, LIST, NULL, NUM, OBJ, STR, Json, Path, Symbols, glob_re
from signoff.policy.params import ParamSchema

PARAMS: Path = ("action", "params")
_KINDS = {"string": STR, "number": NUM, "integer": NUM, "boolean": BOOL}
_KINDS |= {"array": LIST, "object": OBJ, "null": NULL}


def constraints(symbols: Symbols, schemas: tuple[ParamSchema, ...]) -> list[z3.BoolRef]:
    """What every request the schemas admit satisfies, over the paths read so far."""
    out: list[z3.BoolRef] = []
    name = symbols.string(("action", "name"))
    for schema in schemas:
        body = _object(symbols, PARAMS, schema.schema, z3.BoolVal(True))
        if body:
            out.append(z3.Implies(z3.InRe(name, glob_re(schema.glob)), z3.And(*body)))
    return out


def _object(
    symbols: Symbols, path: Path, schema: Mapping[str, Any], present: z3.BoolRef
) -> list[z3.BoolRef]:
    """Constraints on the keys under `path` (an object whenever `present`)."""
    out: list[z3.BoolRef] = []
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    closed = schema.get("additionalProperties", True) is False
    for child, j in symbols.json.items():
        if len(child) != len(path) + 1 or child[: len(path)] != path:
            continue
        key = child[-1]
        if key in properties:
            out += _value(symbols, child, j, properties[key])
        elif closed:
            out.append(z3.Not(j.present))
        if key in required:
            out.append(z3.Implies(present, j.present))
    return out


def _value(symbols: Symbols, path: Path, j: Json, schema: Mapping[str, Any]) -> list[z3.BoolRef]:
    """Constraints on one present value: its kind, bounds, enum; an object's keys."""
    facts: list[z3.BoolRef] = []
    kind = schema.get("type")
    if isinstance(kind, str) and kind in _KINDS:
        facts.append(j.kind == _KINDS[kind])
    if kind == "integer":
        facts.append(z3.IsInt(j.num))
    number = z3.Implies(j.kind == NUM, z3.And(*_bounds(j.num, schema)))
    text = z3.Implies(j.kind == STR, z3.And(*_lengths(j.str, schema)))
    facts += [number, text]
    if "enum" in schema:
        members = [m for m in (_member(j, v) for v in schema["enum"]) if m is not None]
        if len(members) == len(schema["enum"]):  # a list or object member: not modelled
            facts.append(z3.Or(*members))
    facts += _object(symbols, path, schema, z3.And(j.present, j.kind == OBJ))
    return [z3.Implies(j.present, f) for f in facts]


def _bounds(num: z3.ArithRef, schema: Mapping[str, Any]) -> list[z3.BoolRef]:
    out: list[z3.BoolRef] = [z3.BoolVal(True)]
    for key, holds in (
        ("minimum", lambda b: num >= b),
        ("maximum", lambda b: num <= b),
        ("exclusiveMinimum", lambda b: num > b),
        ("exclusiveMaximum", lambda b: num < b),
    ):
        bound = schema.get(key)
        if isinstance(bound, int | float) and not isinstance(bound, bool):
            out.append(holds(z3.RealVal(Fraction(bound))))
    return out


def _lengths(text: z3.SeqRef, schema: Mapping[str, Any]) -> list[z3.BoolRef]:
    out: list[z3.BoolRef] = [z3.BoolVal(True)]
    if isinstance(schema.get("minLength"), int):
        out.append(z3.Length(text) >= schema["minLength"])
    if isinstance(schema.get("maxLength"), int):
        out.append(z3.Length(text) <= schema["maxLength"])
    return out


def _member(j: Json, value: Any) -> z3.BoolRef | None:
    if value is None:
        return j.kind == NULL
    if isinstance(value, bool):
        return z3.And(j.kind == BOOL, j.bool == value)
    if isinstance(value, int | float):
        return z3.And(j.kind == NUM, j.num == z3.RealVal(Fraction(value)))
    if isinstance(value, str):
        return z3.And(j.kind == STR, j.str == z3.StringVal(value))
    return None


# --- examples: what a model leaves out ------------------------------------------------


def complete(data: dict[str, Any], schemas: tuple[ParamSchema, ...]) -> dict[str, Any]:
    """`data` (a request) with what its action's schemas require and the model left out."""
    name = data.get("action", {}).get("name", "")
    for schema in schemas:
        if schema.matches(name):
            params = data.setdefault("action", {}).setdefault("params", {})
            _fill(params, schema.schema)
    return data


def _fill(value: Any, schema: Mapping[str, Any]) -> Any:
    """`value`, or where it is unset (None in a list the model sized) a plain valid one."""
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in value:
                value[key] = _plain(properties.get(key, {}))
        for key, sub in properties.items():
            if key in value:
                value[key] = _fill(value[key], sub)
        return value
    if isinstance(value, list) and "items" in schema:
        items = schema["items"]
        return [_plain(items) if v is None else _fill(v, items) for v in value]
    return value


def _plain(schema: Mapping[str, Any]) -> Any:
    """The plainest value a schema admits (the first enum member, the lowest bound...)."""
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return _fill({}, schema)
    if kind == "array":
        return []
    if kind == "boolean":
        return False
    if kind == "string":
        return "a" * int(schema.get("minLength", 0))
    if kind in ("number", "integer"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        n = 0.0 if low is None else float(int(low) + 1)
        n = n if high is None or n <= high else float(high)
        return n
    return None
