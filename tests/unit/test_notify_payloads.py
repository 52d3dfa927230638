"""Webhook payloads, signatures, backoff and settings: pure functions, plain tables."""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest
from google.protobuf import struct_pb2
from pydantic import ValidationError

from signoff import pb
from signoff.notify import NotifySettings, WebhookSettings, sign, verify_signature
from signoff.notify.payloads import (
    encode,
    json_payload,
    review_to_dict,
    slack_payload,
    summary,
)
from signoff.notify.retry import backoff_delay, parse_retry_after

R = pb.review


def make_review(**overrides) -> pb.review.Review:
    """A pending finance review of a large refund."""
    params = struct_pb2.Struct()
    params.update({"amount": 900, "card": "[REDACTED]"})
    review = R.Review(
        review_id="rev-1",
        decision_id="dec-1",
        request=pb.common.ActionRequest(
            action=pb.common.Action(name="refund.issue", params=params),
            principal=pb.common.Principal(id="support-bot-7", on_behalf_of="cust-9"),
            justification="customer was double charged",
        ),
        state=R.REVIEW_STATE_PENDING,
        outcome=pb.common.OUTCOME_REQUIRE_REVIEW,
        reviewer_group="finance",
        reason="Refund above 500 needs a finance reviewer",
        matched_rules=[pb.common.MatchedRule(rule="large-refund", policy="refunds")],
        approvals_required=1,
        version=1,
    )
    review.created_at.FromSeconds(1_700_000_000)
    review.expires_at.FromSeconds(1_700_003_600)
    for key, value in overrides.items():
        if key == "acts":
            review.acts.extend(value)
        elif key == "escalated_from":
            review.escalated_from.extend(value)
        else:
            setattr(review, key, value)
    return review


def act(reviewer: str, verdict: int, comment: str = "") -> pb.review.ReviewAct:
    """A reviewer's act at a fixed time."""
    a = R.ReviewAct(reviewer=reviewer, verdict=verdict, comment=comment)
    a.at.FromSeconds(1_700_000_600)
    return a


def test_review_to_dict_has_the_documented_fields():
    d = review_to_dict(make_review(acts=[act("alice", R.VERDICT_APPROVE, "ok")]))
    assert d["review_id"] == "rev-1"
    assert d["decision_id"] == "dec-1"
    assert d["state"] == "PENDING"
    assert d["outcome"] == "REQUIRE_REVIEW"
    assert d["reviewer_group"] == "finance"
    assert d["action"] == "refund.issue"
    assert d["principal"] == "support-bot-7"
    assert d["params"] == {"amount": 900.0, "card": "[REDACTED]"}
    assert d["matched_rules"] == ["large-refund"]
    assert d["created_at"] == "2023-11-14T22:13:20Z"
    assert d["expires_at"] == "2023-11-14T23:13:20Z"
    assert d["resolved_at"] is None
    assert d["acts"] == [
        {"reviewer": "alice", "verdict": "APPROVE", "comment": "ok", "at": "2023-11-14T22:23:20Z"}
    ]


def test_json_payload_is_an_envelope_around_the_review():
    review = review_to_dict(make_review())
    body = encode(json_payload("review.opened", "d-1", "2024-01-01T00:00:00Z", review))
    assert json.loads(body) == {
        "event": "review.opened",
        "delivery_id": "d-1",
        "sent_at": "2024-01-01T00:00:00Z",
        "review": review,
    }


RESOLVED = [
    (
        R.REVIEW_STATE_APPROVED,
        pb.common.OUTCOME_AUTO_ALLOW,
        [act("alice", R.VERDICT_APPROVE, "fine")],
        "",
        ":white_check_mark: refund.issue approved by alice — fine"
        " (review rev-1, outcome auto_allow)",
    ),
    (
        R.REVIEW_STATE_MODIFIED,
        pb.common.OUTCOME_AUTO_ALLOW,
        [act("bob", R.VERDICT_MODIFY)],
        "",
        ":pencil2: refund.issue modified by bob (review rev-1, outcome auto_allow)",
    ),
    (
        R.REVIEW_STATE_REJECTED,
        pb.common.OUTCOME_DENY,
        [act("alice", R.VERDICT_REJECT, "no <way>")],
        "",
        ":x: refund.issue rejected by alice — no &lt;way&gt; (review rev-1, outcome deny)",
    ),
    (
        R.REVIEW_STATE_EXPIRED,
        pb.common.OUTCOME_DENY,
        [],
        "timed out after 1h",
        ":alarm_clock: refund.issue expired — timed out after 1h (review rev-1, outcome deny)",
    ),
    (
        R.REVIEW_STATE_CANCELLED,
        pb.common.OUTCOME_DENY,
        [],
        "",
        ":no_entry_sign: refund.issue cancelled (review rev-1, outcome deny)",
    ),
]


