"""Slack Block Kit (pure): the message of one review, its settled form, and the reject modal.

What a message shows is the review as stored: its request is the *shown* request, already
redacted by the policy's `redact` paths, so chat never sees what reviewers may not.
"""

from __future__ import annotations

import json
from typing import Any

from signoff import pb
from signoff.core.jsonify import struct_to_dict
from signoff.notify.payloads import JsonDict

S = pb.review
# action_ids of the message's buttons and the modal's callback id.
APPROVE = "signoff.approve"
REJECT = "signoff.reject"
OPEN = "signoff.open"
REJECT_VIEW = "signoff.reject_view"
COMMENT_BLOCK = "comment"
COMMENT_ACTION = "comment"
# Slack's limits: a section's text is at most 3000 characters, a header's 150, a button's
# value 2000, a modal's private_metadata 3000; params longer than this are cut, with a note.
PARAMS_CHARS = 2500
HEADER_CHARS = 150
COMMENT_CHARS = 2000  # below the review comment limit (4096): what the modal accepts

_VERB = {
    S.VERDICT_APPROVE: "approved",
    S.VERDICT_MODIFY: "approved with edits",
    S.VERDICT_REJECT: "rejected",
}
_ICON = {
    S.REVIEW_STATE_APPROVED: ":white_check_mark:",
    S.REVIEW_STATE_MODIFIED: ":pencil2:",
    S.REVIEW_STATE_REJECTED: ":x:",
    S.REVIEW_STATE_EXPIRED: ":alarm_clock:",
    S.REVIEW_STATE_CANCELLED: ":no_entry_sign:",
}


