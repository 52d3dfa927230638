"""The review e-mail (pure): subject, plain text and HTML from a review as webhooks see it.

Everything in a review came from an agent (action, params, reason, justification), so the
HTML escapes every value and the subject has no control characters (no header injection).
Params are those stored, i.e. as shown to reviewers: redaction already applied.
"""

from __future__ import annotations

import html
import json
import re
from email.message import EmailMessage
from typing import Final

from signoff.notify.payloads import JsonDict

# The e-mail says enough to decide whether to open it; the whole request is in the console.
MAX_PARAMS_CHARS: Final = 4000
MAX_SUBJECT_CHARS: Final = 150
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def _one_line(text: str, limit: int) -> str:
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def params_text(review: JsonDict) -> str:
    """The shown params as indented JSON, cut at MAX_PARAMS_CHARS."""
    text = json.dumps(review["params"], indent=2, ensure_ascii=False, sort_keys=True)
    if len(text) > MAX_PARAMS_CHARS:
        text = text[:MAX_PARAMS_CHARS] + "\n… (cut; the console shows all of it)"
    return text


def facts(review: JsonDict) -> list[tuple[str, str]]:
    """(label, value) lines of the e-mail, in order."""
    rows = [
        ("Action", review["action"]),
        ("Requested by", review["principal"]),
        ("Reason", review["reason"]),
    ]
    if review["on_behalf_of"]:
        rows.append(("On behalf of", review["on_behalf_of"]))
    if review["justification"]:
        rows.append(("Justification", review["justification"]))
    rows.append(("Group", review["reviewer_group"]))
    if review["approvals_required"] > 1:
        rows.append(("Approvals needed", str(review["approvals_required"])))
    rows.append(("Decide by", review["expires_at"] or "no deadline"))
    rows.append(("Review", review["review_id"]))
    return rows


def subject(review: JsonDict) -> str:
    """The subject line: what needs a decision, by whom."""
    return _one_line(
        f"Review needed ({review['reviewer_group']}): {review['action']}", MAX_SUBJECT_CHARS
    )


def text_body(review: JsonDict, link: str, minutes: int) -> str:
    """The plain-text part."""
    lines = ["A request needs your review.", ""]
    lines += [f"{label}: {_one_line(value, 500)}" for label, value in facts(review)]
    lines += ["", "Params (as shown to reviewers):", params_text(review), ""]
    lines += [
        "Open the review (you confirm there; opening it decides nothing):",
        link,
        "",
        f"The link is yours alone, works once, for {minutes} minutes, and only while the "
        "review is as described here.",
    ]
    return "\n".join(lines) + "\n"


def html_body(review: JsonDict, link: str, minutes: int) -> str:
    """The HTML part; every value escaped."""
    e = html.escape
    rows = "".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0">{e(label)}</th>'
        f"<td>{e(_one_line(value, 500))}</td></tr>"
        for label, value in facts(review)
    )
    return (
        '<!doctype html><html><body style="font-family:sans-serif">'
        "<p>A request needs your review.</p>"
        f"<table>{rows}</table>"
        "<p><strong>Params</strong> (as shown to reviewers):</p>"
        f'<pre style="background:#f4f4f4;padding:8px">{e(params_text(review))}</pre>'
        f'<p><a href="{e(link)}">Open the review</a> — you confirm there; opening it decides '
        "nothing.</p>"
        f'<p style="color:#666">The link is yours alone, works once, for {minutes} minutes, '
        "and only while the review is as described here.</p>"
        "</body></html>"
    )


def message(review: JsonDict, link: str, minutes: int, sender: str, to: str) -> EmailMessage:
    """The whole e-mail to one reviewer: plain text with an HTML alternative."""
    msg = EmailMessage()
    msg["Subject"] = subject(review)
    msg["From"] = sender
    msg["To"] = to
    msg.set_content(text_body(review, link, minutes))
    msg.add_alternative(html_body(review, link, minutes), subtype="html")
    return msg
