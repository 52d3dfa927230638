"""`signoff policy test DIR` as a policy author's CI runs it: a real process, exit codes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .conftest import EXAMPLE_POLICIES

SIGNOFF = [sys.executable, "-m", "signoff.cli.main"]
SUMMARY = re.compile(r"^(\d+) passed(, (\d+) failed)?(, (\d+) broken files?)? in \d+\.\d\ds$", re.M)

LARGE = """\
  - name: large refund wrongly expected to pass
    request:
      action: {name: refund.issue, params: {amount: 750}}
    expect: {outcome: allow, rule: small-refund}
"""
SMALL = """\
  - name: small refund
    request:
      action: {name: refund.issue, params: {amount: 10}}
    expect: {outcome: allow}
"""
FAILING = "cases:\n" + LARGE + SMALL


def signoff(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SIGNOFF, "policy", "test", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def refunds(tmp_path: Path) -> Path:
    """A copy of the refunds policy alone, with no cases yet."""
    root = tmp_path / "policies"
    root.mkdir()
    shutil.copy(EXAMPLE_POLICIES / "refunds.yaml", root)
    return root


def test_the_shipped_examples_pass():
    done = signoff(EXAMPLE_POLICIES)
    assert done.returncode == 0, done.stdout + done.stderr
    match = SUMMARY.search(done.stdout)
    assert match, done.stdout
    assert int(match.group(1)) >= 20
    assert match.group(2) is None
    assert "PASS" in done.stdout
    assert "FAIL" not in done.stdout
    assert "refunds_test.yaml" in done.stdout


def test_a_failing_case_shows_the_diff_and_exits_1(refunds):
    (refunds / "refunds_test.yaml").write_text(FAILING)
    done = signoff(refunds)
    assert done.returncode == 1
    out = done.stdout
    assert "1 passed, 1 failed in" in out
    assert f"FAIL {refunds}/refunds_test.yaml:2: large refund wrongly expected to pass" in out
    assert "  - outcome: allow\n  + outcome: review\n" in out
    assert f"  + rule: large-refund ({refunds}/refunds.yaml:35)" in out
    assert re.search(rf"review +large-refund +{re.escape(str(refunds))}/refunds\.yaml:35", out)


def test_junit_xml_parses_and_counts_failures(refunds, tmp_path):
    (refunds / "refunds_test.yaml").write_text(FAILING)
    (refunds / "more").mkdir()
    (refunds / "more" / "x_test.yaml").write_text("cases:\n" + LARGE)
    report = tmp_path / "junit.xml"
    assert signoff(refunds, "--junit", report).returncode == 1
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "2", "0")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        f"{refunds}/more/x_test.yaml",
        f"{refunds}/refunds_test.yaml",
    ]
    assert [(s.get("tests"), s.get("failures")) for s in suites] == [("1", "1"), ("2", "1")]
    failure = suites[1].find("testcase/failure")
    assert failure is not None
    assert failure.get("message") == "outcome: expected allow, got review"
    assert "+ outcome: review" in (failure.text or "")


def test_json_report(refunds):
    (refunds / "refunds_test.yaml").write_text(FAILING)
    done = signoff(refunds, "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["ok"] is False
    assert report["summary"]["passed"] == 1
    assert report["summary"]["failed"] == 1
    (file,) = report["files"]
    bad = file["cases"][0]
    assert (bad["passed"], bad["got"]["outcome"], bad["got"]["rule"]) == (
        False,
        "review",
        "large-refund",
    )
    assert bad["mismatches"][0] == {"field": "outcome", "expected": "allow", "got": "review"}
    assert json.loads(signoff(EXAMPLE_POLICIES, "--json").stdout)["ok"] is True


def test_coverage_lists_unmatched_rules(refunds):
    (refunds / "refunds_test.yaml").write_text(FAILING)
    done = signoff(refunds, "--coverage")
    assert f"  {refunds}/refunds.yaml:14 refund-over-hard-limit\n" in done.stdout
    assert f"  {refunds}/refunds.yaml:49 very-large-refund-two-approvers (shadow)" in done.stdout
    assert "small-refund\n" not in done.stdout.split("coverage:")[1]
    assert "coverage: every rule (18)" in signoff(EXAMPLE_POLICIES, "--coverage").stdout


def test_bad_case_files_are_errors_with_positions_and_the_others_still_run(refunds):
    (refunds / "a_test.yaml").write_text(
        "cases:\n"
        "  - name: typo\n"
        "    request: {action: {name: refund.issue}}\n"
        "    expect: {outcom: allow}\n"
        "  - name: empty action\n"
        "    request: {action: {name: ''}}\n"
        "    expect: {outcome: allow}\n"
        "  - name: typo\n"
        "    request: {action: {name: refund.issue}, principle: {id: x}}\n"
        "    expect: {outcome: review}\n"
    )
    (refunds / "b_test.yaml").write_text("cases:\n" + SMALL)
    done = signoff(refunds)
    assert done.returncode == 1
    a = f"{refunds}/a_test.yaml"
    assert done.stderr.splitlines() == [
        f"{a}:4:14: case 'typo': unknown key 'expect.outcom' (did you mean 'outcome'?)",
        f"{a}:6:30: case 'empty action': request.action.name: is required, e.g. 'refund.issue'",
        f"{a}:8:11: case 'typo': duplicate case name (first at line 2)",
        f"{a}:9:45: case 'typo': request.principle: unknown field; known fields: requestId, "
        "action, principal, resource, context, justification",
    ]
    assert "1 passed, 1 broken file in" in done.stdout


def test_a_broken_policy_directory_shows_file_line_column(refunds):
    (refunds / "refunds_test.yaml").write_text(FAILING)
    text = (refunds / "refunds.yaml").read_text()
    (refunds / "refunds.yaml").write_text(text.replace("vars.amount > 500", "vars.amont > 500"))
    done = signoff(refunds)
    assert done.returncode == 1
    assert re.search(
        rf"^{re.escape(str(refunds))}/refunds\.yaml:\d+:\d+: large-refund: .*amont",
        done.stderr,
        re.M,
    ), done.stderr
    assert "no case was run" in done.stderr


def test_run_selects_cases_and_bad_patterns_are_usage_errors(refunds):
    (refunds / "refunds_test.yaml").write_text(FAILING)
    assert signoff(refunds, "--run", "^small").returncode == 0
    assert signoff(refunds, "--run", "(").returncode == 2
    nothing = signoff(refunds, "--run", "no such case")
    assert nothing.returncode == 1
    assert "no test cases matching --run" in nothing.stderr
