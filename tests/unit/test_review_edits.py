"""A reviewer's edit against the policy, without a server: the edited request, the summary of
its evaluation, and which edits one reviewer may settle alone."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest
from google.protobuf import struct_pb2

from signoff import pb
from signoff.core.decide import DefaultDecision, evaluate
from signoff.core.redact import MASK, redact
from signoff.core.review_edits import Recheck, approvals_needed, check_edit, edited_request, recheck
from signoff.core.reviews import open_review
from signoff.errors import FailedPrecondition
from signoff.policy import Bundle, load_bundle

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
POLICY = """\
name: payouts
actions: ["payout.*"]
variables:
  amount: double(action.params.amount)
rules:
  - name: over-limit
    when: vars.amount > 10000
    decision: deny
    reason: never above 10,000
  - name: checksum
    when: has(action.params.account) && int(action.params.account) % 97 != 1
    decision: deny
    reason: bad account
    on_error: deny
  - name: treasury
    when: vars.amount > 5000
    decision: review
    reviewers: treasury
    reason: treasury looks
  - name: large
    when: vars.amount > 2000
    decision: review
    reviewers: finance
    approvals: 2
    reason: two look
  - name: payout
    when: vars.amount > 500
    decision: review
    reviewers: finance
    reason: one looks
  - name: small
    when: vars.amount <= 500
    decision: allow
    reason: small
  - name: shadow-fails
    when: int(action.params.currency) > 0
    decision: deny
    reason: rolling out
    mode: shadow
redact: ["action.params.account"]
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    root = tmp_path_factory.mktemp("policies")
    (root / "payouts.yaml").write_text(textwrap.dedent(POLICY))
    return load_bundle(root)


def _request(**params: object) -> pb.common.ActionRequest:
    req = pb.common.ActionRequest()
    req.action.name = "payout.send"
    req.action.params.update({"amount": 750, "currency": "EUR", **params})
    req.principal.id = "bot"
    req.resource.kind = "account"
    req.resource.id = "acct_9"
    return req


def _review(bundle: Bundle, req: pb.common.ActionRequest, escalated: str = "") -> pb.review.Review:
    ev = evaluate(bundle, req, NOW, DefaultDecision())
    d = pb.common.Decision(
        decision_id="d1", reviewer_group=ev.reviewer_group, policy_version=bundle.version
    )
    r = open_review(
        review_id="r1",
        decision=d,
        shown=redact(req, ev.redact),
        redacted_paths=ev.redact,
        approvals=approvals_needed(ev),
        timeout=dt.timedelta(hours=1),
        on_timeout="deny",
        now=NOW,
    )
    if escalated:
        r.escalated_from.append(r.reviewer_group)
        r.reviewer_group = escalated
    return r


def _edit(bundle: Bundle, review: pb.review.Review, **params: object) -> Recheck:
    edited = struct_pb2.Struct()
    edited.update({**dict(review.request.action.params), **params})
    ev = evaluate(bundle, edited_request(review, edited), NOW, DefaultDecision())
    return recheck(ev, bundle.version)


def test_the_edited_request_is_the_stored_one_with_the_new_params(bundle):
    review = _review(bundle, _request(account="1068"))
    params = struct_pb2.Struct()
    params.update({"amount": 600})
    req = edited_request(review, params)
    assert dict(req.action.params) == {"amount": 600}  # replaced, not merged
    assert (req.action.name, req.principal.id, req.resource.id) == ("payout.send", "bot", "acct_9")
    assert review.request.action.params["account"] == MASK  # the review is left as it was


@pytest.mark.parametrize(
    ("params", "outcome", "rule", "group", "approvals"),
    [
        ({"amount": 400}, "allow", "payouts/small", "", 0),
        ({"amount": 600}, "review", "payouts/payout", "finance", 1),
        ({"amount": 3000}, "review", "payouts/large", "finance", 2),
        ({"amount": 6000}, "review", "payouts/treasury", "treasury", 1),
        ({"amount": 25000}, "deny", "payouts/over-limit", "", 0),
    ],
)
def test_recheck_summarises_how_the_bundle_decides_the_edit(
    bundle, params, outcome, rule, group, approvals
):
    edit = _edit(bundle, _review(bundle, _request()), **params)
    assert (edit.outcome, edit.reviewer_group, edit.approvals) == (outcome, group, approvals)
    assert edit.rule.startswith(f"{rule} (payouts.yaml:")
    assert edit.policy_version == bundle.version
    assert edit.failed_rules == ()  # the failing shadow rule is never reported as deciding
    assert edit.payload() == {
        "outcome": {"allow": "AUTO_ALLOW", "review": "REQUIRE_REVIEW", "deny": "DENY"}[outcome],
        "rule": edit.rule,
        "reviewer_group": group,
        "approvals_required": approvals,
        "policy_version": bundle.version,
    }


@pytest.mark.parametrize(
    ("params", "refusal"),
    [
        ({"amount": 25000}, "the policy would deny the edited action (rule payouts/over-limit"),
        ({"amount": 6000}, "needs review by group 'treasury' (rule payouts/treasury"),
        ({"amount": 3000}, "needs 2 approvals (rule payouts/large"),
    ],
)
def test_an_edit_one_reviewer_may_not_settle_is_refused(bundle, params, refusal):
    review = _review(bundle, _request())
    with pytest.raises(FailedPrecondition) as err:
        check_edit(review, _edit(bundle, review, **params))
    assert refusal in err.value.message
    assert err.value.current_state == "PENDING"


