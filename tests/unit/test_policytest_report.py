"""Rendering a policy test run: summary, diff, JUnit XML for CI, JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from signoff.cli.policy_test_junit import bundle_error_xml, junit_xml
from signoff.cli.policy_test_report import failure_diff, json_report, summary_line
from signoff.policy import load_bundle
from signoff.policytest import load_case_file, run_all, uncovered

POLICY = """\
name: p
rules:
  - name: big
    when: double(action.params.amount) > 500.0
    decision: review
    reviewers: finance
    reason: big refund
  - name: maybe
    when: double(action.params.amount) > 5000.0
    decision: deny
    reason: would deny
    mode: shadow
"""
CASES = """\
cases:
  - name: passes
    request: {action: {name: r, params: {amount: 600}}}
    expect: {outcome: review, reviewer_group: finance}
  - name: fails
    request: {action: {name: r, params: {amount: 600}}}
    expect: {outcome: deny, rule: big}
"""


def ticks():
    t = iter(range(1000))
    return lambda: next(t) / 1000


@pytest.fixture
def run(tmp_path: Path):
    (tmp_path / "p.yaml").write_text(POLICY)
    bundle = load_bundle(tmp_path)
    broken = load_case_file("sub/broken_test.yaml", b"cases: [{name: x}]\n")
    good = load_case_file("a_test.yaml", CASES.encode())
    return bundle, run_all(bundle, [good, broken], timer=ticks())


def test_summary_line(run):
    assert summary_line(run[1]) == "1 passed, 1 failed, 1 broken file in 0.01s"


def test_failure_diff_marks_expected_and_got(run):
    diff = failure_diff("pol", run[1].failed[0])
    assert diff.splitlines() == [
        "FAIL pol/a_test.yaml:5: fails  (- expected, + got)",
        "  - outcome: deny",
        "  + outcome: review",
        "    reason: 'big refund'",
        "    decided by: a rule requires review: rule big (pol/p.yaml:3)",
        "    matched rules:",
        "      review big  pol/p.yaml:3",
    ]


def test_junit_counts_failures_and_reports_a_broken_file_as_an_error(run):
    root = ET.fromstring(ET.tostring(junit_xml("pol", run[1]).getroot()))
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "1")
    good, broken = root.findall("testsuite")
    assert [c.get("name") for c in good.findall("testcase")] == ["passes", "fails"]
    assert good.findall("testcase")[0].get("classname") == "a_test"
    assert good.find("testcase/failure").get("message") == "outcome: expected deny, got review"
    error = broken.find("testcase/error")
    assert (broken.get("errors"), broken.find("testcase").get("classname")) == (
        "1",
        "sub.broken_test",
    )
    assert "pol/sub/broken_test.yaml:1:9: case 'x': missing required key 'request'" in error.text


def test_a_rejected_bundle_is_one_errored_testcase():
    root = bundle_error_xml("pol", ["pol/p.yaml:3:11: big: bad"]).getroot()
    assert root.get("errors") == "1"
    assert root.find("testsuite/testcase/error").text == "pol/p.yaml:3:11: big: bad"


def test_json_report_is_json_with_coverage(run):
    bundle, result = run
    report = json_report("pol", result, bundle.version, uncovered(bundle, result.results), 2)
    report = json.loads(json.dumps(report))
    assert report["summary"] | {"seconds": 0} == {
        "passed": 1,
        "failed": 1,
        "broken_files": 1,
        "seconds": 0,
    }
    assert report["coverage"]["unmatched"] == [
        {"file": "pol/p.yaml", "line": 8, "policy": "p", "rule": "maybe", "shadow": True}
    ]
    assert report["files"][1]["errors"][0].startswith("pol/sub/broken_test.yaml:1:9:")
    assert report["files"][0]["cases"][1]["got"]["rule_location"] == "pol/p.yaml:3"
