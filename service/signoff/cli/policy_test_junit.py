"""JUnit XML for CI systems: one testsuite per case file, one testcase per case."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from signoff.cli.policy_test_report import at, error_line, failure_diff
from signoff.policytest.run import CaseResult, RunResult


def junit_xml(root: str, run: RunResult) -> ET.ElementTree:
    """The run as a JUnit `<testsuites>` document."""
    suites = ET.Element("testsuites", name="signoff policy test")
    by_file: dict[str, list[CaseResult]] = {}
    for r in run.results:
        by_file.setdefault(r.case.file, []).append(r)
    for f in run.files:
        results = by_file.get(f.file, [])
        suite = ET.SubElement(suites, "testsuite", name=at(root, f.file))
        for r in results:
            case = ET.SubElement(
                suite,
                "testcase",
                name=r.case.name,
                classname=_classname(f.file),
                file=at(root, f.file),
                line=str(r.case.line),
                time=f"{r.seconds:.6f}",
            )
            if not r.passed:
                first = r.mismatches[0]
                message = f"{first.field}: expected {first.expected}, got {first.got}"
                failure = ET.SubElement(case, "failure", message=message, type="PolicyTestFailure")
                failure.text = failure_diff(root, r)
        if f.errors:
            # CI systems show testcases, not suite attributes: a broken file is one errored
            # testcase carrying every error, so it cannot pass unnoticed.
            case = ET.SubElement(
                suite, "testcase", name="(load case file)", classname=_classname(f.file)
            )
            error = ET.SubElement(
                case, "error", message=f"{len(f.errors)} error(s) in the case file", type="Load"
            )
            error.text = "\n".join(error_line(root, e) for e in f.errors)
        _count(suite, len(results) + bool(f.errors), sum(not r.passed for r in results))
        suite.set("errors", str(int(bool(f.errors))))
        suite.set("time", f"{sum(r.seconds for r in results):.6f}")
    _count(suites, len(run.results) + run.errors, len(run.failed))
    suites.set("errors", str(run.errors))
    suites.set("time", f"{run.seconds:.6f}")
    ET.indent(suites)
    return ET.ElementTree(suites)


def bundle_error_xml(root: str, errors: list[str]) -> ET.ElementTree:
    """A JUnit document for a bundle that did not load: one errored testcase."""
    suites = ET.Element("testsuites", name="signoff policy test", tests="1", errors="1")
    suite = ET.SubElement(suites, "testsuite", name=root, tests="1", failures="0", errors="1")
    case = ET.SubElement(suite, "testcase", name="(load policy bundle)", classname="policies")
    error = ET.SubElement(case, "error", message="the policy bundle was rejected", type="Load")
    error.text = "\n".join(errors)
    ET.indent(suites)
    return ET.ElementTree(suites)


def _count(element: ET.Element, tests: int, failures: int) -> None:
    element.set("tests", str(tests))
    element.set("failures", str(failures))


def _classname(rel: str) -> str:
    # JUnit viewers group by dotted class name: policies/refunds_test.yaml -> policies.refunds_test
    return rel.rsplit(".", 1)[0].replace("/", ".")
