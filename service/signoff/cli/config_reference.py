"""The configuration reference: every setting of the Settings model, walked recursively, with
its YAML key, environment variable, `serve` flag, type, default and description."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import types
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr, TypeAdapter
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from signoff.cli.serve_flags import serve_parser
from signoff.settings.model import Settings

ENV_PREFIX = "SIGNOFF_"


@dataclass(frozen=True)
class Setting:
    """One row of the reference."""

    key: str  # dotted YAML key; `<group>` and `[]` mark map keys and list items
    env: str  # "" when only settable through its parent (an item of a list or map)
    flag: str  # the `signoff serve` flag, "" when there is none
    type: str
    default: str
    description: str
    group: str  # the heading it is listed under ("" for top level)


def settings_rows(flags: dict[str, str] | None = None) -> list[Setting]:
    """Every setting of `Settings`, nested groups included, in model order."""
    rows: list[Setting] = []
    _walk(Settings, "", True, flags if flags is not None else serve_flags(), rows)
    return rows


def serve_flags() -> dict[str, str]:
    """Dotted setting key -> the `signoff serve` flag that sets it, read from the parser."""
    serve = serve_parser()
    found = {}
    for action in serve._actions:
        if action.option_strings and action.dest not in ("help", "config"):
            found[action.dest] = max(action.option_strings, key=len)
    return found


def subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The parser of subcommand `name`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            return action.choices[name]  # type: ignore[no-any-return]
    raise LookupError(f"no `{name}` subcommand")


def _walk(
    model: type[BaseModel], prefix: str, env_ok: bool, flags: dict[str, str], out: list[Setting]
) -> None:
    nested: list[tuple[str, type[BaseModel], bool]] = []
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        env = ENV_PREFIX + key.upper().replace(".", "__") if env_ok else ""
        annotation = info.annotation
        sub, shape = _submodel(annotation)
        if sub is not None and shape == "":
            # A group (possibly optional): its fields get rows of their own.
            typ, default = (
                ("group, optional", "unset") if _is_optional(annotation) else ("group", "")
            )
            out.append(_row(key, env, flags, typ, default, info, _group(prefix)))
            nested.append((f"{key}.", sub, env_ok))
            continue
        out.append(_row(key, env, flags, type_name(annotation), _default(info), info, prefix))
        if sub is not None:
            # Items of a list or map are set as part of their parent (JSON in the environment).
            nested.append((f"{key}{shape}.", sub, False))
    for sub_prefix, sub, sub_env in nested:
        _walk(sub, sub_prefix, sub_env, flags, out)


def _group(prefix: str) -> str:
    return prefix.rstrip(".")


def _row(
    key: str, env: str, flags: dict[str, str], typ: str, default: str, info: FieldInfo, prefix: str
) -> Setting:
    limits = _limits(info)
    return Setting(
        key=key,
        env=env,
        flag=flags.get(key.replace(".", "_"), "") if "<" not in key else "",
        type=f"{typ} ({limits})" if limits else typ,
        default=default,
        description=" ".join((info.description or "").split()),
        group=_group(prefix),
    )


def _submodel(annotation: Any) -> tuple[type[BaseModel] | None, str]:
    """The model inside `annotation` and how it nests: "" itself, "[]" list, ".<key>[]" map."""
    inner = [a for a in get_args(annotation)] if _is_union(annotation) else [annotation]
    for candidate in inner:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate, ""
        origin, args = get_origin(candidate), get_args(candidate)
        if origin is list and args:
            sub, shape = _submodel(args[0])
            if sub is not None:
                return sub, "[]" + shape
        if origin is dict and len(args) == 2:
            sub, shape = _submodel(args[1])
            if sub is not None:
                return sub, ".<key>" + shape
    return None, ""


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _is_optional(annotation: Any) -> bool:
    return _is_union(annotation) and type(None) in get_args(annotation)


def type_name(annotation: Any) -> str:
    """A reader's name for a type: `string`, `list of string`, `one of text, json`..."""
    if _is_union(annotation):
        args = [a for a in get_args(annotation) if a is not type(None)]
        names = " or ".join(type_name(a) for a in args)
        return f"{names}, optional" if _is_optional(annotation) else names
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is dict:
        return f"map of {type_name(args[0])} to {type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    simple = {
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        Path: "path",
        dt.timedelta: "duration (ISO 8601 like PT30S, or seconds)",
        SecretStr: "secret string",
    }
    if annotation in simple:
        return simple[annotation]
    return getattr(annotation, "__name__", str(annotation)).lower().replace("anyhttpurl", "URL")


def _limits(info: FieldInfo) -> str:
    marks = {
        annotated_types.Gt: ">",
        annotated_types.Ge: ">=",
        annotated_types.Lt: "<",
        annotated_types.Le: "<=",
        annotated_types.MinLen: "length >=",
    }
    found = []
    for meta in info.metadata:
        for kind, mark in marks.items():
            if isinstance(meta, kind):
                bound = next(iter(_bounds(meta).values()))
                zero = isinstance(bound, dt.timedelta) and not bound
                found.append(f"{mark} {'0' if zero else _plain(bound)}")
    return ", ".join(found)


def _bounds(meta: Any) -> dict[str, Any]:
    return {name: getattr(meta, name) for name in meta.__dataclass_fields__}


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.default
    if value is PydanticUndefined and info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    return _plain(value)


def _plain(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, dt.timedelta):
        return f"{TypeAdapter(dt.timedelta).dump_python(value, mode='json')}"
    dumped = TypeAdapter(Any).dump_python(value, mode="json")
    if isinstance(dumped, str):
        return json.dumps(dumped) if dumped == "" else dumped
    return json.dumps(dumped)


def render_markdown(rows: list[Setting]) -> str:
    """The committed text of docs/configuration.md."""
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by `signoff config reference` from service/signoff/settings/model.py; "
        "do not edit. `make lint` fails when it is stale. -->",
        "",
        "Settings are read from `signoff serve` flags, then the environment, then a YAML file "
        "(`--config FILE`), then the defaults below. Nested keys are YAML mappings "
        "(`auth: {tokens_file: ...}`) and take `__` in the environment "
        "(`SIGNOFF_AUTH__TOKENS_FILE`). A list or map is given as JSON in the environment "
        '(`SIGNOFF_NOTIFY__WEBHOOKS=\'{"finance": [{"url": "https://..."}]}\'`); its '
        "items (`<key>` a map key, `[]` a list item) have no variable of their own. "
        "An unknown key or a bad value stops start-up with one line naming the key and its "
        "variable. `signoff doctor` checks a configuration without starting the server; "
        "`signoff config show` prints the effective settings with secrets masked.",
    ]
    groups: dict[str, list[Setting]] = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)
    for group, members in groups.items():
        out += ["", f"## `{group}`" if group else "## Top level", ""]
        out.append("| key | environment | flag | type | default | meaning |")
        out.append("|---|---|---|---|---|---|")
        for r in members:
            cells = [
                f"`{r.key}`",
                f"`{r.env}`" if r.env else "(in parent)",
                f"`{r.flag}`" if r.flag else "",
                r.type,
                f"`{r.default}`" if r.default not in ("required", "unset", "") else r.default,
                r.description,
            ]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out) + "\n"


def rows_json(rows: list[Setting]) -> str:
    """The reference as a JSON list of objects."""
    return json.dumps([asdict(r) for r in rows], indent=2) + "\n"
