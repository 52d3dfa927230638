"""Policy test case files: loading with positions, every bad input, and the runner."""

from __future__ import annotations

import datetime as dt
import re
import textwrap
from pathlib import Path

import pytest

from signoff.core.decide import DefaultDecision
from signoff.policy import load_bundle
from signoff.policytest import (
    DEFAULT_NOW,
    load_case_file,
    load_cases,
    run_all,
    run_case,
    uncovered,
)
from signoff.policytest.load import parse_error_path

POLICY = """\
name: p
actions: ["refund.*"]
rules:
  - name: big
    when: double(action.params.amount) > 500.0
    decision: review
    reviewers: finance
    reason: big refund
  - name: small
    when: double(action.params.amount) <= 500.0
    decision: allow
    reason: small refund
  - name: new-year
    when: now > timestamp("2030-01-01T00:00:00Z")
    decision: deny
    reason: the future
  - name: try-strict
    when: double(action.params.amount) > 5000.0
    decision: deny
    reason: would deny
    mode: shadow
"""


def load(text: str):
    return load_case_file("t_test.yaml", textwrap.dedent(text).encode())


def errors(text: str) -> list[str]:
    result = load(text)
    assert result.cases == ()
    return [str(e) for e in result.errors]


def case(name: str, request: str, expect: str, extra: str = "") -> str:
    return f"  - name: {name}\n    request: {request}\n    expect: {expect}\n{extra}"


REFUND = "{action: {name: refund.issue, params: {amount: 10}}}"


@pytest.fixture
def bundle(tmp_path: Path):
    (tmp_path / "p.yaml").write_text(POLICY)
    return load_bundle(tmp_path)


# --- bad inputs, each at its file:line:column -----------------------------------------


def test_a_misspelled_expect_key_is_one_error_with_a_suggestion():
    text = "cases:\n" + case("typo", REFUND, "{outcom: allow}")
    assert errors(text) == [
        "t_test.yaml:4:14: case 'typo': unknown key 'expect.outcom' (did you mean 'outcome'?)"
    ]


def test_an_unknown_key_without_a_near_name_and_a_missing_key():
    text = "cases:\n" + case("c", "{action: {name: a}}", "{outcome: allow, colour: red}")
    assert errors(text) == [
        "t_test.yaml:4:30: case 'c': unknown key 'expect.colour'",
    ]
    assert errors("cases:\n  - name: c\n    expect: {outcome: allow}\n") == [
        "t_test.yaml:2:5: case 'c': missing required key 'request'"
    ]


@pytest.mark.parametrize(
    ("request_yaml", "message"),
    [
        (
            '{action: {name: ""}}',
            "4:30: case 'c': request.action.name: is required, e.g. 'refund.issue'",
        ),
        ("{action: {params: {}}}", "4:23: case 'c': request.action.name: is required"),
        (
            "{action: {name: 'a b'}}",
            "4:30: case 'c': request.action.name: 'a b' is not a dotted name",
        ),
        (
            "{actoin: {name: x}}",
            "4:15: case 'c': request.actoin: unknown field; known fields: requestId, action",
        ),
        (
            "{action: {name: x, prams: {}}}",
            "4:33: case 'c': request.action.prams: unknown field; known fields: name, params",
        ),
        (
            "{action: {name: x}, principal: {tags: vip}}",
            "4:52: case 'c': request.principal.tags: expected a list, got vip",
        ),
        (
            "{action: {name: x}, principal: {kind: robot}}",
            "4:52: case 'c': request.principal.kind: 'robot' is not one of agent, user, service",
        ),
        (
            "{action: {name: x}, principal: {onBehalfOf: 7}}",
            "4:58: case 'c': request.principal.onBehalfOf: expected a string, got int",
        ),
        (
            "{action: {name: x}, context: {day: 2025-01-01}}",
            "4:49: case 'c': request.context.day: 2025-01-01 is a YAML datetime.date",
        ),
        (
            "{action: {name: x, params: [1]}}",
            "4:41: case 'c': request.action.params: expected a mapping, got [1]",
        ),
        ("[1, 2]", "4:14: case 'c': request: Input should be a valid dictionary"),
    ],
)
def test_an_invalid_request_is_reported_where_it_is_written(request_yaml, message):
    text = "cases:\n  - name: c\n    expect: {outcome: allow}\n" + f"    request: {request_yaml}\n"
    (error,) = errors(text)
    assert error.startswith(f"t_test.yaml:{message}"), error


