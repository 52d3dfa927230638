"""Two bundles' decisions over the same request variables: where do their outcomes differ?

Per action glob (of either bundle), the solver is asked for a request the glob covers on
which the outcome or the reviewer group differs; the answer's region (which rule decides,
with which outcome and group, in each bundle) is then excluded and the question asked
again, until no request is left or the limit of regions is reached. Every example request
is evaluated by the real engine in both bundles: a region is "confirmed" only when the
engine decides exactly what the solver said. Rules outside the analysed subset are free
variables (shared between the bundles when the expression is the same), listed, never
guessed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import z3
from google.protobuf import json_format

from signoff import pb
from signoff.analysis.check import DEFAULT_TIMEOUT, _counterexample, _solve
from signoff.analysis.decision import DecisionTerm, decision
from signoff.analysis.request import request_data
from signoff.analysis.schema import complete
from signoff.analysis.symbols import Symbols, glob_re
from signoff.core.decide import SEVERITY, DefaultDecision, Evaluation, evaluate
from signoff.core.validate import Limits, validate_request
from signoff.errors import InvalidArgument
from signoff.policy import Bundle
from signoff.policy.params import check_request as check_params
from signoff.policytest.run import DEFAULT_NOW

MAX_REGIONS = 20  # per glob: past it the diff says it stopped
# Looking for the plainest example (check._counterexample: wishes dropped by unsat cores)
# can take long on a region with many wishes; past this it asks for any example instead
# (the region is the same).
PLAIN_SECONDS = 2.0
OUTCOMES = {v: k for k, v in SEVERITY.items() if v > 0}


@dataclass(frozen=True)
class Side:
    """One bundle's decision on a region: outcome, reviewer group, deciding rule."""

    outcome: str
    reviewers: str
    rule: str  # "" when the default decision applies

    def __str__(self) -> str:
        by = f" by {self.reviewers}" if self.reviewers else ""
        return f"{self.outcome}{by} ({self.rule or 'default decision'})"


@dataclass(frozen=True)
class Change:
    """A region of requests under `glob` whose outcome changes, with one example."""

    glob: str
    old: Side
    new: Side
    example: dict[str, Any]
    confirmed: bool
    message: str  # what the engine decided, when it disagrees with the solver


@dataclass(frozen=True)
class Skipped:
    """A rule (or a glob) the diff could not analyse, and why."""

    side: str  # "old", "new", "old and new", or "" for a glob
    file: str
    line: int
    rule: str
    message: str


@dataclass(frozen=True)
class Diff:
    """Everything one `policy diff` run found."""

    globs: tuple[str, ...]
    changes: tuple[Change, ...]
    skipped: tuple[Skipped, ...]
    seconds: float


def globs(*bundles: Bundle) -> tuple[str, ...]:
    """Every action glob of the bundles, in bundle order; `*` for a policy without any."""
    out: dict[str, None] = {}
    for bundle in bundles:
        for policy in bundle.policies:
            for glob in policy.actions or ("*",):
                out.setdefault(glob, None)
    return tuple(out)


def _decider(term: DecisionTerm) -> z3.ArithRef:
    """The index of the deciding rule, -1 for the default decision."""
    out: z3.ArithRef = z3.IntVal(-1)
    for i, first in term.deciding.items():
        out = z3.If(first, i, out)  # type: ignore[assignment]
    return out


def _side(model: z3.ModelRef, term: DecisionTerm, decider: z3.ArithRef) -> tuple[Side, Any]:
    index = model.eval(decider, model_completion=True).as_long()  # type: ignore[attr-defined]
    severity = model.eval(term.severity, model_completion=True).as_long()  # type: ignore[attr-defined]
    group = model.eval(term.group, model_completion=True).as_string()  # type: ignore[attr-defined]
    rule = term.rules[index].rule.name if index >= 0 else ""
    region = z3.And(decider == index, term.severity == severity, term.group == z3.StringVal(group))
    return Side(OUTCOMES[severity], str(group), rule), region


def _engine(bundle: Bundle, request: pb.common.ActionRequest, default: DefaultDecision) -> Side:
    ev: Evaluation = evaluate(bundle, request, DEFAULT_NOW, default)
    rule = ev.deciding_rule.name if ev.deciding_rule else ""
    return Side(ev.outcome, ev.reviewer_group, rule)