def esc(text: str) -> str:
    """Text safe in Slack mrkdwn: &, < and > start entities, links and mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    # A ``` inside would close the block early and let the rest render as mrkdwn.
    return "```" + esc(text).replace("```", "`\u200b``") + "```"


def _plain(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def button_value(review: pb.review.Review) -> str:
    """What a button carries back: the review and the version the message showed."""
    return json.dumps({"review_id": review.review_id, "version": review.version})


def parse_value(value: object) -> tuple[str, int] | None:
    """(review_id, version) from a button's or modal's value; None if it is not one of ours."""
    try:
        data = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    rid, version = data.get("review_id"), data.get("version")
    if not isinstance(rid, str) or not rid or type(version) is not int or version <= 0:
        return None
    return rid, version


def _deadline(review: pb.review.Review) -> str:
    at = review.expires_at
    if not at.seconds:
        return "none"
    # Slack shows <!date^...> in each reader's own time zone; the text after | is the fallback.
    fallback = at.ToDatetime().strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{at.seconds}^{{date_short_pretty}} {{time}}|{fallback}>"


def _params(review: pb.review.Review) -> str:
    params = struct_to_dict(review.request.action.params)
    text = json.dumps(params, indent=2, ensure_ascii=False, sort_keys=True)
    cut = len(text) > PARAMS_CHARS
    body = _code(text[:PARAMS_CHARS] + ("\n…" if cut else ""))
    notes = []
    if cut:
        notes.append("Cut to fit a Slack message; the console shows them whole.")
    if review.redacted_paths:
        notes.append("Redacted: " + ", ".join(f"`{esc(p)}`" for p in review.redacted_paths))
    return f"*Params*\n{body}" + "".join(f"\n{n}" for n in notes)


def _acts(review: pb.review.Review) -> list[str]:
    lines = []
    for act in review.acts:
        via = f" via {esc(act.channel)}" if act.channel else ""
        note = f": {esc(act.comment)}" if act.comment else ""
        lines.append(f"{_VERB.get(act.verdict, '?')} by *{esc(act.reviewer)}*{via}{note}")
    return lines


def _outcome(review: pb.review.Review) -> str:
    state = S.ReviewState.Name(review.state).removeprefix("REVIEW_STATE_").lower()
    icon = _ICON.get(review.state, ":grey_question:")
    line = f"{icon} *{state.capitalize()}*"
    deciders = [a.reviewer for a in review.acts if a.verdict in _VERB]
    if review.state in (S.REVIEW_STATE_APPROVED, S.REVIEW_STATE_MODIFIED, S.REVIEW_STATE_REJECTED):
        line += " by " + ", ".join(f"*{esc(d)}*" for d in dict.fromkeys(deciders))
    if review.resolution_note:
        line += f" — {esc(review.resolution_note)}"
    return line


def message(review: pb.review.Review, console_url: str, *, moved_to: str = "") -> JsonDict:
    """The review's message: buttons while it is pending here, its outcome once settled.

    `moved_to`: the group a review escalated to, when this channel no longer routes it.
    """
    req = review.request
    action = req.action.name
    pending = review.state == S.REVIEW_STATE_PENDING and not moved_to
    title = f"Review needed: {action}" if pending else f"Review: {action}"
    who = esc(req.principal.id) + (
        f" on behalf of {esc(req.principal.on_behalf_of)}" if req.principal.on_behalf_of else ""
    )
    approvals = sum(1 for a in review.acts if a.verdict in (S.VERDICT_APPROVE, S.VERDICT_MODIFY))
    fields = [
        f"*Requested by*\n{who}",
        f"*Reviewer group*\n{esc(review.reviewer_group)}",
        f"*Deadline*\n{_deadline(review)}",
        f"*Approvals*\n{approvals} of {review.approvals_required or 1}",
    ]
    reason = f"*Reason*\n{esc(review.reason) or '_none given_'}"
    if req.justification:
        reason += f"\n*Justification*\n{esc(req.justification)}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _plain(title, HEADER_CHARS)}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        {"type": "section", "text": {"type": "mrkdwn", "text": reason}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _params(review)}},
    ]
    link = f"{console_url.rstrip('/')}/reviews/{review.review_id}"
    acts = _acts(review)
    # At most ten acts: a context block holds ten elements.
    history = [{"type": "context", "elements": [{"type": "mrkdwn", "text": a} for a in acts[-10:]]}]
    if acts and pending:
        blocks += history
    open_button = {
        "type": "button",
        "action_id": OPEN,
        "text": {"type": "plain_text", "text": "Open in console"},
        "url": link,
    }
    if pending:
        value = button_value(review)
        blocks.append(
            {
                "type": "actions",
                "block_id": f"review:{review.review_id}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": APPROVE,
                        "style": "primary",
                        "text": {"type": "plain_text", "text": "Approve"},
                        "value": value,
                        "confirm": {
                            "title": {"type": "plain_text", "text": "Approve?"},
                            "text": {
                                "type": "plain_text",
                                "text": _plain(f"Approve {action}?", 300),
                            },
                            "confirm": {"type": "plain_text", "text": "Approve"},
                            "deny": {"type": "plain_text", "text": "Cancel"},
                        },
                    },
                    {
                        "type": "button",
                        "action_id": REJECT,
                        "style": "danger",
                        "text": {"type": "plain_text", "text": "Reject…"},
                        "value": value,
                    },
                    open_button,
                ],
            }
        )
    else:
        outcome = (
            f":arrow_double_up: Escalated to *{esc(moved_to)}*" if moved_to else _outcome(review)
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": outcome}})
        if acts:
            blocks += history
        blocks.append({"type": "actions", "elements": [open_button]})
    fallback = f"{title} ({esc(review.reviewer_group)}, review {review.review_id})"
    return {"text": fallback, "blocks": blocks}


def reject_view(review_id: str, version: int, action: str, where: JsonDict) -> JsonDict:
    """The modal that collects a rejection's comment; `where` is the message to update."""
    meta = {"review_id": review_id, "version": version, **where}
    return {
        "type": "modal",
        "callback_id": REJECT_VIEW,
        "private_metadata": json.dumps(meta),
        "title": {"type": "plain_text", "text": "Reject"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _plain(f"Reject *{esc(action)}*?", 3000)},
            },
            {
                "type": "input",
                "block_id": COMMENT_BLOCK,
                "label": {"type": "plain_text", "text": "Why (the requester sees this)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": COMMENT_ACTION,
                    "multiline": True,
                    "max_length": COMMENT_CHARS,
                },
            },
        ],
    }


def refusal(action: str, reason: str) -> str:
    """The ephemeral text telling a Slack user why their act was refused."""
    return f":warning: Your {action} was not recorded: {esc(reason)}"
