"""Render a test run: the pass/fail table, failure diffs, summary, coverage and JSON.

Paths in the output are the directory as the user typed it joined with the file's relative
path, so `file:line` can be clicked in an editor or a CI log.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from signoff.cli.output import table, truncate
from signoff.core.decide import Evaluation
from signoff.policytest.load import CaseError
from signoff.policytest.model import Expect
from signoff.policytest.run import CaseResult, RunResult, UncoveredRule, rule_matched

CASE_WIDTH = 56


def at(root: str, rel: str) -> str:
    """`rel` (relative to the tested directory) as the user should see it."""
    return f"{root.rstrip('/')}/{rel}" if root else rel


def error_line(root: str, error: CaseError) -> str:
    """A case-file error with the directory prefixed to its path."""
    return str(dataclasses.replace(error, file=at(root, error.file)))


def results_table(run: RunResult) -> str:
    """One row per case run: result, file, case, expected, got, time."""
    rows = [
        (
            "PASS" if r.passed else "FAIL",
            f"{r.case.file}:{r.case.line}",
            truncate(r.case.name, CASE_WIDTH),
            expected_text(r.case.expect),
            got_text(r.evaluation),
            f"{r.seconds * 1000:.1f}ms",
        )
        for r in run.results
    ]
    return table(("result", "file", "case", "expected", "got", "time"), rows)


def expected_text(expect: Expect) -> str:
    """The expectation in a few words: `review(finance) large-refund`."""
    text = expect.outcome
    if expect.reviewer_group is not None:
        text += f"({expect.reviewer_group})"
    if expect.rule is not None:
        text += f" {expect.rule or '(default)'}"
    return text


def got_text(ev: Evaluation) -> str:
    """The decision in the same few words."""
    text = ev.outcome + (f"({ev.reviewer_group})" if ev.reviewer_group else "")
    return text + f" {ev.deciding_rule.name if ev.deciding_rule else '(default)'}"


def failure_diff(root: str, result: CaseResult) -> str:
    """What was expected (-) against what was decided (+), then every rule that matched."""
    case, ev = result.case, result.evaluation
    lines = [f"FAIL {at(root, case.file)}:{case.line}: {case.name}  (- expected, + got)"]
    rule = ev.deciding_rule
    for m in result.mismatches:
        got = m.got
        if m.field == "rule" and rule is not None:
            got += f" ({at(root, rule.file)}:{rule.line})"
        lines += [f"  - {m.field}: {m.expected}", f"  + {m.field}: {got}"]
    if all(m.field != "reason" for m in result.mismatches):
        lines.append(f"    reason: {ev.reason!r}")
    decided = ev.decided_by
    if rule is not None:
        # decided_by names the rule's file relative to the bundle; say where it really is.
        decided = decided.replace(f"({rule.file}:", f"({at(root, rule.file)}:")
    lines.append(f"    decided by: {decided}")
    if not ev.matched:
        lines.append("    matched rules: none")
        return "\n".join(lines)
    lines.append("    matched rules:")
    width = max(len(m.rule) for m in ev.matched)
    for m in ev.matched:
        note = " (shadow)" if m.shadow else ""
        note += f" error: {m.error}" if m.error else ""
        where = f"{at(root, m.file)}:{m.line}"
        lines.append(f"      {m.decision or '-':<6} {m.rule:<{width}}  {where}{note}")
    return "\n".join(lines)


def summary_line(run: RunResult) -> str:
    """`12 passed, 1 failed, 1 broken file in 0.03s`."""
    parts = [f"{len(run.results) - len(run.failed)} passed"]
    if run.failed:
        parts.append(f"{len(run.failed)} failed")
    if run.errors:
        parts.append(f"{run.errors} broken file" + ("s" if run.errors > 1 else ""))
    return ", ".join(parts) + f" in {run.seconds:.2f}s"


def coverage_text(root: str, rules: list[UncoveredRule], total: int) -> str:
    """The rules no case matched, one per line as `file:line rule`."""
    if not rules:
        return f"coverage: every rule ({total}) was matched by a case"
    lines = [f"coverage: {len(rules)} of {total} rule(s) matched by no case:"]
    for r in rules:
        mark = " (shadow)" if r.shadow else ""
        lines.append(f"  {at(root, r.file)}:{r.line} {r.rule}{mark}")
    return "\n".join(lines)


def json_report(
    root: str,
    run: RunResult,
    version: str,
    coverage: list[UncoveredRule] | None,
    total_rules: int,
) -> dict[str, Any]:
    """The run as JSON-like data, one entry per case file."""
    by_file: dict[str, list[CaseResult]] = {}
    for r in run.results:
        by_file.setdefault(r.case.file, []).append(r)
    report: dict[str, Any] = {
        "directory": root,
        "bundle_version": version,
        "ok": run.ok,
        "summary": {
            "passed": len(run.results) - len(run.failed),
            "failed": len(run.failed),
            "broken_files": run.errors,
            "seconds": round(run.seconds, 6),
        },
        "files": [
            {
                "file": at(root, f.file),
                "errors": [error_line(root, e) for e in f.errors],
                "cases": [_case_json(root, r) for r in by_file.get(f.file, [])],
            }
            for f in run.files
        ],
    }
    if coverage is not None:
        report["coverage"] = {
            "rules": total_rules,
            "unmatched": [
                {"file": at(root, r.file), "line": r.line, "policy": r.policy, "rule": r.rule}
                | {"shadow": r.shadow}
                for r in coverage
            ],
        }
    return report


def _case_json(root: str, r: CaseResult) -> dict[str, Any]:
    ev = r.evaluation
    rule = ev.deciding_rule
    return {
        "name": r.case.name,
        "line": r.case.line,
        "passed": r.passed,
        "seconds": round(r.seconds, 6),
        "expected": r.case.expect.model_dump(exclude_none=True),
        "got": {
            "outcome": ev.outcome,
            "reviewer_group": ev.reviewer_group,
            "rule": rule.name if rule else "",
            "rule_location": f"{at(root, rule.file)}:{rule.line}" if rule else "",
            "reason": ev.reason,
            "decided_by": ev.decided_by,
            "matched": [
                {
                    "rule": m.rule,
                    "location": f"{at(root, m.file)}:{m.line}",
                    "effect": m.decision,
                    "shadow": m.shadow,
                    "when_true": rule_matched(m),
                    "error": m.error,
                }
                for m in ev.matched
            ],
        },
        "mismatches": [
            {"field": m.field, "expected": m.expected, "got": m.got} for m in r.mismatches
        ],
    }