def test_duplicate_case_names():
    text = "cases:\n" + case("same", REFUND, "{outcome: allow}") * 2
    assert errors(text) == ["t_test.yaml:5:11: case 'same': duplicate case name (first at line 2)"]


def test_every_error_of_a_file_is_reported_in_one_run():
    text = "cases:\n" + case("a", "{action: {}}", "{outcom: allow}") + case("a", REFUND, "{}")
    assert [e.split(": ", 1)[0] for e in errors(text)] == [
        "t_test.yaml:3:23",
        "t_test.yaml:4:14",
        "t_test.yaml:5:11",
        "t_test.yaml:7:13",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "t_test.yaml:1:1: empty file: a case file needs a `cases:` list"),
        ("- a\n", "t_test.yaml:1:1: a case file is a YAML mapping with a `cases:` list"),
        ("cases: [\n", "t_test.yaml:2:1: invalid YAML: did not find expected node content"),
        ("case: []\n", "t_test.yaml:1:1: unknown key 'case' (did you mean 'cases'?)"),
        ("cases: {}\n", "t_test.yaml:1:8: cases: Input should be a valid list"),
        ("cases: []\ncases: []\n", "t_test.yaml:2:1: duplicate key 'cases'"),
        (
            "default: {decision: allow}\ncases: []\n",
            "t_test.yaml:1:21: default.decision: Input should be 'review' or 'deny'",
        ),
        (
            "cases:\n" + case("c", REFUND, "{outcome: allow}", "    now: 2025-06-01T12:00:00\n"),
            "t_test.yaml:5:10: case 'c': now: Input should have timezone info",
        ),
        (
            "cases:\n" + case("c", REFUND, "{outcome: allow, reviewer_group: no}"),
            "(YAML reads yes/no/on/off/true/false as booleans: quote the value)",
        ),
    ],
)
def test_broken_files(text, message):
    (error,) = errors(text)
    assert message in error, error


@pytest.mark.parametrize(
    ("message", "path", "readable"),
    [
        (
            "Failed to parse a field: Failed to parse b field: repeated field b must be in [] "
            "which is x at ActionRequest.a..",
            ("a", "b"),
            "expected a list, got x",
        ),
        (
            "Failed to parse c field: Value 1 has unexpected type <class 'datetime.time'> "
            "at ActionRequest.c.d.e..",
            ("c", "d", "e"),
            "1 is a YAML datetime.time, not a JSON value: quote it ('1')",
        ),
        ("something new.", (), "something new"),
    ],
)
def test_protobuf_parse_errors_become_a_field_path(message, path, readable):
    assert parse_error_path(message) == (path, readable)


