"""Decision semantics (SPEC "Decision semantics"), one behaviour per test, plus the examples."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest
from google.protobuf import json_format

from signoff import pb
from signoff.cli.policy_test_report import failure_diff
from signoff.core.decide import DefaultDecision, evaluate
from signoff.policy import load_bundle
from signoff.policytest import load_cases, run_case

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
DEFAULT = DefaultDecision()
POLICIES = Path(__file__).parents[2] / "policies"


def request(name: str = "refund.issue", **fields) -> pb.common.ActionRequest:
    fields.setdefault("action", {})
    fields["action"] = {"name": name, **fields["action"]}
    return json_format.ParseDict(fields, pb.common.ActionRequest())


def bundle_of(tmp_path: Path, **files: str):
    for rel, text in files.items():
        (tmp_path / f"{rel}.yaml").write_text(textwrap.dedent(text))
    return load_bundle(tmp_path)


def rules(*lines: str, variables: str = "") -> str:
    """A policy file with one flow-style rule per line."""
    body = "".join(f"  - {{{line}}}\n" for line in lines)
    return f"name: p{len(body)}\n{variables}rules:\n{body}"


def decide(tmp_path, policy: str, req=None, **kw):
    return evaluate(bundle_of(tmp_path, p=policy), req or request(), NOW, DEFAULT, **kw)


ALLOW = "name: ok, when: 'true', decision: allow, reason: fine"
REVIEW = "name: look, when: 'true', decision: review, reviewers: finance, reason: look"
DENY = "name: stop, when: 'true', decision: deny, reason: never"


@pytest.mark.parametrize(
    ("lines", "outcome", "rule", "decided_by"),
    [
        ([ALLOW], "allow", "ok", "every matching rule allows: rule ok"),
        ([ALLOW, REVIEW], "review", "look", "review overrides allow: rule look"),
        ([ALLOW, REVIEW, DENY], "deny", "stop", "deny overrides review and allow: rule stop"),
        ([DENY, ALLOW], "deny", "stop", "deny overrides review and allow"),
        ([REVIEW], "review", "look", "a rule requires review: rule look"),
    ],
)
def test_most_severe_match_decides(tmp_path, lines, outcome, rule, decided_by):
    ev = decide(tmp_path, rules(*lines))
    assert (ev.outcome, ev.deciding_rule.name) == (outcome, rule)
    assert ev.decided_by.startswith(decided_by)
    assert [m.rule for m in ev.matched] == [line.split(",")[0][6:] for line in lines]
    assert not ev.default_applied


def test_among_equals_the_first_in_bundle_order_decides(tmp_path):
    b = "name: b, when: 'true', decision: review, reviewers: second, reason: from b"
    (tmp_path / "a_first.yaml").write_text(rules(REVIEW.replace("finance", "first")))
    (tmp_path / "b_second.yaml").write_text(rules(b).replace("name: p", "name: q", 1))
    ev = evaluate(load_bundle(tmp_path), request(), NOW, DEFAULT)
    assert (ev.reviewer_group, ev.reason, ev.deciding_rule.file) == (
        "first",
        "look",
        "a_first.yaml",
    )
    assert ev.decided_by.endswith("the first in bundle order")


def test_reviewer_group_only_for_review(tmp_path):
    assert decide(tmp_path, rules(REVIEW, DENY)).reviewer_group == ""


@pytest.mark.parametrize(
    ("default", "group"), [(DefaultDecision(), "default"), (DefaultDecision("deny"), "")]
)
def test_no_match_gives_the_default(tmp_path, default, group):
    bundle = bundle_of(tmp_path, p=rules("name: x, when: 'false', decision: deny, reason: x"))
    ev = evaluate(bundle, request(), NOW, default)
    assert (ev.outcome, ev.reviewer_group, ev.reason) == (default.decision, group, default.reason)
    assert ev.default_applied
    assert ev.deciding_rule is None
    assert ev.matched == ()
    assert ev.decided_by == "no rule matched: default decision"


def test_unknown_action_gets_the_default(tmp_path):
    policy = "name: p\nactions: [refund.issue]\nrules:\n  - {" + DENY + "}\n"
    ev = decide(tmp_path, policy, request("email.send"))
    assert ev.default_applied
    assert ev.applicable_files == ()


@pytest.mark.parametrize(
    ("line", "outcome", "group", "effect"),
    [
        ("decision: allow, reason: x", "review", "default", "review"),
        ("decision: review, reviewers: dba, reason: x", "review", "dba", "review"),
        ("decision: allow, reason: x, on_error: deny", "deny", "", "deny"),
        ("decision: deny, reason: x, on_error: ignore", "review", "default", ""),
    ],
)
def test_a_failing_when_is_never_silently_false(tmp_path, line, outcome, group, effect):
    failing = f"name: bad, when: 'action.params.missing > 1', {line}"
    ev = decide(tmp_path, rules(failing))
    assert (ev.outcome, ev.reviewer_group) == (outcome, group)
    (match,) = ev.matched
    assert (match.rule, match.decision) == ("bad", effect)
    assert "missing" in match.error
    if effect == "":
        assert ev.default_applied  # ignored: recorded, but the default decided


def test_a_failing_reason_expr_keeps_the_rule_and_raises_it_to_review(tmp_path):
    line = "name: r, when: 'true', decision: allow, reason_expr: 'action.params.nope'"
    ev = decide(tmp_path, rules(line))
    assert ev.outcome == "review"
    assert "reason_expr" in ev.matched[0].error
    deny = line.replace("allow", "deny")
    (tmp_path / "deny").mkdir()
    assert decide(tmp_path / "deny", rules(deny)).outcome == "deny"  # deny is more than review


def test_shadow_rules_are_reported_but_never_decide(tmp_path):
    shadow = "name: s, when: 'true', decision: deny, reason: would deny, mode: shadow"
    ev = decide(tmp_path, rules(ALLOW, shadow), trace=True)
    assert ev.outcome == "allow"
    assert [(m.rule, m.shadow, m.decision) for m in ev.matched] == [
        ("ok", False, "allow"),
        ("s", True, "deny"),
    ]
    assert ev.rule_traces[1].effect == ""


def test_only_shadow_matches_give_the_default(tmp_path):
    shadow = "name: s, when: 'true', decision: allow, reason: x, mode: shadow"
    assert decide(tmp_path, rules(shadow)).default_applied


def test_reason_expr_and_now(tmp_path):
    line = (
        "name: r, when: 'now > timestamp(\"2025-01-01T00:00:00Z\")', decision: review, "
        "reviewers: f, reason_expr: '\"amount \" + string(action.params.amount)'"
    )
    ev = decide(tmp_path, rules(line), request(action={"params": {"amount": 750.0}}))
    assert ev.reason == "amount 750"


def test_numbers_compare_across_int_and_double(tmp_path):
    line = "name: r, when: 'action.params.amount > 500 && action.params.count > 2.5', "
    policy = rules(line + "decision: deny, reason: x")
    req = request(action={"params": {"amount": 750.0, "count": 3}})
    assert decide(tmp_path, policy, req).outcome == "deny"


def test_unset_resource_and_principal_are_empty_messages(tmp_path):
    line = (
        'name: r, when: \'!has(resource.attributes.tier) && !("vip" in principal.tags)'
        ' && resource.id == ""\', decision: allow, reason: x'
    )
    assert decide(tmp_path, rules(line), pb.common.ActionRequest()).outcome == "allow"


def test_variables_are_lazy(tmp_path):
    variables = "variables:\n  boom: action.params.missing > 1\n"
    line = "name: r, when: 'false && vars.boom', decision: deny, reason: x"
    ev = decide(tmp_path, rules(line, variables=variables), trace=True)
    assert ev.matched == ()
    assert ev.default_applied
    (var,) = ev.variable_traces
    assert (var.name, var.value) == ("boom", None)
    assert "missing" in var.error


def test_trace_reports_every_rule_and_variable(tmp_path):
    variables = "variables:\n  amount: double(action.params.amount)\n  at: now\n"
    never = "name: never, when: 'vars.amount < 0', decision: deny, reason: x"
    ev = decide(
        tmp_path,
        rules(ALLOW, never, variables=variables),
        request(action={"params": {"amount": 5}}),
        trace=True,
    )
    assert [(t.rule, t.matched, t.effect) for t in ev.rule_traces] == [
        ("ok", True, "allow"),
        ("never", False, ""),
    ]
    assert ev.rule_traces[1].when == "vars.amount < 0"
    values = {v.name: v.value for v in ev.variable_traces}
    assert values == {"amount": 5.0, "at": "2025-06-01T12:00:00Z"}


def test_without_trace_nothing_is_traced(tmp_path):
    ev = decide(tmp_path, rules(ALLOW))
    assert ev.rule_traces == ()
    assert ev.variable_traces == ()


def test_redact_paths_come_from_applicable_policies(tmp_path):
    policy = rules(ALLOW) + "redact: [action.params.card, context.ssn]\n"
    assert decide(tmp_path, policy).redact == ("action.params.card", "context.ssn")


def test_deciding_rule_carries_review_settings(tmp_path):
    line = REVIEW + ", approvals: 2, timeout: 2h, on_timeout: 'escalate:leads'"
    rule = decide(tmp_path, rules(line)).deciding_rule
    assert (rule.approvals, rule.timeout, rule.on_timeout) == (
        2,
        dt.timedelta(hours=2),
        "escalate:leads",
    )


# --- the example policies and their *_test.yaml cases --------------------------------


EXAMPLE_FILES = load_cases(POLICIES)


def test_example_case_files_load():
    assert EXAMPLE_FILES
    assert [str(e) for f in EXAMPLE_FILES for e in f.errors] == []


@pytest.fixture(scope="module")
def example_bundle():
    return load_bundle(POLICIES)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, id=f"{Path(f.file).stem}: {case.name}")
        for f in EXAMPLE_FILES
        for case in f.cases
    ],
)
def test_example_policy_cases(example_bundle, case):
    result = run_case(example_bundle, case, DEFAULT)
    assert result.passed, failure_diff(str(POLICIES), result)
