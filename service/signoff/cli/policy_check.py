"""`signoff policy check DIR`: load and type-check a policy directory, print a summary."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from signoff.policy import Bundle, BundleError, load_bundle


def run_check(directory: Path, as_json: bool) -> int:
    """Check `directory`; print errors to stderr and return 1, or a summary and return 0."""
    try:
        bundle = load_bundle(directory)
    except BundleError as exc:
        for error in exc.errors:
            print(_display(directory, str(error)), file=sys.stderr)
        print(f"{len(exc.errors)} error(s); the bundle would be rejected", file=sys.stderr)
        return 1
    summary = summarize(bundle)
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print(_table(summary))
    for warning in bundle.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def summarize(bundle: Bundle) -> dict[str, Any]:
    """The bundle as JSON-like data: version, files with their rules, actions, warnings."""
    return {
        "directory": str(bundle.directory),
        "version": bundle.version,
        "files": [
            {
                "file": p.file,
                "policy": p.name,
                "actions": list(p.actions) or ["*"],
                "rules": len(p.rules),
                "shadow_rules": sum(r.shadow for r in p.rules),
                "variables": len(p.variables),
            }
            for p in bundle.policies
        ],
        "rules": bundle.rule_count,
        "actions": list(bundle.actions),
        "warnings": list(bundle.warnings),
    }


def _display(directory: Path, error: str) -> str:
    # Errors carry paths relative to the directory; prefix it so editors can jump there.
    return error if error.startswith(str(directory)) else f"{str(directory).rstrip('/')}/{error}"


def _table(summary: dict[str, Any]) -> str:
    header = ("file", "policy", "rules", "shadow", "actions")
    rows = [
        (f["file"], f["policy"], str(f["rules"]), str(f["shadow_rules"]), ", ".join(f["actions"]))
        for f in summary["files"]
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [_row(header, widths), _row(tuple("-" * w for w in widths), widths)]
    lines += [_row(row, widths) for row in rows]
    lines.append("")
    lines.append(f"{len(rows)} file(s), {summary['rules']} rule(s)")
    lines.append(f"actions: {', '.join(summary['actions']) or '(none)'}")
    lines.append(f"version: {summary['version']}")
    return "\n".join(lines)


def _row(cells: tuple[str, ...], widths: list[int]) -> str:
    return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()
