"""Action schemas: the params of an action glob as a JSON Schema subset.

A policy file declares them under `params:` (an action glob -> a schema; an MCP tool's
`inputSchema` pastes in as it is, YAML reads JSON). They work twice:

- At load, params_paths.rewrite finds every path under `action.params` in an expression of
  a policy whose actions the schema's glob covers (`.x`, `["x"]`, `.?x`, from the AST). A
  name the schema does not declare is an error (a typo); a declared path is replaced by an
  identifier padded to the same length, declared with the schema's type, and the text is
  type-checked again (cel.check_typed). Same length keeps the engine's columns the
  author's. The checked-then-run program is still the untyped one: the schema only adds
  checks, never changes what a request evaluates to.
- On each request, `check_request` validates the params with `jsonschema` (the subset
  below) before any rule runs: a request that breaks it is INVALID_ARGUMENT naming the
  field. That is what makes the load-time types true at run time.

Why the engine does not type `action.params` itself: it is a `google.protobuf.Struct`
field of the Action message, which the checker types `map(string, dyn)`; the binding can
only declare new types as protobuf descriptors, one set per environment.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from google.protobuf import json_format

from signoff import pb
from signoff.errors import InvalidArgument
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


# --- load time: the CEL type of a schema (paths: params_paths.py) -------------------


def cel_type(schema: Mapping[str, Any]) -> str:
    """The CEL type of a value the schema admits: double, string, bool, map, list:<t>, dyn."""
    kind = schema.get("type")
    if kind == "array":
        return "list:" + cel_type(schema.get("items", {}))
    if kind == "object":
        return "map"
    return _CEL_TYPES.get(str(kind), "dyn")