def confirm(
    old: Bundle, new: Bundle, data: dict[str, Any], default: DefaultDecision
) -> tuple[Side, Side] | str:
    """Both bundles' decisions on `data` by the engine, or why it is not a valid request."""
    try:
        request = json_format.ParseDict(data, pb.common.ActionRequest())
        validate_request(request, Limits())
        for bundle in (old, new):  # refused by a schema: no rule of that bundle would run
            check_params(bundle.params, request)
    except (json_format.ParseError, InvalidArgument) as exc:
        return f"not a valid request ({exc})"
    return _engine(old, request, default), _engine(new, request, default)


def _same(a: Side, b: Side) -> bool:
    return (a.outcome, a.reviewers) == (b.outcome, b.reviewers)


def _example(
    symbols: Symbols, goal: list[z3.BoolRef], timeout: float
) -> tuple[z3.CheckSatResult, z3.ModelRef | None]:
    answer, model = _counterexample(symbols, goal, min(timeout, PLAIN_SECONDS))
    if answer == z3.unknown and timeout > PLAIN_SECONDS:
        return _solve(symbols, goal, timeout)
    return answer, model


def diff_glob(
    old: Bundle, new: Bundle, glob: str, timeout: float, default: DefaultDecision
) -> tuple[list[Change], list[Skipped]]:
    """The regions under one glob whose outcome changes (or why the search stopped)."""
    # Only requests both bundles' action schemas admit reach both bundles' rules; one that
    # breaks a schema is refused before any rule runs (`schema_note` says so for the diff).
    schemas = (*old.params, *new.params)
    symbols = Symbols(schemas=schemas)
    before, after = decision(old, symbols, default), decision(new, symbols, default)
    d_before, d_after = _decider(before), _decider(after)
    changed = z3.Or(before.severity != after.severity, before.group != after.group)
    goal = [z3.InRe(symbols.string(("action", "name")), glob_re(glob)), changed]
    changes: list[Change] = []
    for _ in range(MAX_REGIONS):
        answer, model = _example(symbols, goal, timeout)
        if answer == z3.unsat:
            return changes, []
        if model is None:
            why = f"the solver gave no answer within {timeout:g}s: more regions may differ"
            return changes, [Skipped("", "", 0, glob, why)]
        old_side, old_region = _side(model, before, d_before)
        new_side, new_region = _side(model, after, d_after)
        goal.append(z3.Not(z3.And(old_region, new_region)))
        data = complete(request_data(model, symbols), schemas)
        engine = confirm(old, new, data, default)
        if isinstance(engine, str):
            confirmed, message = False, engine
        else:
            confirmed = _same(engine[0], old_side) and _same(engine[1], new_side)
            message = "" if confirmed else f"the engine decides {engine[0]} -> {engine[1]}"
        changes.append(Change(glob, old_side, new_side, data, confirmed, message))
    why = f"stopped after {MAX_REGIONS} regions: more may differ"
    return changes, [Skipped("", "", 0, glob, why)]


def not_analysed(old: Bundle, new: Bundle) -> list[Skipped]:
    """The rules of either bundle outside the analysed subset."""
    sides: dict[tuple[str, int, str, str], list[str]] = {}
    for side, bundle in (("old", old), ("new", new)):
        term = decision(bundle, Symbols(), DefaultDecision())
        for r in term.rules:
            for why in (r.unsupported, r.reason_unsupported):
                if why:
                    sides.setdefault((r.rule.file, r.rule.line, r.rule.name, why), []).append(side)
    return [Skipped(" and ".join(s), *where) for where, s in sides.items()]


def schema_note(old: Bundle, new: Bundle) -> list[Skipped]:
    """A note when the bundles' action schemas differ: requests that only one admits are
    refused (INVALID_ARGUMENT) by the other before any rule, a change the diff leaves out."""
    if [(p.glob, p.schema) for p in old.params] == [(p.glob, p.schema) for p in new.params]:
        return []
    why = (
        "the action schemas differ: requests valid under only one bundle's schemas are "
        "refused by the other before any rule runs, and are not compared here"
    )
    return [Skipped("", "", 0, "*", why)]


def diff(
    old: Bundle,
    new: Bundle,
    timeout: float = DEFAULT_TIMEOUT,
    default: DefaultDecision | None = None,
) -> Diff:
    """Every region of requests whose outcome differs between `old` and `new`."""
    start = time.perf_counter()
    default = default or DefaultDecision()
    changes: list[Change] = []
    skipped = not_analysed(old, new) + schema_note(old, new)
    every = globs(old, new)
    for glob in every:
        found, stopped = diff_glob(old, new, glob, timeout, default)
        changes += found
        skipped += stopped
    return Diff(every, tuple(changes), tuple(skipped), time.perf_counter() - start)
