"""Webhook payloads (pure): a review as JSON, Signoff's envelope, and a Slack message."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import timestamp_pb2

from signoff import pb
from signoff.core.jsonify import struct_to_dict

JsonDict = dict[str, Any]

# Audit entry types (signoff.core.reviews) -> the notification event that announces them.
AUDIT_TO_EVENT = {
    "review.opened": "review.opened",
    "review.approved": "review.resolved",
    "review.modified": "review.resolved",
    "review.rejected": "review.resolved",
    "review.expired": "review.resolved",
    "review.cancelled": "review.resolved",
    "review.escalated": "review.escalated",
}

_RESOLVED_ICON = {
    "APPROVED": ":white_check_mark:",
    "MODIFIED": ":pencil2:",
    "REJECTED": ":x:",
    "EXPIRED": ":alarm_clock:",
    "CANCELLED": ":no_entry_sign:",
}


def _time(ts: timestamp_pb2.Timestamp) -> str | None:
    # An unset Timestamp is the epoch; say "not yet" (None) rather than 1970.
    return ts.ToJsonString() if ts.seconds or ts.nanos else None


def review_to_dict(review: pb.review.Review) -> JsonDict:
    """The review as it appears in a webhook payload (params as stored: already redacted)."""
    req = review.request
    return {
        "review_id": review.review_id,
        "decision_id": review.decision_id,
        "state": pb.review.ReviewState.Name(review.state).removeprefix("REVIEW_STATE_"),
        "outcome": pb.common.Outcome.Name(review.outcome).removeprefix("OUTCOME_"),
        "reviewer_group": review.reviewer_group,
        "escalated_from": list(review.escalated_from),
        "action": req.action.name,
        "reason": review.reason,
        "justification": req.justification,
        "principal": req.principal.id,
        "on_behalf_of": req.principal.on_behalf_of,
        "params": struct_to_dict(req.action.params),
        "matched_rules": [m.rule for m in review.matched_rules],
        "approvals_required": review.approvals_required,
        "version": review.version,
        "created_at": _time(review.created_at),
        "expires_at": _time(review.expires_at),
        "resolved_at": _time(review.resolved_at),
        "resolution_note": review.resolution_note,
        "acts": [
            {
                "reviewer": act.reviewer,
                "verdict": pb.review.Verdict.Name(act.verdict).removeprefix("VERDICT_"),
                "comment": act.comment,
                "at": _time(act.at),
            }
            for act in review.acts
        ],
    }


def json_payload(event: str, delivery_id: str, sent_at: str, review: JsonDict) -> JsonDict:
    """Signoff's own payload: the event, its delivery id, when it was sent, the review."""
    return {"event": event, "delivery_id": delivery_id, "sent_at": sent_at, "review": review}


def _esc(text: str) -> str:
    # Slack mrkdwn treats &, < and > as control characters (links, mentions).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def summary(event: str, review: JsonDict) -> str:
    """One line saying what happened, in Slack mrkdwn."""
    action, rid = _esc(review["action"]), _esc(review["review_id"])
    group, reason = _esc(review["reviewer_group"]), _esc(review["reason"])
    if event == "review.opened":
        return f":hourglass: Review needed by {group}: {action} — {reason} (review {rid})"
    if event == "review.escalated":
        frm = _esc(review["escalated_from"][-1]) if review["escalated_from"] else "?"
        return (
            f":arrow_double_up: Review escalated from {frm} to {group}: {action} — {reason}"
            f" (review {rid})"
        )
    state = review["state"]
    icon = _RESOLVED_ICON.get(state, ":grey_question:")
    line = f"{icon} {action} {state.lower()}"
    acts = review["acts"]
    if state in ("APPROVED", "MODIFIED", "REJECTED") and acts:
        line += " by " + ", ".join(_esc(a["reviewer"]) for a in acts)
    note = acts[-1]["comment"] if acts and state != "EXPIRED" else review["resolution_note"]
    if note:
        line += f" — {_esc(note)}"
    return f"{line} (review {rid}, outcome {review['outcome'].lower()})"


def slack_payload(event: str, review: JsonDict) -> JsonDict:
    """A Slack-compatible message: the summary line plus a context block of key facts."""
    # Params stay out of chat on purpose: a channel is a wider audience than the reviewers,
    # and redaction rules are written for reviewers, not for everyone in a channel.
    text = summary(event, review)
    facts = [
        f"*principal* {_esc(review['principal'])}",
        f"*group* {_esc(review['reviewer_group'])}",
    ]
    if review["matched_rules"]:
        facts.append("*rules* " + ", ".join(_esc(r) for r in review["matched_rules"]))
    if event != "review.resolved" and review["expires_at"]:
        facts.append(f"*expires* {review['expires_at']}")
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f} for f in facts]},
        ],
    }


def encode(payload: JsonDict) -> bytes:
    """Compact UTF-8 JSON: the exact bytes that are signed and sent."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
