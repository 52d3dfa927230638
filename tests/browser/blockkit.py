"""A Slack message's Block Kit JSON as a page Chromium can show: for the reviewers' guide's
screenshot and for browser tests that read the message as a reviewer would see it.

Slack is not reachable here, and its Block Kit Builder is a web app; this draws the blocks
Signoff sends (header, section with text and fields, context, divider, actions with
buttons) in Slack's layout, with the mrkdwn Signoff uses (*bold*, _italic_, `code`,
<url|label>). Every text is escaped first: params are the agent's words.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

_LINK = re.compile(r"&lt;([^|&]+)\|([^&]+)&gt;")
_STYLES = """
body { font: 15px/1.47 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: #1d1c1d; background: #fff; margin: 0; }
.msg { display: flex; gap: 8px; padding: 16px 20px; max-width: 760px; }
.avatar { width: 36px; height: 36px; border-radius: 4px; background: #3a5f8f; color: #fff;
          font-weight: 700; display: flex; align-items: center; justify-content: center; }
.who { font-weight: 900; } .who small { font-weight: 400; color: #616061; margin-left: 6px; }
.header { font-size: 18px; font-weight: 900; margin: 4px 0; }
.section { margin: 6px 0; white-space: pre-wrap; }
.fields { display: grid; grid-template-columns: 1fr 1fr; gap: 6px 16px; margin: 6px 0; }
.context { color: #616061; font-size: 13px; margin: 6px 0; }
.divider { border-top: 1px solid #ddd; margin: 10px 0; }
.actions { display: flex; gap: 8px; margin: 8px 0; }
button { font: 700 14px sans-serif; padding: 6px 14px; border-radius: 4px;
         border: 1px solid #bbb; background: #fff; color: #1d1c1d; }
button.primary { background: #007a5a; border-color: #007a5a; color: #fff; }
button.danger { background: #e01e5a; border-color: #e01e5a; color: #fff; }
code { font: 12px monospace; background: #f6f6f6; border: 1px solid #ddd; padding: 1px 3px;
       border-radius: 3px; color: #c01343; }
a { color: #1264a3; text-decoration: none; }
"""


def mrkdwn(text: str) -> str:
    """Slack's mrkdwn subset as HTML, escaped first."""
    out = html.escape(text)
    out = _LINK.sub(lambda m: f'<a href="{m[1]}">{m[2]}</a>', out)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"<b>\1</b>", out)
    return re.sub(r"(?<![\w_])_([^_\n]+)_(?![\w_])", r"<i>\1</i>", out)


def _text(obj: Mapping[str, Any] | None) -> str:
    if not obj:
        return ""
    text = str(obj.get("text", ""))
    return mrkdwn(text) if obj.get("type") == "mrkdwn" else html.escape(text)


def _block(block: Mapping[str, Any]) -> str:
    kind = block.get("type")
    if kind == "header":
        return f'<div class="header">{_text(block.get("text"))}</div>'
    if kind == "divider":
        return '<div class="divider"></div>'
    if kind == "context":
        return f'<div class="context">{" ".join(_text(e) for e in block["elements"])}</div>'
    if kind == "actions":
        buttons = []
        for e in block["elements"]:
            style = html.escape(str(e.get("style", "")))
            buttons.append(f'<button class="{style}">{_text(e.get("text"))}</button>')
        return f'<div class="actions">{"".join(buttons)}</div>'
    if kind == "section":
        parts = []
        if "text" in block:
            parts.append(f'<div class="section">{_text(block["text"])}</div>')
        if "fields" in block:
            fields = "".join(f"<div>{_text(f)}</div>" for f in block["fields"])
            parts.append(f'<div class="fields">{fields}</div>')
        return "".join(parts)
    raise ValueError(f"block type {kind!r} is not drawn here")


def page(blocks: Sequence[Mapping[str, Any]], app: str = "Signoff", time: str = "9:41") -> str:
    """A whole HTML page showing `blocks` as one message from `app`."""
    body = "".join(_block(b) for b in blocks)
    who = f'<div class="who">{html.escape(app)} <small>APP {html.escape(time)}</small></div>'
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><style>{_STYLES}</style></head>"
        f'<body><div class="msg"><div class="avatar">S</div><div>{who}{body}</div></div>'
        "</body></html>"
    )
