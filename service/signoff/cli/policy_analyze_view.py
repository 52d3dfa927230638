"""What `policy analyze` prints: a table, JSON, JUnit XML, counterexamples as test cases."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

import yaml

from signoff.cli.output import table, truncate
from signoff.cli.policy_test_report import at

if TYPE_CHECKING:
    from signoff.analysis.check import Analysis, InvariantResult


def counterexample_case(result: InvariantResult) -> str:
    """The counterexample as a case to paste into a `*_test.yaml` file."""
    ev = result.evaluation
    expect: dict[str, Any] = {"outcome": ev.outcome if ev else "?"}
    if ev is not None and ev.reviewer_group:
        expect["reviewer_group"] = ev.reviewer_group
    if ev is not None:
        expect["rule"] = ev.deciding_rule.name if ev.deciding_rule else ""
    case = {
        "name": f"counterexample: {result.invariant.name}",
        "request": result.counterexample,
        "expect": expect,
    }
    return yaml.safe_dump([case], sort_keys=False, allow_unicode=True).rstrip()


def analysis_table(root: str, analysis: Analysis) -> str:
    """One row per finding and per invariant."""
    rows = [
        (
            f.kind.upper(),
            f"{at(root, f.file)}:{f.line}",
            f"rule {f.rule}" if f.rule else f"policy {f.policy}",
            f.message,
        )
        for f in analysis.findings
    ]
    for r in analysis.invariants:
        inv = r.invariant
        rows.append(
            (
                r.status.upper(),
                f"{at(root, inv.file)}:{inv.line}",
                truncate(f"invariant {inv.name}", 50),
                r.message,
            )
        )
    return table(("result", "where", "what", "detail"), rows) if rows else ""


def summary(analysis: Analysis, rules: int) -> str:
    """The last line: counts and time."""
    proved = sum(r.status == "proved" for r in analysis.invariants)
    skipped = sum(f.kind == "not-analysed" for f in analysis.findings)
    verdict = "ok" if analysis.ok else "FAILED"
    return (
        f"{verdict}: {rules} rules ({skipped} not analysed), {len(analysis.problems)} problem(s); "
        f"{proved}/{len(analysis.invariants)} invariant(s) proved in {analysis.seconds:.2f}s"
    )


def json_report(root: str, analysis: Analysis, version: str) -> dict[str, Any]:
    """The analysis as JSON-like data."""
    return {
        "directory": root,
        "bundle_version": version,
        "ok": analysis.ok,
        "seconds": round(analysis.seconds, 6),
        "findings": [
            {
                "kind": f.kind,
                "file": at(root, f.file),
                "line": f.line,
                "policy": f.policy,
                "rule": f.rule,
                "message": f.message,
            }
            for f in analysis.findings
        ],
        "invariants": [
            {
                "name": r.invariant.name,
                "file": at(root, r.invariant.file),
                "line": r.invariant.line,
                "status": r.status,
                "message": r.message,
                "counterexample": r.counterexample,
                "seconds": round(r.seconds, 6),
            }
            for r in analysis.invariants
        ],
    }


def junit_xml(root: str, analysis: Analysis) -> ET.ElementTree:
    """One testcase per analysed rule finding and per invariant; problems are failures."""
    suites = ET.Element("testsuites", name="signoff policy analyze")
    suite = ET.SubElement(suites, "testsuite", name=root)
    failures = 0
    for f in analysis.findings:
        case = ET.SubElement(
            suite,
            "testcase",
            name=f"{f.kind}: {f.rule}",
            classname=f.policy,
            file=at(root, f.file),
            line=str(f.line),
        )
        if f.kind in ("not-analysed", "default-applies"):
            ET.SubElement(case, "skipped", message=f.message)
        else:
            failures += 1
            ET.SubElement(case, "failure", message=f.message, type=f.kind)
    for r in analysis.invariants:
        inv = r.invariant
        case = ET.SubElement(
            suite,
            "testcase",
            name=f"invariant: {inv.name}",
            classname="invariants",
            file=at(root, inv.file),
            line=str(inv.line),
            time=f"{r.seconds:.6f}",
        )
        if r.status != "proved":
            failures += 1
            failure = ET.SubElement(case, "failure", message=r.message, type=r.status)
            if r.counterexample is not None:
                failure.text = counterexample_case(r)
    for element in (suites, suite):
        element.set("tests", str(len(analysis.findings) + len(analysis.invariants)))
        element.set("failures", str(failures))
        element.set("time", f"{analysis.seconds:.6f}")
    ET.indent(suites)
    return ET.ElementTree(suites)