@pytest.mark.parametrize(("state", "outcome", "acts", "note", "line"), RESOLVED)
def test_slack_resolution_line(state, outcome, acts, note, line):
    review = make_review(state=state, outcome=outcome, acts=acts, resolution_note=note)
    assert summary("review.resolved", review_to_dict(review)) == line


def test_slack_opened_message():
    msg = slack_payload("review.opened", review_to_dict(make_review()))
    line = (
        ":hourglass: Review needed by finance: refund.issue — "
        "Refund above 500 needs a finance reviewer (review rev-1)"
    )
    assert msg["text"] == line
    assert msg["blocks"][0] == {"type": "section", "text": {"type": "mrkdwn", "text": line}}
    facts = [e["text"] for e in msg["blocks"][1]["elements"]]
    assert "*rules* large-refund" in facts
    # Params never go to chat, even redacted ones.
    assert "900" not in json.dumps(msg)
    assert "REDACTED" not in json.dumps(msg)


def test_slack_escalated_names_both_groups():
    review = make_review(reviewer_group="cfo", escalated_from=["finance"])
    assert summary("review.escalated", review_to_dict(review)).startswith(
        ":arrow_double_up: Review escalated from finance to cfo: refund.issue"
    )


def test_signature_round_trip():
    body = b'{"event":"review.opened"}'
    header = sign("s3cret", 1_700_000_000, body)
    assert header.startswith("sha256=")
    assert len(header) == 7 + 64
    assert verify_signature("s3cret", "1700000000", body, header, now=1_700_000_100)


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "header_of", "now"),
    [
        ("wrong", "1700000000", b"{}", b"{}", 1_700_000_000),  # other secret
        ("s3cret", "1700000000", b"{ }", b"{}", 1_700_000_000),  # body changed
        ("s3cret", "1700000001", b"{}", b"{}", 1_700_000_000),  # timestamp changed
        ("s3cret", "1700000000", b"{}", b"{}", 1_700_000_301),  # too old: a replay
        ("s3cret", "soon", b"{}", b"{}", 1_700_000_000),  # not a number
    ],
)
def test_signature_refuses(secret, timestamp, body, header_of, now):
    header = sign("s3cret", 1_700_000_000, header_of)
    assert not verify_signature(secret, timestamp, body, header, now=now)


@pytest.mark.parametrize("header", ["", "sha1=abc", "sha256=zz", "sha256=é" * 10])
def test_signature_refuses_malformed_headers(header):
    assert not verify_signature("s", 1, b"{}", header, now=1)


def test_backoff_is_full_jitter_capped_and_honours_retry_after():
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (10, 60.0)]:
        delays = [backoff_delay(attempt, 0.5, 60, None, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jitter spans the range, not a fixed value
    assert backoff_delay(1, 0.5, 60, 7, rng) == 7
    assert backoff_delay(1, 0.5, 60, 3600, rng) == 60  # a receiver cannot park us for an hour


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("12", 12.0),
        (" 3 ", 3.0),
        ("soon", None),
        ("-1", None),
        (
            dt.datetime.fromtimestamp(1_700_000_030, dt.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT"),
            30.0,
        ),
        ("Tue, 14 Nov 2000 22:13:20 GMT", 0.0),  # in the past: retry now
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, now=1_700_000_000) == expected


def test_webhook_defaults():
    hook = WebhookSettings(url="https://example.test/hook")
    assert hook.format == "json"
    assert hook.events == ["review.opened", "review.resolved", "review.escalated"]
    assert (hook.timeout_s, hook.max_attempts, hook.secret) == (5.0, 6, None)
    assert NotifySettings().webhooks == {}


def test_secret_is_not_shown_in_repr_or_dump():
    hook = WebhookSettings(url="https://example.test/hook", secret="s3cret")
    assert "s3cret" not in repr(hook)
    assert "s3cret" not in hook.model_dump_json()


@pytest.mark.parametrize(
    ("hook", "where"),
    [
        ({"url": "ftp://example.test/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://e.test", "format": "xml"}, "format"),
        ({"url": "https://e.test", "events": ["review.approved"]}, "events"),
        ({"url": "https://e.test", "events": []}, "events"),
        ({"url": "https://e.test", "timeout_s": 0}, "timeout_s"),
        ({"url": "https://e.test", "max_attempts": 0}, "max_attempts"),
        ({"url": "https://e.test", "sekret": "x"}, "sekret"),
    ],
)
def test_bad_webhook_settings_name_the_key(hook, where):
    with pytest.raises(ValidationError) as e:
        NotifySettings.model_validate({"webhooks": {"finance": [hook]}})
    assert where in str(e.value)
