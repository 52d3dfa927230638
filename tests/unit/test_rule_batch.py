"""A policy's rules evaluated in one program (the batch) decide exactly as rule by rule."""

from __future__ import annotations

import dataclasses
import datetime as dt
import textwrap
from pathlib import Path

import pytest
from google.protobuf import json_format

from signoff import pb
from signoff.core.decide import DefaultDecision, evaluate
from signoff.policy import Activation, cel, load_bundle
from signoff.policytest import load_cases

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
DEFAULT = DefaultDecision()
POLICIES = Path(__file__).parents[2] / "policies"


def without_batches(bundle):
    """The same bundle with every batch removed: the rule-by-rule path."""
    policies = tuple(dataclasses.replace(p, batch=None) for p in bundle.policies)
    index = type(bundle.index)(policies)
    return dataclasses.replace(bundle, policies=policies, index=index)


def both(bundle, req, trace=False):
    fast = evaluate(bundle, req, NOW, DEFAULT, trace=trace)
    slow = evaluate(without_batches(bundle), req, NOW, DEFAULT, trace=trace)
    return fast, slow


def request(**fields) -> pb.common.ActionRequest:
    return json_format.ParseDict(fields, pb.common.ActionRequest())


def bundle_of(tmp_path: Path, text: str):
    (tmp_path / "p.yaml").write_text(textwrap.dedent(text))
    return load_bundle(tmp_path)


def test_example_policies_have_batches():
    bundle = load_bundle(POLICIES)
    assert all(p.batch is not None for p in bundle.policies)
    refunds = bundle.policies_for("refund.issue")[0]
    assert refunds.batch is not None
    # Rules with a string reason_expr get their reason from the batch.
    assert refunds.batch.with_reason == tuple(r.reason_program is not None for r in refunds.rules)


@pytest.mark.parametrize("trace", [False, True])
def test_example_cases_decide_the_same_with_and_without_batches(trace):
    bundle = load_bundle(POLICIES)
    cases = [case for f in load_cases(POLICIES) for case in f.cases]
    assert cases
    for case in cases:
        fast, slow = both(bundle, case.request, trace)
        assert fast == slow, case.name


POLICY = """\
    name: p
    actions: ["x"]
    rules:
      - name: amount
        when: double(action.params.amount) > 10.0
        decision: review
        reviewers: finance
        reason_expr: '"amount " + string(action.params.amount)'
      - name: flag
        when: context.flag
        decision: deny
        reason: flagged
      - name: ratio
        when: 1.0 / double(action.params.amount) > 0.5
        decision: allow
        reason: small
        on_error: ignore
      - name: items
        when: action.params.items.map(i, i * 2.0).exists(i, i > 4.0)
        decision: review
        reviewers: ops
        reason: items
    """


@pytest.mark.parametrize(
    "fields",
    [
        # Everything evaluates: the batch decides.
        {
            "action": {"name": "x", "params": {"amount": 20, "items": [1]}},
            "context": {"flag": True},
        },
        {
            "action": {"name": "x", "params": {"amount": 1, "items": [3]}},
            "context": {"flag": False},
        },
        # A `when` fails (missing key, non-bool, list too long for map): rule by rule.
        {"action": {"name": "x", "params": {"amount": 20, "items": []}}},
        {"action": {"name": "x", "params": {"amount": 20, "items": []}}, "context": {"flag": "y"}},
        {
            "action": {"name": "x", "params": {"amount": 0, "items": list(range(1001))}},
            "context": {"flag": False},
        },
        # The reason_expr of a match fails: rule by rule.
        {"action": {"name": "x", "params": {"amount": "a", "items": []}}, "context": {}},
    ],
)
@pytest.mark.parametrize("trace", [False, True])
def test_failures_fall_back_to_rule_by_rule(tmp_path, fields, trace):
    bundle = bundle_of(tmp_path, POLICY)
    assert bundle.policies[0].batch is not None
    fast, slow = both(bundle, request(**fields), trace)
    assert fast == slow


def test_a_matched_empty_reason_still_matches(tmp_path):
    bundle = bundle_of(
        tmp_path,
        """\
        name: p
        rules:
          - {name: a, when: 'true', decision: deny, reason_expr: '""'}
          - {name: b, when: 'false', decision: allow, reason: never}
        """,
    )
    fast, slow = both(bundle, request(action={"name": "x"}))
    assert fast == slow
    assert fast.outcome == "deny"
    assert fast.reason == ""


def test_a_single_rule_without_reason_expr_has_no_batch(tmp_path):
    bundle = bundle_of(
        tmp_path, "name: p\nrules:\n  - {name: a, when: 'true', decision: allow, reason: ok}\n"
    )
    assert bundle.policies[0].batch is None


def test_a_batch_reads_the_request_as_one_variable():
    text = 'has(context.x) && action.params.y > 1 && "action" == resource.id && r.principal'
    assert cel._whole_request(text) == (
        "has(__request.context.x) && __request.action.params.y > 1 && "
        '"action" == __request.resource.id && r.principal'
    )


def test_a_macro_binding_a_variable_name_gets_no_batch_and_still_decides(tmp_path):
    bundle = bundle_of(
        tmp_path,
        """\
        name: p
        rules:
          - name: a
            when: 'principal.tags.exists(context, context == "vip")'
            decision: deny
            reason: vip
          - {name: b, when: 'true', decision: allow, reason: ok}
        """,
    )
    assert bundle.policies[0].batch is None
    ev = evaluate(bundle, request(action={"name": "x"}, principal={"tags": ["vip"]}), NOW, DEFAULT)
    assert (ev.outcome, ev.reason) == ("deny", "vip")


def test_a_batch_needs_no_engine_activation():
    refunds = load_bundle(POLICIES).policies_for("refund.issue")[0]
    req = request(action={"name": "refund.issue", "params": {"amount": 5}})
    activation = Activation(req, NOW)
    assert refunds.batch is not None
    assert refunds.batch.program.eval(activation)[-2:] == [True, False]
    assert activation._cel is None  # built on first use, by a rule evaluated on its own
    assert cel.compile("action.name == 'refund.issue'").eval(activation) is True
