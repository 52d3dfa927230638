"""`signoff config reference|show`: the generated configuration reference and the settings
a `signoff serve` with the same flags, environment and file would run with."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

from signoff.cli.config_reference import (
    render_markdown,
    rows_json,
    serve_flags,
    settings_rows,
)

REFERENCE = Path("docs/configuration.md")
MASK = "********"


def add_parser(sub: Any) -> None:
    """Register `signoff config` and its subcommands."""
    config = sub.add_parser("config", help="the configuration reference and effective settings")
    csub = config.add_subparsers(dest="config_command", required=True)
    ref = csub.add_parser("reference", help="write the configuration reference (Markdown)")
    ref.add_argument(
        "--out", type=Path, default=REFERENCE, help=f"file to write (default {REFERENCE})"
    )
    ref.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the file is stale"
    )
    ref.add_argument("--json", action="store_true", help="print the reference as JSON instead")
    show = csub.add_parser("show", help="print the effective settings, secrets masked")
    add_serve_flags(show, sub.choices["serve"])
    show.add_argument("--json", action="store_true", help="print JSON instead of YAML-like text")


def add_serve_flags(parser: argparse.ArgumentParser, serve: argparse.ArgumentParser) -> None:
    """Give `parser` every flag of `serve` (read from its parser, so none is missed)."""
    for action in serve._actions:
        if action.option_strings and action.dest != "help":
            parser._add_action(action)


def flags_from(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the serve flags in `args` set, nested as the model is."""
    keys = {row.key.replace(".", "_"): row.key for row in settings_rows({})}
    flags: dict[str, Any] = {}
    for dest in serve_flags():
        value = getattr(args, dest, None)
        if value is None:
            continue
        *path, last = keys.get(dest, dest).split(".")
        node = flags
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return flags


def run(args: argparse.Namespace) -> int:
    """Entry point of `signoff config`."""
    if args.config_command == "reference":
        return _reference(args.out, args.check, args.json)
    return _show(args)


def _reference(out: Path, check: bool, as_json: bool) -> int:
    rows = settings_rows()
    if as_json:
        sys.stdout.write(rows_json(rows))
        return 0
    text = render_markdown(rows)
    current = out.read_text(encoding="utf-8") if out.is_file() else ""
    if current == text:
        return 0
    if check:
        diff = difflib.unified_diff(
            current.splitlines(keepends=True), text.splitlines(keepends=True), str(out), n=0
        )
        sys.stderr.writelines(list(diff)[:30])
        print(f"{out} is stale: run `signoff config reference`", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from signoff.settings.model import ConfigError, load_settings

    try:
        settings = load_settings(flags_from(args), args.config)
    except ConfigError as exc:
        print(f"signoff: config error: {exc}", file=sys.stderr)
        return 2
    data = masked(settings.model_dump(mode="json"), settings.model_dump())
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(_yaml_like(data).rstrip())
    return 0


def masked(data: Any, raw: Any) -> Any:
    """`data` with secrets (SecretStr values, passwords in URLs) replaced by a mask."""
    from pydantic import SecretStr

    if isinstance(raw, SecretStr):
        return MASK
    if isinstance(data, dict):
        return {k: _url(v) if k == "url" else masked(v, raw[k]) for k, v in data.items()}
    if isinstance(data, list):
        return [masked(v, r) for v, r in zip(data, raw, strict=True)]
    if isinstance(data, str) and "://" in data and "@" in data:
        scheme, _, rest = data.partition("://")
        creds, _, host = rest.rpartition("@")
        if ":" in creds:
            return f"{scheme}://{creds.split(':', 1)[0]}:{MASK}@{host}"
    return data


def _url(value: Any) -> Any:
    # Webhook URLs (Slack's above all) carry their secret in the path.
    if not isinstance(value, str) or "://" not in value:
        return value
    scheme, _, rest = value.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host}{slash}{MASK}" if path else value


def _yaml_like(data: Any, indent: str = "") -> str:
    lines = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            lines.append(f"{indent}{key}:")
            lines.append(_yaml_like(value, indent + "  "))
        else:
            lines.append(f"{indent}{key}: {json.dumps(value)}")
    return "\n".join(lines)
