"""YAML node positions: map values and pydantic error locations back into the file."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_document(path: Path, what: str, error: type[Exception]) -> tuple[Node | None, Any]:
    """The YAML document in `path` and its node tree (whose marks place later errors);
    `error` saying "<path>: cannot read <what>" or "<path>:line:col: invalid YAML"."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read {what}: {exc}") from None
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        return root, loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{mark.line + 1}:{mark.column + 1}" if mark else "1:1"
        raise error(f"{path}:{where}: invalid YAML: {exc.problem}") from None
    finally:
        loader.dispose()


def at(path: Path, node: Node) -> str:
    """`path:line:col` of a node, to start an error message with."""
    return f"{path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def duplicate_keys(node: Node, error: Callable[[Node, str], None]) -> None:
    """`error` for each key a mapping repeats: PyYAML silently keeps the last of two equal
    keys, and a second upstream, token or role must not hide behind the first."""
    if isinstance(node, MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value in seen:
                error(key, f"duplicate key '{key.value}'")
            seen.add(getattr(key, "value", ""))
            duplicate_keys(value, error)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            duplicate_keys(item, error)


def field_message(err: Mapping[str, Any]) -> str:
    """A pydantic error of a strict model as the loaders say it: the unknown or missing
    key by name, else pydantic's message without its "Value error, "."""
    loc = err["loc"]
    if err["type"] == "extra_forbidden":
        return f"unknown key '{loc[-1]}'"
    if err["type"] == "missing":
        return f"missing required key '{loc[-1]}'"
    return str(err["msg"]).removeprefix("Value error, ")


def scalar_index(text: str, node: Node, offset: int) -> int:
    """File index of character `offset` of a scalar's value; the scalar start if unsure."""
    start = node.start_mark.index
    if not isinstance(node, ScalarNode):
        return start
    value, style = node.value, node.style
    j = start
    if style in ("|", ">"):
        j = text.find("\n", start) + 1 or start  # content starts on the line after `|`
    elif style in ("'", '"'):
        j = start + 1
    i = 0
    while i < min(offset, len(value)):
        if value[i].isspace():
            # One whitespace run in the value is one run in the source (folding, indents).
            run_i, run_j = i, j
            while i < len(value) and value[i].isspace():
                i += 1
            while j < len(text) and text[j].isspace():
                j += 1
            if offset < i:
                return min(run_j + offset - run_i, j)
            continue
        while j < len(text) and text[j].isspace():
            j += 1  # block indentation before the first character of a line
        if j < len(text) and text[j] == value[i]:
            step = 2 if style == "'" and text.startswith("''", j) else 1
        elif style == '"' and text.startswith("\\" + value[i], j) and value[i] in '"\\/':
            step = 2
        else:
            return start  # an escape or fold we cannot follow: point at the scalar
        i, j = i + 1, j + step
    while j < len(text) and text[j].isspace() and i < len(value):
        j += 1
    return j


def child(node: Node | None, key: str) -> Node | None:
    """The value node of `key` in a mapping node, if present."""
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == key:
                return v
    return None


def node_at(root: Node, loc: tuple[Any, ...], key: bool = False) -> Node:
    """The deepest node along a pydantic error location (the key node if `key`)."""
    node = root
    for depth, part in enumerate(loc):
        if isinstance(node, MappingNode) and isinstance(part, str):
            match = next((kv for kv in node.value if getattr(kv[0], "value", None) == part), None)
            if match is None:
                return node
            node = match[0] if key and depth == len(loc) - 1 else match[1]
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        elif not isinstance(part, str):
            return node
    return node


def error_label(loc: tuple[Any, ...], data: Any) -> tuple[str, tuple[Any, ...]]:
    """The rule (or variables.<name>) an error belongs to, and the loc inside it."""
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rules = data.get("rules") if isinstance(data, dict) else None
        rule = rules[loc[1]] if isinstance(rules, list) and loc[1] < len(rules) else None
        name = rule.get("name") if isinstance(rule, dict) else None
        return (name if isinstance(name, str) else f"rules[{loc[1]}]"), loc[2:]
    if len(loc) >= 2 and loc[0] == "variables":
        return f"variables.{loc[1]}", loc[2:]
    return "", loc


def dotted(loc: tuple[Any, ...]) -> str:
    """A pydantic location as `a.b[0].c`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