@pytest.mark.parametrize("amount", [400, 600, 700.5])
def test_an_edit_within_the_reviewers_reach_is_accepted(bundle, amount):
    review = _review(bundle, _request())
    check_edit(review, _edit(bundle, review, amount=amount))  # no exception


def test_fewer_approvals_than_the_review_asks_for_is_within_reach(bundle):
    review = _review(bundle, _request(amount=3000))
    assert review.approvals_required == 2
    check_edit(review, _edit(bundle, review, amount=600))


def test_an_escalated_review_settles_edits_for_the_group_it_came_from(bundle):
    review = _review(bundle, _request(), escalated="finance-directors")
    check_edit(review, _edit(bundle, review, amount=600))
    with pytest.raises(FailedPrecondition, match="needs review by group 'treasury'"):
        check_edit(review, _edit(bundle, review, amount=6000))


def test_a_rule_failing_on_the_mask_decides_by_its_on_error_and_says_why(bundle):
    review = _review(bundle, _request(account="1068"))  # passes the checksum for real
    edit = _edit(bundle, review, amount=600)  # the edit keeps the mask
    assert edit.outcome == "deny"
    assert edit.rule_failed
    assert edit.payload()["failed_rules"] == [edit.rule]
    with pytest.raises(FailedPrecondition) as err:
        check_edit(review, edit)
    message = err.value.message
    assert "rule payouts/checksum (payouts.yaml:" in message
    assert "failed to evaluate on it, and its on_error decides" in message
    assert f"(action.params.account) masked as {MASK!r}" in message


def test_a_value_the_reviewer_typed_at_a_redacted_path_is_evaluated(bundle):
    review = _review(bundle, _request(account="1068"))
    assert _edit(bundle, review, amount=600, account="2135").outcome == "review"  # 2135 % 97 == 1
    assert _edit(bundle, review, amount=600, account="2136").rule.startswith("payouts/checksum")


def test_the_default_decision_is_named_when_no_rule_matches(tmp_path: Path):
    (tmp_path / "p.yaml").write_text(
        "name: p\nrules:\n  - {name: big, when: 'double(action.params.amount) > 500', "
        "decision: review, reviewers: finance, reason: big}\n"
    )
    b = load_bundle(tmp_path)
    review = _review(b, _request())
    params = struct_pb2.Struct()
    params.update({"amount": 100})
    ev = evaluate(b, edited_request(review, params), NOW, DefaultDecision(decision="deny"))
    edit = recheck(ev, b.version)
    assert (edit.outcome, edit.rule, edit.rule_failed) == ("deny", "", False)
    with pytest.raises(FailedPrecondition, match="no rule matches it: the server's default"):
        check_edit(review, edit)


def test_approvals_needed_is_one_unless_a_review_rule_asks_for_more(bundle):
    def ev(amount: float):
        return evaluate(bundle, _request(amount=amount), NOW, DefaultDecision())

    assert [approvals_needed(ev(a)) for a in (400, 600, 3000, 25000)] == [1, 1, 2, 1]


def test_a_redacted_path_outside_params_stays_masked(tmp_path: Path):
    (tmp_path / "p.yaml").write_text(
        "name: p\nrules:\n  - {name: ok, when: 'true', decision: allow, reason: ok}\n"
        "redact: [resource.id]\n"
    )
    b = load_bundle(tmp_path)
    req = _request()
    req.resource.id = "customer-42"
    review = _review(b, req)
    edited = edited_request(review, struct_pb2.Struct())
    assert edited.resource.id == MASK


GUARDED = """\
name: payouts-guarded
actions: ["payout.*"]
rules:
  - name: large-payout-to-blocked-bank
    when: >-
      double(action.params.amount) > 1000.0 &&
      ({guard}action.params.iban.startsWith("XX"))
    decision: deny
    reason: No payout above 1,000 to a blocked bank.
  - name: payout
    when: double(action.params.amount) > 500.0
    decision: review
    reviewers: finance
    reason: one looks
redact: ["action.params.iban"]
"""


@pytest.mark.parametrize(
    ("guard", "outcome"),
    [
        # The documented limit: on the mask the rule is false, so the edit is not stopped
        # although the agent's real IBAN is a blocked bank's (docs/policies.md, "Edits and
        # redacted values").
        ("", "review"),
        # The documented pattern: the rule says what the mask means, and the edit is refused.
        ('action.params.iban == "[REDACTED]" || ', "deny"),
    ],
    ids=["unguarded-limit", "guarded"],
)
def test_a_rule_reading_a_redacted_value_with_an_edited_one(tmp_path: Path, guard, outcome):
    (tmp_path / "p.yaml").write_text(GUARDED.format(guard=guard))
    b = load_bundle(tmp_path)
    blocked = "XX76 3000 6000 0112 3456 7890 189"
    real = evaluate(b, _request(amount=5000, iban=blocked), NOW, DefaultDecision())
    assert real.outcome == "deny"  # what the edited action really is
    review = _review(b, _request(iban=blocked))  # 750 to the blocked bank: a review
    assert _edit(b, review, amount=5000).outcome == outcome
