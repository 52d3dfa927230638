"""The compiled parts of a policy bundle: rules, variables, policies, batched rules, and the
errors of a rejected bundle. Immutable values, built by `load` and indexed by `index`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from signoff.policy.cel import Program, combine
from signoff.policy.params import ParamSchema

Decision = Literal["allow", "review", "deny"]


@dataclass(frozen=True)
class PolicyError:
    """One problem in a policy file, at a 1-based line and column of that file."""

    file: str
    line: int
    column: int
    rule: str
    message: str

    def __str__(self) -> str:
        # line 0: the problem has no position (e.g. the directory itself is missing).
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.rule}: {self.message}" if self.rule else f"{where}: {self.message}"


class BundleError(Exception):
    """The bundle was rejected whole; `errors` lists every problem found, in file order."""

    def __init__(self, errors: Sequence[PolicyError]) -> None:
        self.errors = list(errors)
        lines = "\n".join(str(e) for e in self.errors)
        super().__init__(f"{len(self.errors)} error(s) in the policy bundle:\n{lines}")


@dataclass(frozen=True)
class CompiledVariable:
    """A policy variable, compiled on its own (with its dependencies inlined) for Explain."""

    name: str
    expr: str
    line: int
    program: Program


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to evaluate; its programs have the policy's variables inlined."""

    file: str
    policy: str
    name: str
    line: int
    when: str  # as written
    when_program: Program
    decision: Decision
    reason: str | None
    reason_expr: str | None  # as written
    reason_program: Program | None
    reviewers: str | None
    approvals: int
    timeout: dt.timedelta | None
    on_timeout: str
    on_error: Literal["review", "deny", "ignore"]
    shadow: bool
    grants: bool = False  # reviewers may grant standing approvals (model.Rule.allows_grants)
    # ... without bounds on every number (model.Rule.allows_unbounded_grants)
    unbounded_grants: bool = False
    in_band: str = ""  # who else may settle the review in band (model.Rule.in_band)


@dataclass(frozen=True)
class CompiledPolicy:
    """One policy file: its rules in file order."""

    file: str
    name: str
    description: str
    actions: tuple[str, ...]  # empty: applies to every action (a file without `actions`)
    variables: tuple[CompiledVariable, ...]
    rules: tuple[CompiledRule, ...]
    redact: tuple[str, ...]
    batch: RuleBatch | None = field(default=None, repr=False, compare=False)
    params: tuple[ParamSchema, ...] = ()  # the file's action schemas (params.py)


@dataclass(frozen=True)
class RuleBatch:
    """A policy's rules in one program: one eval per request instead of one per rule.

    Each eval costs ~1.5 µs before any work, and the request's messages are converted for
    CEL once per Activation, so one list-valued program is much cheaper than one program
    per rule. Element i is rule i's `when`, except for a rule in `with_reason`: there it is
    `when ? reason_expr : false` (a string-typed reason_expr, evaluated only on a match,
    as rule by rule). The batch fails whenever one of its parts would fail (or when the
    comprehensions share out the iteration budget): then decide.py goes rule by rule.
    """

    program: Program
    with_reason: tuple[bool, ...]


def rule_batch(rules: Sequence[CompiledRule]) -> RuleBatch | None:
    """The batch of `rules`, or None when there is nothing to gain (or it does not compile)."""
    if len(rules) < 2 and not any(r.reason_program for r in rules):
        return None
    exprs, with_reason = [], []
    for rule in rules:
        reason = rule.reason_program
        combined = reason is not None and reason.return_type == "STRING"
        when = rule.when_program.expr
        exprs.append(f"({when}) ? dyn({reason.expr}) : false" if combined and reason else when)
        with_reason.append(combined)
    macros = any(
        p is not None and p.uses_list_macros
        for r in rules
        for p in (r.when_program, r.reason_program)
    )
    strings = any(
        p is not None and p.bounds_strings
        for r in rules
        for p in (r.when_program, r.reason_program)
    )
    # A `dyn` when could hold an optional, which the batch's list must not convert whole
    # (see cel._shown); a reason in the batch is a string.
    plain = all(r.when_program.plain for r in rules)
    program = combine(exprs, macros, strings, plain)
    return None if program is None else RuleBatch(program, tuple(with_reason))