def test_a_broken_file_does_not_stop_the_others(tmp_path, bundle):
    (tmp_path / "a_test.yaml").write_text("cases:\n" + case("bad", "{}", "{outcome: allow}"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b_test.yaml").write_text(
        "cases:\n" + case("ok", REFUND, "{outcome: allow}")
    )
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c_test.yaml").write_text("nonsense: [")
    files = load_cases(tmp_path)
    assert [(f.file, len(f.cases), len(f.errors)) for f in files] == [
        ("a_test.yaml", 0, 1),
        ("sub/b_test.yaml", 1, 0),
    ]
    run = run_all(bundle, files)
    assert (len(run.results), len(run.failed), run.errors, run.ok) == (1, 0, 1, False)


# --- running cases ---------------------------------------------------------------------


def run_one(bundle, text: str):
    loaded = load(text)
    assert loaded.errors == ()
    return [run_case(bundle, c) for c in loaded.cases]


@pytest.mark.parametrize(
    ("expect", "mismatches"),
    [
        ("{outcome: allow, rule: small, reason_contains: small}", []),
        ("{outcome: review}", [("outcome", "review", "allow")]),
        ("{outcome: allow, rule: big}", [("rule", "big", "small")]),
        ("{outcome: allow, rule: ''}", [("rule", "(default)", "small")]),
        ("{outcome: allow, reviewer_group: finance}", [("reviewer_group", "finance", "")]),
        (
            "{outcome: allow, reason_contains: large}",
            [("reason", "contains 'large'", "'small refund'")],
        ),
        ("{outcome: allow, shadow: [try-strict]}", [("shadow", "try-strict", "(none)")]),
    ],
)
def test_expectations_are_checked_only_when_given(bundle, expect, mismatches):
    (result,) = run_one(bundle, "cases:\n" + case("c", REFUND, expect))
    assert [(m.field, m.expected, m.got) for m in result.mismatches] == mismatches
    assert result.passed == (not mismatches)


def test_shadow_matches_are_checked(bundle):
    req = "{action: {name: refund.issue, params: {amount: 6000}}}"
    expect = "{outcome: review, reviewer_group: finance, rule: big, shadow: [try-strict]}"
    (result,) = run_one(bundle, "cases:\n" + case("c", req, expect))
    assert result.passed


def test_the_file_default_and_the_fixed_time(bundle):
    text = (
        "default: {decision: deny}\nnow: 2031-01-01T00:00:00Z\ncases:\n"
        + case("default", "{action: {name: other}}", "{outcome: deny, rule: ''}")
        + case("file now", REFUND, "{outcome: deny, rule: new-year}")
        + case("case now", REFUND, "{outcome: allow}", "    now: 2025-01-01T00:00:00+02:00\n")
    )
    results = run_one(bundle, text)
    assert [r.mismatches for r in results] == [(), (), ()]
    assert results[2].case.now == dt.datetime(2024, 12, 31, 22, tzinfo=dt.UTC)


def test_without_now_cases_run_at_a_fixed_instant(bundle):
    (result,) = run_one(bundle, "cases:\n" + case("c", REFUND, "{outcome: allow}"))
    assert result.case.now is None
    assert DEFAULT_NOW.year < 2030  # the new-year rule did not fire
    explicit = DefaultDecision("deny", "", "nothing")
    other = load("cases:\n" + case("c", "{action: {name: x}}", "{outcome: deny}")).cases[0]
    assert run_case(bundle, other, explicit).evaluation.reason == "nothing"


def test_run_pattern_selects_cases_by_name(bundle):
    text = (
        "cases:\n"
        + case("alpha one", REFUND, "{outcome: allow}")
        + case("beta", REFUND, "{outcome: deny}")
    )
    run = run_all(bundle, [load(text)], re.compile("alpha"))
    assert [r.case.name for r in run.results] == ["alpha one"]
    assert run.ok
    assert not run_all(bundle, [load(text)], re.compile("gamma")).ok  # nothing ran


def test_coverage_lists_unmatched_rules_shadow_included(bundle):
    (result,) = run_one(bundle, "cases:\n" + case("c", REFUND, "{outcome: allow}"))
    assert [(u.rule, u.line, u.shadow) for u in uncovered(bundle, [result])] == [
        ("big", 4, False),
        ("new-year", 13, False),
        ("try-strict", 17, True),
    ]


def test_a_rule_that_only_failed_to_evaluate_is_not_covered(bundle):
    req = "{action: {name: refund.issue}}"
    (result,) = run_one(bundle, "cases:\n" + case("c", req, "{outcome: review}"))
    assert {"big", "small", "try-strict"} <= {u.rule for u in uncovered(bundle, [result])}
