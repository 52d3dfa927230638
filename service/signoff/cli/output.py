"""Plain-text rendering shared by CLI commands: tables, durations, compact JSON, diffs."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

MASK = "[REDACTED]"  # what the server puts in place of redacted values


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, with a dashed rule under the header."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [_row(header, widths), _row(["-" * w for w in widths], widths)]
    lines += [_row(row, widths) for row in rows]
    return "\n".join(lines)


def _row(cells: Sequence[str], widths: list[int]) -> str:
    return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()


def truncate(text: str, width: int) -> str:
    """`text` on one line, cut to `width` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def humanize(delta: dt.timedelta) -> str:
    """A duration as its two largest units: 45s, 3m, 2h 5m, 1d 4h (negative: -3m)."""
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "-" + humanize(-delta)
    if seconds < 60:
        return f"{seconds}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


def plain(value: Any) -> Any:
    """JSON-like data with integral floats as ints (Struct numbers are all doubles)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def message_dict(msg: Message) -> dict[str, Any]:
    """A message as JSON-like data with the proto's field names (as in the audit payloads)."""
    return plain(json_format.MessageToDict(msg, preserving_proto_field_name=True))


def compact(value: Any) -> str:
    """One-line rendering of params: `amount=750 currency=EUR`, nested values as JSON."""
    if not isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    # Struct maps come in no stable order; sort, and push masked values to the end where
    # truncation hides them first, since they tell a reviewer nothing.
    items = sorted(value.items(), key=lambda kv: (kv[1] == MASK, kv[0]))
    return " ".join(
        f"{k}={v if isinstance(v, str) and v and ' ' not in v else _json(v)}" for k, v in items
    )


def pretty(value: Any, indent: str = "  ") -> str:
    """Indented JSON, each line prefixed with `indent`."""
    text = json.dumps(plain(value), indent=2, ensure_ascii=False, sort_keys=True)
    return "\n".join(indent + line for line in text.splitlines())


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Changed leaves by dotted path: `~ amount: 750 -> 500`, `- key: v`, `+ key: v`."""
    before, after = _flatten(plain(old)), _flatten(plain(new))
    lines = []
    for path in sorted(before.keys() | after.keys()):
        if path not in after:
            lines.append(f"- {path}: {_json(before[path])}")
        elif path not in before:
            lines.append(f"+ {path}: {_json(after[path])}")
        elif before[path] != after[path]:
            lines.append(f"~ {path}: {_json(before[path])} -> {_json(after[path])}")
    return lines


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    # Lists stay whole leaves: an element-wise diff of reordered lists misleads more than it helps.
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else k))
        return out
    return {prefix or "(params)": value}
