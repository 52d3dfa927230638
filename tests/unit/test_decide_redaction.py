"""Redacted values never reach a text computed from the request (SPEC "Trust model" 3).

Texts (reasons, CEL error messages, Explain's variables) are computed from the redacted
request when the request holds a value at a `redact` path; `when` and the outcome are not.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from google.protobuf import json_format

from signoff import pb
from signoff.core import decide
from signoff.core.decide import DefaultDecision, evaluate
from signoff.core.redact import MASK
from signoff.policy import Activation, load_bundle

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
CARD = "5500-MARK(ER-0004"  # "(" makes it an invalid regular expression
PIN = 73915.125  # string() gives "73915.125"
WITHHELD = "the engine's message is withheld because it depends on a redacted value"


def bundle(
    tmp_path: Path,
    rules: str,
    redact: str = "[action.params.card_number, action.params.pin]",
    variables: str = "",
):
    text = f"name: cards\nactions: ['pay.*']\nredact: {redact}\n{variables}rules:\n{rules}"
    (tmp_path / "cards.yaml").write_text(text)
    return load_bundle(tmp_path)


def request(**params) -> pb.common.ActionRequest:
    params = {"card_number": CARD, "pin": PIN, "amount": 20.0, **params}
    doc = {"action": {"name": "pay.card", "params": params}}
    return json_format.ParseDict(doc, pb.common.ActionRequest())


def texts(ev: decide.Evaluation) -> str:
    """Every text of an evaluation that a decision, review or audit entry carries."""
    parts = [ev.reason, ev.decided_by]
    parts += [f"{m.reason} {m.error}" for m in ev.matched]
    parts += [f"{t.reason} {t.error}" for t in ev.rule_traces]
    parts += [f"{v.value} {v.error}" for v in ev.variable_traces]
    return "\n".join(parts)


def assert_no_marker(ev: decide.Evaluation) -> None:
    shown = texts(ev)
    for marker in (CARD, "MARK", "73915"):
        assert marker not in shown, shown


@pytest.fixture(params=["batch", "rule by rule"])
def path(request, monkeypatch):
    """Run each test through the policy batch and rule by rule: both must hide values."""
    if request.param == "rule by rule":
        monkeypatch.setattr(decide, "_batch_values", lambda policy, activation: None)
    return request.param


LOOKUP = """\
- name: lookup
  when: '{"5500": 1}[action.params.card_number] == 1'
  decision: allow
  reason: ok
"""
REGEX = """\
- name: regex
  when: '"abc".matches(action.params.card_number)'
  decision: allow
  reason: ok
  on_error: deny
"""
REASON = """\
- name: why
  when: action.params.amount > 10.0
  decision: review
  reviewers: finance
  reason_expr: '"card " + action.params.card_number + ", pin " + string(action.params.pin)'
"""


def test_a_failing_lookup_keyed_by_a_redacted_value_shows_the_redacted_key(tmp_path, path):
    ev = evaluate(bundle(tmp_path, LOOKUP), request(), NOW, DefaultDecision(), trace=True)
    assert ev.outcome == "review"  # on_error: review, as without redaction
    assert ev.matched[0].error == f'when: Key not found in map : "{MASK}"'
    assert_no_marker(ev)


def test_a_regex_that_fails_only_on_the_real_value_gets_a_positional_message(tmp_path, path):
    ev = evaluate(bundle(tmp_path, REGEX), request(), NOW, DefaultDecision(), trace=True)
    assert ev.outcome == "deny"  # on_error: deny still applies
    assert ev.matched[0].error == f"when: evaluation failed (rule regex, cards.yaml:5); {WITHHELD}"
    assert_no_marker(ev)


def test_reason_expr_sees_masked_values_including_through_string(tmp_path, path):
    b = bundle(tmp_path, REASON + LOOKUP.replace("lookup", "ok").replace("{", "true || {"))
    assert b.policies[0].batch is not None  # the batch computes reasons on the real request
    ev = evaluate(b, request(), NOW, DefaultDecision(), trace=True)
    assert (ev.outcome, ev.reason) == ("review", f"card {MASK}, pin {MASK}")
    assert_no_marker(ev)


def test_a_reason_expr_failing_on_a_redacted_value_shows_the_redacted_message(tmp_path, path):
    rule = REASON.replace(
        "reason_expr: '", 'reason_expr: \'string({"a": 1}[action.params.card_number]) + '
    )
    ev = evaluate(bundle(tmp_path, rule), request(), NOW, DefaultDecision(), trace=True)
    assert ev.matched[0].error == f'reason_expr: Key not found in map : "{MASK}"'
    assert_no_marker(ev)


def test_a_reason_expr_failing_only_on_the_redacted_request_keeps_the_outcome(tmp_path, path):
    # int("[REDACTED]") fails, int of the real pin works: the rule allows, on_error never
    # applies, and the reason it would have given is withheld.
    rule = """\
