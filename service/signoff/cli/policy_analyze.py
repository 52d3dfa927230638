"""`signoff policy analyze DIR`: prove things about a policy directory with an SMT solver.

Per rule: never matches, matches everything it applies to, shadowed; and every invariant
of the directory's `*_test.yaml` files proved or refuted with a re-checked counterexample.
Exit status: 0 when nothing is wrong and every invariant is proved; 1 otherwise (a rule
problem, an invariant violated or unknown, a broken file); 2 for bad arguments or when
the solver (z3-solver, the `analyze` extra) is not installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from signoff.cli.policy_test_report import error_line
from signoff.policy import BundleError, load_bundle
from signoff.policytest import load_cases

INSTALL_HINT = (
    "signoff: policy analysis needs the z3 solver: pip install 'signoff[analyze]' "
    "(or pip install z3-solver)"
)


def add_parser(psub: Any) -> None:
    """Register `policy analyze` under the `policy` subcommands."""
    cmd = psub.add_parser("analyze", help="find ineffective/shadowed rules, prove invariants")
    cmd.add_argument("directory", type=Path)
    cmd.add_argument("--json", action="store_true", help="print a JSON report instead")
    cmd.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML to FILE")
    cmd.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time limit of each solver question; beyond it the answer is unknown (default 10)",
    )


def refused(exc: ModuleNotFoundError) -> int:
    """Exit status 2 with the install hint when z3 is what is missing; re-raise otherwise."""
    if exc.name != "z3":
        raise exc
    print(INSTALL_HINT, file=sys.stderr)
    return 2


def bad_timeout(timeout: float) -> int | None:
    """Exit status 2, said on stderr, for a --timeout that is not positive; else None."""
    if timeout > 0:
        return None
    print("signoff: --timeout must be a positive number of seconds", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Analyse the directory; print the table (or JSON); return the exit status."""
    try:
        from signoff.analysis.check import analyze
        from signoff.cli.policy_analyze_view import (
            analysis_table,
            counterexample_case,
            json_report,
            junit_xml,
            summary,
        )
    except ModuleNotFoundError as exc:
        return refused(exc)
    if (status := bad_timeout(args.timeout)) is not None:
        return status
    root = str(args.directory)
    try:
        bundle = load_bundle(args.directory)
    except BundleError as exc:
        for e in exc.errors:
            print(f"{root.rstrip('/')}/{e}", file=sys.stderr)
        print(f"{len(exc.errors)} error(s) in the policies; nothing analysed", file=sys.stderr)
        return 1
    files = load_cases(args.directory)
    broken = [error_line(root, e) for f in files for e in f.errors]
    invariants = [i for f in files for i in f.invariants]
    analysis = analyze(bundle, invariants, args.timeout)
    if args.junit:
        junit_xml(root, analysis).write(args.junit, encoding="utf-8", xml_declaration=True)
    if args.json:
        report = json_report(root, analysis, bundle.version)
        report["file_errors"] = broken
        print(json.dumps(report, indent=2))
    else:
        for line in broken:
            print(line, file=sys.stderr)
        text = analysis_table(root, analysis)
        if text:
            print(text)
        for r in analysis.invariants:
            if r.counterexample is not None:
                print(f"\ncounterexample to '{r.invariant.name}' (confirmed by the engine):")
                print(counterexample_case(r))
        print()
        print(summary(analysis, bundle.rule_count))
    return 0 if analysis.ok and not broken else 1
