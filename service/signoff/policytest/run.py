"""The pure test runner: loaded cases and a bundle in, results and coverage out."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from signoff.core.decide import DefaultDecision, Evaluation, MatchedRule, evaluate
from signoff.errors import InvalidArgument
from signoff.policy import Bundle
from signoff.policy.params import check_request
from signoff.policytest.load import CaseFileResult, LoadedCase
from signoff.policytest.model import Expect

# Cases run at a fixed instant unless they say otherwise, so a rule using `now` gives the
# same answer in CI today and next year.
DEFAULT_NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Mismatch:
    """One expectation the decision did not meet."""

    field: str  # outcome | reviewer_group | rule | reason | shadow
    expected: str
    got: str


@dataclass(frozen=True)
class CaseResult:
    """A case, the decision it got, and what did not match."""

    case: LoadedCase
    evaluation: Evaluation
    mismatches: tuple[Mismatch, ...]
    seconds: float

    @property
    def passed(self) -> bool:
        """Whether every expectation held."""
        return not self.mismatches


@dataclass(frozen=True)
class UncoveredRule:
    """A rule whose `when` no case made true."""

    file: str
    line: int
    policy: str
    rule: str
    shadow: bool


@dataclass(frozen=True)
class RunResult:
    """Everything one `policy test` run found."""

    files: tuple[CaseFileResult, ...]
    results: tuple[CaseResult, ...]
    seconds: float

    @property
    def failed(self) -> tuple[CaseResult, ...]:
        """The results that did not pass."""
        return tuple(r for r in self.results if not r.passed)

    @property
    def errors(self) -> int:
        """Number of case files that could not be loaded."""
        return sum(1 for f in self.files if f.errors)

    @property
    def ok(self) -> bool:
        """True when every case passed, no file was broken and at least one case ran."""
        return bool(self.results) and not self.failed and not self.errors


def rule_matched(match: MatchedRule) -> bool:
    """Whether a reported rule's `when` was true (not merely failed to evaluate)."""
    # A failing `when` is reported in `matched` too, but a case that only trips the error
    # path has not exercised the rule: it neither covers it nor satisfies `shadow:`.
    return not match.error.startswith("when:")


def check(expect: Expect, ev: Evaluation) -> tuple[Mismatch, ...]:
    """Compare a decision with an expectation; unset expectations are not checked."""
    out = []
    if ev.outcome != expect.outcome:
        out.append(Mismatch("outcome", expect.outcome, ev.outcome))
    if expect.reviewer_group is not None and ev.reviewer_group != expect.reviewer_group:
        out.append(Mismatch("reviewer_group", expect.reviewer_group, ev.reviewer_group))
    rule = ev.deciding_rule.name if ev.deciding_rule else ""
    if expect.rule is not None and rule != expect.rule:
        out.append(Mismatch("rule", expect.rule or "(default)", rule or "(default)"))
    if expect.reason_contains is not None and expect.reason_contains not in ev.reason:
        out.append(Mismatch("reason", f"contains {expect.reason_contains!r}", repr(ev.reason)))
    shadows = [m.rule for m in ev.matched if m.shadow and rule_matched(m)]
    missing = [name for name in expect.shadow if name not in shadows]
    if missing:
        out.append(Mismatch("shadow", ", ".join(missing), ", ".join(shadows) or "(none)"))
    return tuple(out)


def run_case(
    bundle: Bundle,
    case: LoadedCase,
    default: DefaultDecision | None = None,
    timer: Callable[[], float] = time.perf_counter,
) -> CaseResult:
    """Evaluate one case; its own `default` and `now` win over the arguments."""
    start = timer()
    ev = evaluate(
        bundle, case.request, case.now or DEFAULT_NOW, case.default or default or DefaultDecision()
    )
    mismatches = check(case.expect, ev)
    try:
        check_request(bundle.params, case.request)
    except InvalidArgument as exc:
        # The server refuses this request before any rule runs: the decision above is one
        # it never gives (see docs/policies.md, Action schemas).
        refused = f"{exc} (refused by the server: INVALID_ARGUMENT)"
        mismatches = (Mismatch("params", "fit the action schema", refused), *mismatches)
    return CaseResult(case, ev, mismatches, timer() - start)


def run_all(
    bundle: Bundle,
    files: Iterable[CaseFileResult],
    pattern: re.Pattern[str] | None = None,
    default: DefaultDecision | None = None,
    timer: Callable[[], float] = time.perf_counter,
) -> RunResult:
    """Run every case of every sound file (those whose name `pattern` finds, if given)."""
    start = timer()
    files = tuple(files)
    results = tuple(
        run_case(bundle, case, default, timer)
        for f in files
        for case in f.cases
        if pattern is None or pattern.search(case.name)
    )
    return RunResult(files, results, timer() - start)


def uncovered(bundle: Bundle, results: Iterable[CaseResult]) -> list[UncoveredRule]:
    """Rules (shadow ones included) that no case matched, in bundle order."""
    hit = {(m.file, m.rule) for r in results for m in r.evaluation.matched if rule_matched(m)}
    return [
        UncoveredRule(rule.file, rule.line, policy.name, rule.name, rule.shadow)
        for policy in bundle.policies
        for rule in policy.rules
        if (rule.file, rule.name) not in hit
    ]
