"""Action schemas from the upstreams' tools: a policy file with a `params:` block per tool.

`signoff mcp-proxy --config FILE --schemas` lists each upstream's tools and writes, for the
action `mcp.<upstream>.<tool>`, the tool's `inputSchema` in the subset of JSON Schema that
action schemas support (policy/params.py). The conversion never widens in silence:

- exact rewrites: `const: x` is `enum: [x]`; `exclusiveMinimum`/`exclusiveMaximum` of an
  integer are `minimum`/`maximum` one step in; a local `$ref` (`#/$defs/...`,
  `#/definitions/...`) is inlined, its siblings applied on top;
- anything else outside the subset (`pattern`, `anyOf`, `format`, `minItems`, a `type`
  list such as `[string, null]`, an `additionalProperties` schema, a recursive `$ref`, ...)
  is dropped, and each drop is a Note naming the action, where in the schema, and what no
  longer gets checked, which the command prints on stderr;
- a tool whose schema still has problems (an upstream's broken schema: `minimum: low`, a
  top level that is not an object, a name that is no action name) gets no entry, and a Note
  saying why.

The upstream chooses every byte of these schemas: the conversion is bounded in depth and
in the nodes it writes (a `$ref` graph can double at each level), and never evaluates them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from signoff.core.validate import ACTION_NAME_RE
from signoff.policy.params import ANNOTATIONS, TYPES, problems

MAX_DEPTH = 32  # keys on the way down (properties.a.items: 3); deeper parts are dropped (a Note)
MAX_NODES = 5000  # schema nodes written per tool; past it the tool gets no entry (a Note)
_KEPT = frozenset({"required", "enum", "minimum", "maximum", "minLength", "maxLength"})
_REF_PREFIXES = ("#/$defs/", "#/definitions/")
_DEFINITIONS = ("$defs", "definitions")  # consumed by $ref, no check of their own
_BOUNDS = {"minimum": max, "maximum": min}  # two bounds of one value: the tighter holds


@dataclass(frozen=True)
class Note:
    """Something the conversion of one tool's schema could not carry over, and what it means."""

    action: str
    where: str  # the location inside the tool's inputSchema ("" for the whole tool)
    message: str

    def __str__(self) -> str:
        return (
            f"{self.action}: {self.where}: {self.message}"
            if self.where
            else (f"{self.action}: {self.message}")
        )


@dataclass(frozen=True)
class Tool:
    """One upstream tool as the proxy lists it."""

    upstream: str
    name: str
    input_schema: Any

    @property
    def action(self) -> str:
        """The Signoff action of its calls (gate.Call.action)."""
        return f"mcp.{self.upstream}.{self.name}"


class _TooBig(Exception):
    pass