- name: small
  when: action.params.amount < 100.0
  decision: allow
  reason_expr: '"pin ends " + string(int(action.params.pin) % 1000)'
  on_error: deny
"""
    ev = evaluate(bundle(tmp_path, rule), request(), NOW, DefaultDecision(), trace=True)
    assert ev.outcome == "allow"
    assert not ev.matched[0].error
    assert ev.reason == (
        "rule small matched (cards.yaml:5); its reason is withheld because it depends on a "
        "redacted value"
    )
    assert_no_marker(ev)


def test_explain_masks_variables_that_depend_on_a_redacted_value(tmp_path, path):
    variables = """\
variables:
  card: action.params.card_number
  digits: size(action.params.card_number)
  fee: string(action.params.pin)
  bad: '{"a": 1}[action.params.card_number]'
  tricky: '"abc".matches(action.params.card_number)'
  amount: action.params.amount
"""
    b = bundle(tmp_path, REASON, variables=variables)
    ev = evaluate(b, request(), NOW, DefaultDecision(), trace=True)
    shown = {v.name: (v.value, v.error) for v in ev.variable_traces}
    assert shown["card"] == shown["digits"] == shown["fee"] == (MASK, "")
    assert shown["bad"] == (None, f'Key not found in map : "{MASK}"')
    assert shown["tricky"][1].endswith(WITHHELD)
    assert shown["amount"] == (20.0, "")  # not redacted: shown as it is
    assert_no_marker(ev)


def test_a_request_without_redacted_values_keeps_the_engines_messages(tmp_path, path, monkeypatch):
    # Nothing to hide: the texts are those of the real request, and nothing is re-run.
    b = bundle(tmp_path, LOOKUP + REASON, redact="[context.ssn]")
    built = []
    monkeypatch.setattr(decide, "Activation", lambda *a: built.append(a) or Activation(*a))
    ev = evaluate(b, request(), NOW, DefaultDecision(), trace=True)
    assert len(built) == 1  # no second, masked activation
    assert ev.matched[0].error == f'when: Key not found in map : "{CARD}"'
    assert ev.matched[1].reason == f"card {CARD}, pin 73915.125"


def test_redaction_changes_texts_never_outcomes(tmp_path, path):
    rules = LOOKUP + REGEX + REASON
    hidden = evaluate(bundle(tmp_path, rules), request(), NOW, DefaultDecision(), trace=True)
    plain = evaluate(bundle(tmp_path, rules, "[]"), request(), NOW, DefaultDecision(), trace=True)
    assert [(m.rule, m.decision) for m in hidden.matched] == [
        (m.rule, m.decision) for m in plain.matched
    ]
    assert (hidden.outcome, hidden.reviewer_group) == (plain.outcome, plain.reviewer_group)
    assert CARD in texts(plain)  # the marker does reach these texts without redaction
    assert_no_marker(hidden)


def test_the_type_of_a_non_bool_when_is_the_masked_ones(tmp_path, path):
    # A number where a bool belongs: "float" would tell the redacted value's kind.
    rule = "- {name: typed, when: 'dyn(action.params.%s)', decision: deny, reason: nope}\n"
    ev = evaluate(bundle(tmp_path, rule % "pin"), request(), NOW, DefaultDecision())
    assert ev.matched[0].error == "when: when evaluated to str, not bool"
    plain = evaluate(bundle(tmp_path, rule % "amount"), request(), NOW, DefaultDecision())
    assert plain.matched[0].error == "when: when evaluated to float, not bool"
