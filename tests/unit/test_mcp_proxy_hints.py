"""The hints a tool call is decided with (signoff.mcp_proxy.hints)."""

from __future__ import annotations

import mcp_types as types
import pytest

from signoff.mcp_proxy.config import ToolHints
from signoff.mcp_proxy.hints import cautious, hints_of, title_of, tool_context

R, D = "readOnlyHint", "destructiveHint"


@pytest.mark.parametrize(
    ("listed", "now", "merged"),
    [
        ({R: True}, {R: True}, {R: True}),
        ({R: True}, {}, {}),  # read-only once, unknown once: unknown
        ({R: True}, {R: False}, {R: False}),
        ({D: False}, {D: True}, {D: True}),  # destructive once: destructive
        ({D: False}, {}, {}),
        ({D: False}, {D: False}, {D: False}),
        (
            {R: True, "openWorldHint": False},
            {R: True, "openWorldHint": True},
            {R: True, "openWorldHint": True},
        ),
    ],
)
def test_cautious_merges_toward_the_riskier_description(listed, now, merged):
    assert cautious(listed, now) == merged
    assert cautious(now, listed) == merged


def test_hints_title_and_pins():
    tool = types.Tool(
        name="t",
        input_schema={"type": "object"},
        annotations=types.ToolAnnotations(read_only_hint=True, title="From annotations"),
    )
    assert hints_of(tool) == {R: True}
    assert title_of(tool) == "From annotations"
    assert title_of(tool.model_copy(update={"title": "Own"})) == "Own"
    assert hints_of(types.Tool(name="u", input_schema={"type": "object"})) == {}
    pins = ToolHints.model_validate({"readOnlyHint": False, "title": "Pinned"})
    assert tool_context({R: True, D: False}, "x", pins) == {
        "annotations": {R: False, D: False},
        "title": "Pinned",
        "pinned": [R],
    }
    assert tool_context({R: True}, "x", None) == {
        "annotations": {R: True},
        "title": "x",
        "pinned": [],
    }
