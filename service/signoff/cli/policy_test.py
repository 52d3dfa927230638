"""`signoff policy test DIR`: run every `*_test.yaml` case against the directory's policies.

Exit status: 0 when every case passed; 1 when a case failed, a case file or the policy
bundle is broken, or no case ran; 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from signoff.cli.policy_test_junit import bundle_error_xml, junit_xml
from signoff.cli.policy_test_report import (
    coverage_text,
    error_line,
    failure_diff,
    json_report,
    results_table,
    summary_line,
)
from signoff.policy import BundleError, load_bundle
from signoff.policytest import load_cases, run_all, uncovered


def add_parser(psub: Any) -> None:
    """Register `policy test` under the `policy` subcommands."""
    test = psub.add_parser("test", help="run the *_test.yaml cases of a policy directory")
    test.add_argument("directory", type=Path)
    test.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML to FILE")
    test.add_argument("--json", action="store_true", help="print a JSON report instead")
    test.add_argument("--coverage", action="store_true", help="list the rules that no case matched")
    test.add_argument(
        "--run", metavar="PATTERN", help="only cases whose name matches this regular expression"
    )


def run(args: argparse.Namespace) -> int:
    """Run the cases; print the table, diffs and summary (or JSON); return the exit status."""
    root = str(args.directory)
    try:
        pattern = re.compile(args.run) if args.run else None
    except re.error as exc:
        print(f"signoff: --run {args.run!r}: not a regular expression ({exc})", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        bundle = load_bundle(args.directory)
    except BundleError as exc:
        return _bundle_rejected(args, root, exc)
    files = load_cases(args.directory)
    run_result = run_all(bundle, files, pattern)
    invariants = _invariants(bundle, files)
    # The summary's time is the whole run, loading included, as a user would time it.
    run_result = dataclasses.replace(run_result, seconds=time.perf_counter() - start)
    coverage = uncovered(bundle, run_result.results) if args.coverage else None
    if args.junit:
        document = junit_xml(root, run_result)
        _junit_invariants(document, invariants)
        document.write(args.junit, encoding="utf-8", xml_declaration=True)
    if args.json:
        report = json_report(root, run_result, bundle.version, coverage, bundle.rule_count)
        report["invariants"] = [{"name": n, "status": s, "message": m} for n, s, m in invariants]
        report["ok"] = report["ok"] and all(s == "proved" for _, s, _ in invariants)
        print(json.dumps(report, indent=2))
    else:
        _print_text(root, run_result, coverage, bundle.rule_count)
        for name, status, message in invariants:
            print(f"invariant {status.upper()}: {name}: {message}")
    if not run_result.results and not run_result.errors:
        what = f"matching --run {args.run!r}" if pattern else f"in {root} (*_test.yaml)"
        print(f"signoff: no test cases {what}", file=sys.stderr)
    return 0 if run_result.ok and all(s == "proved" for _, s, _ in invariants) else 1


def _junit_invariants(document: ET.ElementTree, invariants: list[tuple[str, str, str]]) -> None:
    """One testsuite of the invariants; any not proved is a failure."""
    if not invariants:
        return
    suites = document.getroot()
    suite = ET.SubElement(suites, "testsuite", name="invariants", tests=str(len(invariants)))
    failed = 0
    for name, status, message in invariants:
        case = ET.SubElement(suite, "testcase", name=name, classname="invariants")
        if status != "proved":
            failed += 1
            ET.SubElement(case, "failure", message=message, type=status)
    suite.set("failures", str(failed))
    for key, more in (("tests", len(invariants)), ("failures", failed)):
        suites.set(key, str(int(suites.get(key, "0")) + more))
    ET.indent(suites)


def _invariants(bundle: Any, files: list[Any]) -> list[tuple[str, str, str]]:
    """(name, proved|violated|unknown|not run, message) of every invariant of the files."""
    invariants = [i for f in files for i in f.invariants]
    if not invariants:
        return []
    try:
        from signoff.analysis.check import check_invariant
    except ModuleNotFoundError as exc:
        if exc.name != "z3":
            raise
        from signoff.cli.policy_analyze import INSTALL_HINT

        return [(i.name, "not run", INSTALL_HINT.removeprefix("signoff: ")) for i in invariants]
    out = []
    for inv in invariants:
        result = check_invariant(bundle, inv)
        out.append((f"{inv.file}:{inv.line}: {inv.name}", result.status, result.message))
    return out


def _print_text(root: str, run_result: Any, coverage: Any, total_rules: int) -> None:
    for f in run_result.files:
        for error in f.errors:
            print(error_line(root, error), file=sys.stderr)
    if run_result.results:
        print(results_table(run_result))
    for result in run_result.failed:
        print()
        print(failure_diff(root, result))
    if coverage is not None:
        print()
        print(coverage_text(root, coverage, total_rules))
    print()
    print(summary_line(run_result))


def _bundle_rejected(args: argparse.Namespace, root: str, exc: BundleError) -> int:
    # Errors carry paths relative to the directory; prefix it so editors can jump there.
    lines = [e if e.startswith(root) else f"{root.rstrip('/')}/{e}" for e in map(str, exc.errors)]
    if args.junit:
        bundle_error_xml(root, lines).write(args.junit, encoding="utf-8", xml_declaration=True)
    if args.json:
        print(json.dumps({"directory": root, "ok": False, "policy_errors": lines}, indent=2))
    for line in lines:
        print(line, file=sys.stderr)
    print(f"{len(lines)} error(s) in the policies; no case was run", file=sys.stderr)
    return 1
