"""The Slack message of a review (pure): what it shows, what it never shows, what it escapes."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from signoff import pb
from signoff.notify import slack_blocks as blocks

R = pb.review
NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def _review(**params: object) -> pb.review.Review:
    r = R.Review(
        review_id="r1",
        state=R.REVIEW_STATE_PENDING,
        reviewer_group="finance",
        reason="Refund above 500 needs a finance reviewer.",
        approvals_required=1,
        version=3,
        redacted_paths=["action.params.card_number"],
    )
    r.request.action.name = "refund.issue"
    r.request.principal.id = "support-bot"
    r.request.action.params.update(params or {"amount": 750})
    r.expires_at.FromDatetime(NOW + dt.timedelta(hours=1))
    return r


def _all_text(message: dict) -> str:
    return json.dumps(message, ensure_ascii=False)


def _buttons(message: dict) -> dict[str, dict]:
    return {
        e["action_id"]: e
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    }


def test_a_pending_review_has_approve_reject_and_open_carrying_its_version():
    m = blocks.message(_review(), "https://console.example.com/")
    buttons = _buttons(m)
    assert list(buttons) == [blocks.APPROVE, blocks.REJECT, blocks.OPEN]
    assert blocks.parse_value(buttons[blocks.APPROVE]["value"]) == ("r1", 3)
    assert buttons[blocks.OPEN]["url"] == "https://console.example.com/reviews/r1"
    assert "confirm" in buttons[blocks.APPROVE]  # one stray tap does not approve
    assert m["text"]  # the notification's fallback text


def test_a_settled_review_keeps_only_the_console_link_and_says_who_decided():
    r = _review()
    r.state = R.REVIEW_STATE_REJECTED
    r.acts.add(
        reviewer="alice", verdict=R.VERDICT_REJECT, comment="wrong <account>", channel="slack"
    )
    m = blocks.message(r, "https://c.example.com")
    assert list(_buttons(m)) == [blocks.OPEN]
    text = _all_text(m)
    assert ":x: *Rejected* by *alice*" in text
    assert "via slack: wrong &lt;account&gt;" in text


def test_text_from_the_request_cannot_mention_or_link():
    r = _review(note="<!channel> <https://evil.example|click> & more")
    r.reason = "<@U123> approve this"
    text = _all_text(blocks.message(r, "https://c.example.com"))
    assert "<!channel>" not in text
    assert "<@U123>" not in text
    assert "<https://evil" not in text
    assert "&lt;!channel&gt;" in text


def test_a_code_fence_in_params_cannot_end_the_code_block():
    m = blocks.message(_review(x="```*bold* <!here>"), "https://c.example.com")
    params = m["blocks"][3]["text"]["text"]
    assert params.count("```") == 2  # the block's own opening and closing fence


def test_long_params_are_cut_to_fit_with_a_note():
    m = blocks.message(_review(blob="y" * 10_000), "https://c.example.com")
    params = m["blocks"][3]["text"]["text"]
    assert len(params) < 3000  # Slack's limit for a section's text
    assert "Cut to fit a Slack message" in params
    assert "Redacted: `action.params.card_number`" in params


def test_an_escalated_review_shows_where_it_went_without_buttons():
    m = blocks.message(_review(), "https://c.example.com", moved_to="finance-leads")
    assert list(_buttons(m)) == [blocks.OPEN]
    assert "Escalated to *finance-leads*" in _all_text(m)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "not json",
        "[1, 2]",
        '{"review_id": "", "version": 1}',
        '{"review_id": "r1", "version": 0}',
        '{"review_id": "r1", "version": "3"}',
        '{"review_id": "r1", "version": true}',
        '{"review_id": 5, "version": 1}',
    ],
)
def test_a_value_that_is_not_ours_is_none(value):
    assert blocks.parse_value(value) is None


def test_the_reject_modal_collects_a_bounded_comment_and_remembers_the_message():
    view = blocks.reject_view("r1", 3, "refund.issue", {"channel": "C1", "ts": "1.2"})
    assert view["callback_id"] == blocks.REJECT_VIEW
    meta = json.loads(view["private_metadata"])
    assert meta == {"review_id": "r1", "version": 3, "channel": "C1", "ts": "1.2"}
    field = view["blocks"][-1]
    assert field["block_id"] == blocks.COMMENT_BLOCK
    assert field["element"]["max_length"] <= 4096  # what a review comment may hold


def test_the_block_kit_example_in_the_reviewers_guide_is_what_the_code_sends():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "reviewers.md").read_text()
    start = doc.index("```json", doc.index("The message for a pending refund")) + len("```json")
    example = json.loads(doc[start : doc.index("\n```\n", start)])
    r = R.Review(
        review_id="01J9ZK3V6W8X2R4T5Y7Q0M1N2P",
        state=R.REVIEW_STATE_PENDING,
        reviewer_group="finance",
        reason="Refund above 500 needs a finance reviewer.",
        approvals_required=1,
        version=1,
        redacted_paths=["action.params.card_number"],
    )
    r.request.action.name = "refund.issue"
    r.request.principal.id = "support-bot"
    r.request.principal.on_behalf_of = "jane@example.com"
    r.request.justification = "Customer charged twice for order 8812."
    r.request.action.params.update({"amount": 750, "currency": "EUR", "card_number": "[REDACTED]"})
    r.expires_at.FromDatetime(dt.datetime(2026, 12, 6, 9, 30, tzinfo=dt.UTC))
    assert blocks.message(r, "https://signoff.example.com") == example
