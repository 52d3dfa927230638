"""Replay (what-if): recorded decisions re-decided with another bundle, aggregated."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from signoff.app.replay import DEFAULT_RULE, Recorded, Replay, recorded_from_payload, replay
from signoff.core.decide import DefaultDecision
from signoff.policy import Bundle, load_bundle

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
POLICIES = Path(__file__).parents[2] / "policies"


def _payload(amount: float, outcome: str, rule: str, **request: object) -> dict[str, object]:
    decision = "ALLOW" if outcome == "AUTO_ALLOW" else outcome.removeprefix("REQUIRE_")
    return {
        "request": {
            "action": {"name": "refund.issue", "params": {"amount": amount, **request}},
            "principal": {"id": "bot"},
        },
        "decision": {
            "outcome": outcome,
            "matched_rules": [{"rule": rule, "decision": decision}] if rule else [],
            "default_applied": not rule,
        },
    }


def _rec(amount: float, outcome: str, rule: str, **request: object) -> Recorded:
    return recorded_from_payload(
        _payload(amount, outcome, rule, **request),
        decision_id=f"d-{amount:g}",
        time=NOW,
        policy_version="old",
    )


# The refund traffic of docs/policies.md's worked replay, recorded under the shipped policies
# (threshold 500).
TRAFFIC = [
    (100, "AUTO_ALLOW", "small-refund"),
    (600, "REQUIRE_REVIEW", "large-refund"),
    (750, "REQUIRE_REVIEW", "large-refund"),
    (900, "REQUIRE_REVIEW", "large-refund"),
    (1200, "REQUIRE_REVIEW", "large-refund"),
]


@pytest.fixture
def raised(tmp_path: Path) -> Bundle:
    """The shipped policies with the review threshold raised from 500 to 1000."""
    root = tmp_path / "policies"
    shutil.copytree(POLICIES, root)
    text = (root / "refunds.yaml").read_text()
    text = text.replace("vars.amount > 500", "vars.amount > 1000.0")
    text = text.replace("vars.amount <= 500", "vars.amount <= 1000.0")
    (root / "refunds.yaml").write_text(text)
    return load_bundle(root)


def test_raising_the_threshold_allows_the_middle_refunds(raised: Bundle):
    report = replay(raised, [_rec(*t) for t in TRAFFIC], examples=2)
    assert (report.total, report.changed, report.rule_changed) == (5, 3, 0)
    groups = {(g.old_outcome, g.new_outcome, g.new_rule): g for g in report.groups}
    moved = groups[("REQUIRE_REVIEW", "AUTO_ALLOW", "small-refund")]
    assert moved.changed
    assert moved.count == 3
    assert [e.params["amount"] for e in moved.examples] == [600, 750]  # at most 2 examples
    assert moved.examples[0].old_rule == "large-refund"
    assert groups[("AUTO_ALLOW", "AUTO_ALLOW", "small-refund")].count == 1
    assert groups[("REQUIRE_REVIEW", "REQUIRE_REVIEW", "large-refund")].count == 1
    assert report.groups[0] is moved  # changed groups come first
    assert report.old_versions == {"old": 5}


def test_the_same_bundle_changes_nothing():
    report = replay(load_bundle(POLICIES), [_rec(*t) for t in TRAFFIC])
    assert report.changed == report.rule_changed == 0
    assert all(not g.changed for g in report.groups)


def test_shadow_matches_are_counted_apart_and_never_decide():
    report = replay(load_bundle(POLICIES), [_rec(6000, "REQUIRE_REVIEW", "large-refund")])
    assert report.changed == 0
    [shadow] = report.shadow
    assert (shadow.rule, shadow.would_decide, shadow.count) == (
        "very-large-refund-two-approvers",
        "review",
        1,
    )


def test_the_default_decision_is_configurable():
    rec = recorded_from_payload(
        {
            "request": {"action": {"name": "unknown.thing"}},
            "decision": {"outcome": "REQUIRE_REVIEW", "default_applied": True},
        },
        decision_id="d1",
        time=NOW,
        policy_version="v",
    )
    assert rec.rule == DEFAULT_RULE
    same = replay(load_bundle(POLICIES), [rec])
    assert same.changed == 0
    deny = replay(load_bundle(POLICIES), [rec], default=DefaultDecision(decision="deny"))
    assert deny.changed == 1
    assert deny.groups[0].new_outcome == "DENY"
    assert deny.groups[0].new_rule == DEFAULT_RULE


def test_rules_reading_redacted_fields_replay_on_the_mask(tmp_path: Path):
    (tmp_path / "cards.yaml").write_text(
        "name: cards\nactions: [refund.*]\nrules:\n"
        "  - {name: test-card, when: 'action.params.card_number.startsWith(\"4111\")',"
        " decision: deny, reason: test card}\n"
        "  - {name: card-digits, when: 'int(action.params.card_number) > 0',"
        " decision: allow, reason: ok}\n"
    )
    recorded = _rec(100, "DENY", "test-card", card_number="[REDACTED]")
    report = replay(load_bundle(tmp_path), [recorded])
    assert report.redacted == 1
    # The mask no longer starts with 4111, and int() of it fails: on_error review decides.
    assert report.changed == 1
    assert report.groups[0].new_outcome == "REQUIRE_REVIEW"
    [error] = report.errors
    assert error.rule == "card-digits"
    assert error.examples == ["d-100"]


def test_a_rule_error_is_reported_with_its_rule(tmp_path: Path):
    (tmp_path / "p.yaml").write_text(
        "name: p\nrules:\n  - {name: needs-tier, when: 'resource.attributes.tier == \"gold\"',"
        " decision: allow, reason: gold}\n"
    )
    report = replay(load_bundle(tmp_path), [_rec(1, "AUTO_ALLOW", "x")])
    assert [(e.rule, e.count) for e in report.errors] == [("needs-tier", 1)]
    assert "tier" in report.errors[0].error


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "payload is not an object"),
        ({"decision": {"outcome": "DENY"}}, "payload.request is missing"),
        ({"request": {}}, "payload.decision is missing"),
        ({"request": {}, "decision": {"outcome": "MAYBE"}}, "is not an outcome"),
        (
            {"request": {"action": {"params": 3}}, "decision": {"outcome": "DENY"}},
            "payload.request",
        ),
    ],
)
def test_unreadable_payloads_say_what_is_wrong(payload: object, message: str):
    with pytest.raises(ValueError, match=message):
        recorded_from_payload(payload, decision_id="d", time=NOW, policy_version="v")


def test_unreadable_records_are_counted_by_message():
    acc = Replay(load_bundle(POLICIES), examples=1)
    acc.add_unreadable("d1", "payload.request is missing")
    acc.add_unreadable("d2", "payload.request is missing")
    [group] = acc.report().unreadable
    assert (group.count, group.examples) == (2, ["d1"])
    assert acc.report().total == 0


def test_the_report_is_json():
    report = replay(load_bundle(POLICIES), [_rec(6000, "REQUIRE_REVIEW", "large-refund")])
    data = report.to_json()
    assert data["total"] == 1
    assert data["shadow"][0]["count"] == 1
    assert data["groups"][0]["examples"][0]["params"] == {"amount": 6000}
