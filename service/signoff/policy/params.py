"""Action schemas: the params of an action glob as a JSON Schema subset.

A policy file declares them under `params:` (an action glob -> a schema; an MCP tool's
`inputSchema` pastes in as it is, YAML reads JSON). They work twice:

- At load, `rewrite` finds every `action.params.<name>...` path in an expression of a
  policy whose actions the schema's glob covers. A name the schema does not declare is an
  error (a typo); a declared path is replaced by an identifier of exactly the same length
  (`action.params.amount` -> `action_params_amount`), declared with the schema's type, and
  the text is type-checked again (cel.check_typed). Same length keeps the engine's columns
  the author's. The checked-then-run program is still the untyped one: the schema only
  adds checks, never changes what a request evaluates to.
- On each request, `check_request` validates the params with `jsonschema` (the subset
  below) before any rule runs: a request that breaks it is INVALID_ARGUMENT naming the
  field. That is what makes the load-time types true at run time.

Why the engine does not type `action.params` itself: it is a `google.protobuf.Struct`
field of the Action message, which the checker types `map(string, dyn)`; the binding can
only declare new types as protobuf descriptors, one set per environment.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from google.protobuf import json_format

from signoff import pb
from signoff.errors import InvalidArgument
from signoff.policy.celtext import Token, prev_is_dot, scan
from signoff.policy.globs import Glob

SUPPORTED = ("type", "required", "enum", "minimum", "maximum", "minLength", "maxLength")
SUPPORTED += ("properties", "items", "additionalProperties")
# Documentation only: MCP tools' inputSchemas carry them; they change no check.
ANNOTATIONS = frozenset({"description", "title", "default", "examples", "$schema", "$comment"})
TYPES = ("object", "string", "number", "integer", "boolean", "array")
# Struct numbers are doubles: `integer` is a double whose value is whole.
_CEL_TYPES = {"string": "string", "number": "double", "integer": "double", "boolean": "bool"}
_ARTICLE = {"object": "an object", "array": "an array", "integer": "an integer"}

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ParamSchema:
    """The params schema of one action glob, from one policy file."""

    glob: str
    schema: Mapping[str, Any]
    file: str = ""
    _validator: Any = field(default=None, repr=False, compare=False)
    _glob: Glob | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, glob: str, schema: Mapping[str, Any], file: str = "") -> ParamSchema:
        """A schema that `problems` found nothing wrong with."""
        validator = jsonschema.Draft202012Validator(dict(schema))
        return cls(glob, schema, file, validator, Glob.of(glob))

    def matches(self, action_name: str) -> bool:
        """Whether this schema applies to requests for `action_name`."""
        return (self._glob or Glob.of(self.glob)).matches(action_name)

    def covers(self, policy_globs: tuple[str, ...]) -> bool:
        """Whether every action a policy with these globs applies to has this schema.

        A glob's own text is a name it covers when our glob matches it: our literal
        pieces never match a `*`, so each of its stars falls inside one of ours."""
        return all(self.matches(g) for g in (policy_globs or ("*",)))

    def violation(self, params: Mapping[str, Any]) -> tuple[str, str] | None:
        """(field, message) of the first way `params` break the schema, or None."""
        errors = list(self._validator.iter_errors(dict(params)))
        if not errors:
            return None
        err = min(errors, key=lambda e: (len(e.absolute_path), str(e.validator)))
        return _described(err)


def problems(schema: Any, loc: Loc = ()) -> list[tuple[Loc, str]]:
    """(location inside the schema, message) of each thing wrong with a params schema."""
    found = list(_walk(schema, loc, top=True))
    if found:
        return found
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return [((*loc, *exc.absolute_path), exc.message)]
    return []


def _walk(schema: Any, loc: Loc, top: bool = False) -> Iterator[tuple[Loc, str]]:
    if not isinstance(schema, dict):
        yield loc, "a schema is a mapping (type, properties, required, ...)"
        return
    for key in schema:
        if key not in SUPPORTED and key not in ANNOTATIONS:
            yield (*loc, key), (f"unsupported keyword '{key}' (supported: {', '.join(SUPPORTED)})")
    kind = schema.get("type")
    if "type" in schema and kind not in TYPES:
        yield (*loc, "type"), f"unknown type {kind!r} (use one of: {', '.join(TYPES)})"
    if top and kind != "object":
        yield loc, "the params schema is `type: object`"
    properties = schema.get("properties", {})
    if isinstance(properties, dict):
        for name, sub in properties.items():
            yield from _walk(sub, (*loc, "properties", name))
    if "items" in schema:
        yield from _walk(schema["items"], (*loc, "items"))
    extra = schema.get("additionalProperties", False)
    if not isinstance(extra, bool):
        yield (*loc, "additionalProperties"), "only true or false is supported here"


def _described(err: jsonschema.ValidationError) -> tuple[str, str]:
    path = "action.params" + "".join(
        f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path
    )
    kind, value, instance = err.validator, err.validator_value, err.instance
    if kind == "type":
        return path, f"must be {_ARTICLE.get(str(value), f'a {value}')}"
    if kind == "required" and isinstance(instance, dict):
        missing = next((r for r in value if r not in instance), "")
        return f"{path}.{missing}", "is required"
    if kind == "additionalProperties" and isinstance(instance, dict):
        declared = err.schema.get("properties", {})
        extra = next((k for k in instance if k not in declared), "")
        return f"{path}.{extra}", f"is not a declared param (declared: {', '.join(declared)})"
    if kind == "enum":
        return path, "must be one of " + ", ".join(json_repr(v) for v in value)
    words = {"minimum": "at least", "maximum": "at most"}
    if kind in words:
        return path, f"must be {words[kind]} {value}"
    if kind in ("minLength", "maxLength"):
        return (
            path,
            f"must have {'at least' if kind == 'minLength' else 'at most'} {value} characters",
        )
    return path, err.message


def json_repr(value: Any) -> str:
    """A value as JSON shows it (enum members in messages)."""
    return '"' + value + '"' if isinstance(value, str) else str(value).lower()


def check_request(
    schemas: tuple[ParamSchema, ...], req: pb.common.ActionRequest, prefix: str = ""
) -> None:
    """Raise InvalidArgument naming the field when the params break a schema of the action."""
    applicable = [s for s in schemas if s.matches(req.action.name)]
    if not applicable:
        return
    params = json_format.MessageToDict(req.action.params)
    for schema in applicable:
        bad = schema.violation(params)
        if bad is not None:
            field_name, message = bad
            raise InvalidArgument(f"{prefix}{field_name}", message)


# --- load time: params paths in CEL text ----------------------------------------------


@dataclass(frozen=True)
class Rewritten:
    """An expression with its declared params paths as typed identifiers."""

    text: str
    declared: dict[str, str]  # identifier -> type (see cel.check_typed)
    typos: list[tuple[int, str]]  # (offset, message)


def rewrite(expr: str, schema: ParamSchema) -> Rewritten:
    """See the module doc: typos found, declared paths replaced by typed identifiers."""
    tokens = scan(expr)
    parts: list[str] = []
    declared: dict[str, str] = {}
    typos: list[tuple[int, str]] = []
    pos = i = 0
    while i < len(tokens):
        if not _params_at(tokens, i):
            i += 1
            continue
        path, last, node, typo = _follow(tokens, i, schema)
        if typo is not None:
            typos.append(typo)
        if _in_has(tokens, i, last) and len(path) > 2:
            path, last, node = path[:-1], last - 2, _node(schema.schema, path[2:-1])
        span = tokens[i : last + 1]
        contiguous = all(a.end == b.start for a, b in itertools.pairwise(span))
        name, kind = "_".join(path), cel_type(node)
        # `a_b.c` and `a.b_c` would share a name: the second keeps its dyn select.
        if len(path) > 2 and contiguous and declared.setdefault(name, kind) == kind:
            parts += [expr[pos : tokens[i].start], name]
            pos = tokens[last].end
        i = last + 1
    return Rewritten("".join(parts) + expr[pos:], declared, typos)


def _params_at(tokens: list[Token], i: int) -> bool:
    return (
        tokens[i].text == "action"
        and not prev_is_dot(tokens, i)
        and i + 2 < len(tokens)
        and tokens[i + 1].text == "."
        and tokens[i + 2].text == "params"
    )


def _follow(
    tokens: list[Token], i: int, schema: ParamSchema
) -> tuple[list[str], int, Mapping[str, Any], tuple[int, str] | None]:
    """The longest declared path from tokens[i], its last token, its schema, and a typo."""
    path, j, node = ["action", "params"], i + 2, schema.schema
    while "properties" in node and j + 2 < len(tokens) and tokens[j + 1].text == ".":
        name_tok = tokens[j + 2]
        if name_tok.kind != "ident" or (j + 3 < len(tokens) and tokens[j + 3].text == "("):
            break  # `.?name` (optional select) or a member call: not a params name
        properties = node["properties"]
        if name_tok.text not in properties:
            where = ".".join(path)
            known = ", ".join(properties) or "none"
            message = (
                f"{where}.{name_tok.text} is not declared in the params schema of "
                f"'{schema.glob}' (declared in {where}: {known})"
            )
            return path, j, node, (name_tok.start, message)
        node, j = properties[name_tok.text], j + 2
        path.append(name_tok.text)
    return path, j, node, None


def _in_has(tokens: list[Token], i: int, last: int) -> bool:
    # has() needs a field selection as its argument: the last name stays one.
    return (
        i >= 2
        and tokens[i - 1].text == "("
        and tokens[i - 2].text == "has"
        and last + 1 < len(tokens)
        and tokens[last + 1].text == ")"
    )


def _node(schema: Mapping[str, Any], names: list[str]) -> Mapping[str, Any]:
    for name in names:
        schema = schema["properties"][name]
    return schema


def cel_type(schema: Mapping[str, Any]) -> str:
    """The CEL type of a value the schema admits: double, string, bool, map, list:<t>, dyn."""
    kind = schema.get("type")
    if kind == "array":
        return "list:" + cel_type(schema.get("items", {}))
    if kind == "object":
        return "map"
    return _CEL_TYPES.get(str(kind), "dyn")
