"""Policy tests: `*_test.yaml` cases run against a bundle (`signoff policy test`)."""

from signoff.policytest.load import (
    CaseError,
    CaseFileResult,
    LoadedCase,
    case_files,
    load_case_file,
    load_cases,
)
from signoff.policytest.model import Case, CaseFile, DefaultSpec, Expect
from signoff.policytest.run import (
    DEFAULT_NOW,
    CaseResult,
    Mismatch,
    RunResult,
    UncoveredRule,
    check,
    run_all,
    run_case,
    uncovered,
)

__all__ = [
    "DEFAULT_NOW",
    "Case",
    "CaseError",
    "CaseFile",
    "CaseFileResult",
    "CaseResult",
    "DefaultSpec",
    "Expect",
    "LoadedCase",
    "Mismatch",
    "RunResult",
    "UncoveredRule",
    "case_files",
    "check",
    "load_case_file",
    "load_cases",
    "run_all",
    "run_case",
    "uncovered",
]
