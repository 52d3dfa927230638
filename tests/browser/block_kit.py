"""A small Block Kit renderer for the docs' screenshots: the block types and mrkdwn that
Signoff's review messages use (header, section text and fields, context, actions with
buttons), drawn close to Slack's look. Not Slack: Slack's own renderer is not available
offline; what this shows is exactly the JSON Signoff sent, laid out."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

_DATE = re.compile(r"&lt;!date\^(\d+)\^[^|]*\|([^&]*)&gt;")
_CODE = re.compile(r"```(.*?)```\n?", re.S)
_INLINE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_([^_\n]+)_(?![\w_])")
# No emoji font offline: each emoji Signoff uses as a small coloured badge.
_EMOJI = {
    ":white_check_mark:": '<span class="emoji" style="background:#2eb67d">✓</span>',
    ":x:": '<span class="emoji" style="background:#e01e5a">✕</span>',
    ":pencil2:": '<span class="emoji" style="background:#ecb22e">✎</span>',
    ":alarm_clock:": '<span class="emoji" style="background:#616061">⏲</span>',
    ":no_entry_sign:": '<span class="emoji" style="background:#616061">⊘</span>',
    ":arrow_double_up:": '<span class="emoji" style="background:#1264a3">⇑</span>',
    ":warning:": '<span class="emoji" style="background:#ecb22e">!</span>',
}

CSS = """
body { font: 15px/1.46 -apple-system, "Segoe UI", "Helvetica Neue", Arial, sans-serif;
       color: #1d1c1d; background: #fff; margin: 0; padding: 20px 24px; width: 640px; }
.msg { display: flex; gap: 8px; }
.avatar { width: 36px; height: 36px; border-radius: 6px; background: #2eb67d; color: #fff;
          font-weight: 700; display: flex; align-items: center; justify-content: center; }
.who { font-weight: 900; } .app { font-size: 10px; background: #e8e8e8; color: #616061;
       padding: 1px 3px; border-radius: 2px; margin-left: 4px; } .time { color: #616061;
       font-size: 12px; margin-left: 6px; }
.header { font-size: 18px; font-weight: 900; margin: 6px 0 4px; }
.section { margin: 6px 0; white-space: pre-wrap; }
.fields { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 16px; margin: 6px 0; }
.fields div { white-space: pre-wrap; }
pre { font: 12px/1.5 Monaco, Menlo, Consolas, monospace; background: #f8f8f8;
      border: 1px solid #ddd; border-radius: 4px; padding: 8px; margin: 4px 0;
      white-space: pre-wrap; }
code { font: 12px Monaco, Menlo, Consolas, monospace; color: #e01e5a; background: #f8f8f8;
       border: 1px solid #ddd; border-radius: 3px; padding: 0 3px; }
.emoji { display: inline-block; width: 16px; height: 16px; border-radius: 3px; color: #fff;
         font-size: 12px; line-height: 16px; text-align: center; font-weight: 700; }
.context { color: #616061; font-size: 12px; margin: 6px 0; }
.actions { display: flex; gap: 8px; margin: 10px 0 4px; }
.btn { border: 1px solid #bbb; border-radius: 4px; padding: 3px 12px; font-weight: 700;
       font-size: 13px; background: #fff; }
.primary { background: #007a5a; color: #fff; border-color: #007a5a; }
.danger { background: #e01e5a; color: #fff; border-color: #e01e5a; }
"""


def mrkdwn(text: str) -> str:
    """Slack mrkdwn (the subset Signoff writes) as HTML."""
    out = html.escape(text, quote=False)
    # Signoff escapes &, < and > itself: undo the double escape of its entities.
    out = out.replace("&amp;lt;", "&lt;").replace("&amp;gt;", "&gt;").replace("&amp;amp;", "&amp;")
    # As Slack draws {date_short_pretty} {time} (here in UTC: the reader's zone is unknown).
    out = _DATE.sub(lambda m: _pretty(int(m.group(1))), out)
    codes: list[str] = []

    def keep(m: re.Match[str]) -> str:
        codes.append(f"<pre>{m.group(1)}</pre>")
        return f"\x00{len(codes) - 1}\x00"

    out = _CODE.sub(keep, out)
    out = _INLINE.sub(r"<code>\1</code>", out)
    out = _BOLD.sub(r"<b>\1</b>", out)
    out = _ITALIC.sub(r"<i>\1</i>", out)
    for name, char in _EMOJI.items():
        out = out.replace(name, char)
    return re.sub("\x00(\\d+)\x00", lambda m: codes[int(m.group(1))], out)


def _pretty(epoch: int) -> str:
    at = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return f"{at:%b} {at.day}, {at.year} at {at.hour % 12 or 12}:{at:%M} {at:%p} UTC"


def _text(obj: dict[str, Any]) -> str:
    if obj["type"] == "plain_text":
        return html.escape(obj["text"])
    return mrkdwn(obj["text"])


def _block(block: dict[str, Any]) -> str:
    kind = block["type"]
    if kind == "header":
        return f'<div class="header">{_text(block["text"])}</div>'
    if kind == "section":
        parts = []
        if "text" in block:
            parts.append(f'<div class="section">{_text(block["text"])}</div>')
        if "fields" in block:
            cells = "".join(f"<div>{_text(f)}</div>" for f in block["fields"])
            parts.append(f'<div class="fields">{cells}</div>')
        return "".join(parts)
    if kind == "context":
        return "".join(f'<div class="context">{_text(e)}</div>' for e in block["elements"])
    if kind == "actions":
        buttons = "".join(
            f'<button class="btn {e.get("style", "")}">{_text(e["text"])}</button>'
            for e in block["elements"]
        )
        return f'<div class="actions">{buttons}</div>'
    raise AssertionError(f"block type {kind} is not drawn by this renderer")


def page(message: dict[str, Any], app: str = "Signoff", time: str = "9:41 AM") -> str:
    """An HTML page showing `message` as a Slack message from the app."""
    body = "".join(_block(b) for b in message["blocks"])
    return (
        f"<!doctype html><meta charset=utf-8><style>{CSS}</style>"
        f'<div class="msg"><div class="avatar">S</div><div style="flex:1">'
        f'<span class="who">{app}</span><span class="app">APP</span>'
        f'<span class="time">{time}</span>{body}</div></div>'
    )
