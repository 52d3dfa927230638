"""A tool's annotations as the policy sees them: `context.mcp.annotations`, `.title`, `.pinned`.

The upstream's annotations are untrusted hints (the MCP spec says so: a server describes
its own tools). The proxy config may pin them per tool (`upstreams[].annotations`), hint
by hint; a pinned hint replaces the upstream's and is named in `context.mcp.pinned`, so a
policy can trust only those. Only hints that are set reach the policy: an absent hint is
unknown, not the spec's default.

An upstream whose hints changed between the list the client saw and the call: the call
is decided with the cautious merge of both (`cautious`), so that no switch in either
direction makes a tool look safer than one of its two descriptions says it is.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types

from signoff.mcp_proxy.config import ToolHints

# Hints that make a tool look safer when true, and those that make it look riskier.
SAFE_IF_TRUE = ("readOnlyHint", "idempotentHint")
RISKY_IF_TRUE = ("destructiveHint", "openWorldHint")


def hints_of(tool: types.Tool) -> dict[str, bool]:
    """The hints the upstream set on `tool`, by their MCP names."""
    if tool.annotations is None:
        return {}
    given = tool.annotations.model_dump(by_alias=True, exclude={"title"})
    return {k: v for k, v in given.items() if isinstance(v, bool)}


def title_of(tool: types.Tool) -> str:
    """The display title (MCP's precedence: title, annotations.title), or ""."""
    annotations = tool.annotations.title if tool.annotations else None
    return tool.title or annotations or ""


def cautious(listed: dict[str, bool], now: dict[str, bool]) -> dict[str, bool]:
    """The two sets of hints merged toward caution: a safe-if-true hint is true only if
    both say so, a risky-if-true one true if either does; false needs the same agreement
    the other way round; otherwise the hint is absent (unknown)."""
    merged: dict[str, bool] = {}
    for name in SAFE_IF_TRUE:
        pair = (listed.get(name), now.get(name))
        if pair == (True, True):
            merged[name] = True
        elif False in pair:
            merged[name] = False
    for name in RISKY_IF_TRUE:
        pair = (listed.get(name), now.get(name))
        if True in pair:
            merged[name] = True
        elif pair == (False, False):
            merged[name] = False
    return merged


def tool_context(hints: dict[str, bool], title: str, pins: ToolHints | None) -> dict[str, Any]:
    """`annotations`, `title` and `pinned` of context.mcp, with the config's pins applied."""
    pinned = pins.pinned() if pins is not None else {}
    return {
        "annotations": {**hints, **pinned},
        "title": (pins.title if pins is not None and pins.title is not None else title),
        "pinned": sorted(pinned),
    }