class _Converter:
    def __init__(self, action: str, root: Any) -> None:
        self.action = action
        self.root = root
        self.notes: list[Note] = []
        self.nodes = 0

    def note(self, loc: tuple[str, ...], message: str) -> None:
        self.notes.append(Note(self.action, ".".join(loc), message))

    def convert(
        self, schema: Any, loc: tuple[str, ...], refs: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """`schema` in the supported subset; every drop noted."""
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooBig
        if schema is True or schema == {}:
            return {}
        if not isinstance(schema, Mapping):
            self.note(loc, f"the schema {schema!r} is not supported: the value is not checked")
            return {}
        if len(loc) > MAX_DEPTH:
            self.note(loc, f"nested deeper than {MAX_DEPTH} levels: the value is not checked")
            return {}
        out: dict[str, Any] = {}
        ref = schema.get("$ref")
        if ref is not None:
            out = self._ref(ref, loc, refs)
        for key, value in schema.items():
            if key == "$ref" or key in _DEFINITIONS:
                continue
            self._keyword(out, schema, key, value, loc, refs)
        # `type` first: what a reader looks for.
        return {k: out[k] for k in sorted(out, key=lambda k: k != "type")}

    def _keyword(
        self,
        out: dict[str, Any],
        schema: Mapping[str, Any],
        key: str,
        value: Any,
        loc: tuple[str, ...],
        refs: tuple[str, ...],
    ) -> None:
        here = (*loc, key)
        if key in _BOUNDS and _is_number(value) and _is_number(out.get(key)):
            out[key] = _BOUNDS[key](out[key], value)  # with a converted exclusive bound
        elif key in ANNOTATIONS or key in _KEPT:
            out[key] = value
        elif key == "type":
            if isinstance(value, str) and value in TYPES:
                out["type"] = value
            else:
                self.note(here, f"type {_json(value)} is not supported: the type is not checked")
        elif key == "const":
            out["enum"] = [value]
        elif (
            key in ("exclusiveMinimum", "exclusiveMaximum")
            and _is_int(value)
            and (schema.get("type") == "integer")
        ):
            bound, step = ("minimum", 1) if key == "exclusiveMinimum" else ("maximum", -1)
            have = out.get(bound)
            out[bound] = (
                value + step if not _is_number(have) else _BOUNDS[bound](have, value + step)
            )
        elif key == "properties" and isinstance(value, Mapping):
            out["properties"] = {
                str(name): self.convert(sub, (*here, str(name)), refs)
                for name, sub in value.items()
            }
        elif key == "items" and isinstance(value, Mapping | bool):
            out["items"] = self.convert(value, here, refs)
        elif key == "additionalProperties" and isinstance(value, bool):
            out[key] = value
        elif key == "additionalProperties" and value == {}:
            out[key] = True
        elif key == "additionalProperties":
            self.note(here, "only true or false is supported: other params are not checked")
            out[key] = True
        else:
            self.note(here, f"unsupported keyword '{key}' dropped: it is not checked")

    def _ref(self, ref: Any, loc: tuple[str, ...], refs: tuple[str, ...]) -> dict[str, Any]:
        here = (*loc, "$ref")
        target = self._definition(ref)
        if target is None:
            self.note(here, f"{_json(ref)} is not a local definition: it is not checked")
            return {}
        if ref in refs:
            self.note(here, f"{_json(ref)} is recursive: the value is not checked below here")
            return {}
        return self.convert(target, loc, (*refs, ref))

    def _definition(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not isinstance(self.root, Mapping):
            return None
        for prefix in _REF_PREFIXES:
            if ref.startswith(prefix):
                defs = self.root.get(prefix[2:-1])
                name = ref.removeprefix(prefix).replace("~1", "/").replace("~0", "~")
                if isinstance(defs, Mapping) and name in defs:
                    return defs[name]
        return None


def convert(tool: Tool) -> tuple[dict[str, Any] | None, list[Note]]:
    """The action schema of one tool (None if it gets no entry) and the Notes of its drops."""
    action = tool.action
    if not ACTION_NAME_RE.match(action):
        message = "the tool's name is not an action name (letters, digits, '_', '-', '.')"
        return None, [Note(action, "", f"{message}: no schema written")]
    converter = _Converter(action, tool.input_schema)
    try:
        schema = converter.convert(tool.input_schema, ())
    except _TooBig:
        message = f"the inputSchema has more than {MAX_NODES} nodes: no schema written"
        return None, [Note(action, "", message)]
    if "type" not in schema and "properties" in schema:
        schema = {"type": "object", **schema}  # MCP says so; some servers leave it out
    found = problems(schema)
    if found:
        notes = [Note(action, ".".join(map(str, loc)), msg) for loc, msg in found]
        return None, [*converter.notes, *notes, Note(action, "", "no schema written")]
    return schema, converter.notes


def policy_file(upstreams: Iterable[str], tools: Iterable[Tool]) -> tuple[str, list[Note]]:
    """The YAML of a policy file declaring the params of `tools`, and the Notes."""
    params: dict[str, Any] = {}
    notes: list[Note] = []
    for tool in tools:
        schema, found = convert(tool)
        notes += found
        if schema is not None:
            params[tool.action] = schema
    names = sorted(set(upstreams))
    doc = {
        "name": ("mcp-schemas-" + "-".join(n.lower() for n in names))[:100].rstrip("-"),
        "description": (
            "The params of the tools of "
            + ", ".join(f"'{n}'" for n in names)
            + ", from their inputSchema (written by `signoff mcp-proxy --schemas`). "
            "Calls whose arguments break them are refused before any rule runs."
        ),
        "actions": [f"mcp.{n}.*" for n in names],
        "params": params,
        "rules": [],
    }
    header = "# Written by `signoff mcp-proxy --schemas`; edit freely, or write it again.\n"
    body = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    return header + body, notes


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json(value: Any) -> str:
    return json.dumps(value, default=str)
