"""Per-rule findings and invariants, asked of the solver; counterexamples re-checked.

Every "sat" the solver gives for an invariant becomes a request that is evaluated by the
real engine (core/decide.py): a counterexample is reported only when the engine confirms
it, otherwise the invariant is "unknown". A solver that runs out of time says "unknown" too.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import z3
from google.protobuf import json_format

from signoff import pb
from signoff.analysis.decision import DecisionTerm, applies, decision
from signoff.analysis.request import request_data
from signoff.analysis.schema import complete, constraints
from signoff.analysis.symbols import Symbols
from signoff.analysis.translate import Translator, Unsupported
from signoff.analysis.tree import tree
from signoff.core.decide import SEVERITY, DefaultDecision, Evaluation, evaluate
from signoff.core.validate import Limits, validate_request
from signoff.errors import InvalidArgument
from signoff.policy import Activation, Bundle, CelEvalError
from signoff.policy.params import check_request
from signoff.policytest.invariants import LoadedInvariant
from signoff.policytest.run import DEFAULT_NOW

DEFAULT_TIMEOUT = 10.0  # seconds per solver question (`--timeout`)
Kind = Literal[
    "ineffective", "matches-all", "shadowed", "not-analysed", "unknown", "default-applies"
]
# Findings that mean something is wrong; "not-analysed" and "default-applies" (a policy
# leaves some of its requests to the default decision, which may be meant) are said only.
PROBLEMS = frozenset({"ineffective", "matches-all", "shadowed", "unknown"})


@dataclass(frozen=True)
class Finding:
    """Something the analysis found about one rule (or one policy: `rule` is "")."""

    kind: Kind
    file: str
    line: int
    policy: str
    rule: str
    message: str


@dataclass(frozen=True)
class InvariantResult:
    """An invariant: proved, violated (with a confirmed counterexample) or unknown."""

    invariant: LoadedInvariant
    status: Literal["proved", "violated", "unknown"]
    message: str
    seconds: float
    counterexample: dict[str, Any] | None = None
    evaluation: Evaluation | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Analysis:
    """Everything one `policy analyze` run found."""

    findings: tuple[Finding, ...]
    invariants: tuple[InvariantResult, ...]
    seconds: float

    @property
    def problems(self) -> tuple[Finding, ...]:
        """The findings that mean a rule is wrong (or could not be decided)."""
        return tuple(f for f in self.findings if f.kind in PROBLEMS)

    @property
    def ok(self) -> bool:
        """No problem found and every invariant proved."""
        return not self.problems and all(r.status == "proved" for r in self.invariants)


def _solve(
    symbols: Symbols, goal: list[z3.BoolRef], timeout: float
) -> tuple[z3.CheckSatResult, z3.ModelRef | None]:
    solver = z3.Solver()
    solver.set("timeout", max(1, int(timeout * 1000)))
    solver.add(*facts(symbols), *goal)
    result = bounded_check(solver, timeout)
    return result, solver.model() if result == z3.sat else None


def facts(symbols: Symbols) -> list[z3.BoolRef]:
    """What every request that reaches the rules satisfies: JSON shapes, a valid action
    name, and its action's params schemas."""
    return symbols.axioms() + constraints(symbols, symbols.schemas)


def bounded_check(solver: z3.Solver, timeout: float, *assumptions: z3.BoolRef) -> z3.CheckSatResult:
    """`solver.check(*assumptions)`, interrupted once `timeout` (plus a grace second) has
    passed: z3's own timeout is not always honoured. Z3_interrupt, called from a timer
    thread while the check runs in C (ctypes releases the GIL), stops it; the answer is then
    unknown.

    Only plain solvers, never z3's Optimize: an Optimize over string constraints ran for
    over ten minutes with a 2 s timeout set, deaf to repeated interrupts, inside
    `smt::context::push` (its MaxSMT loop pushes, and the sequence theory's `solve_eqs`
    there checks no limit). Assumptions need no push.
    """
    timer = threading.Timer(timeout + 1.0, solver.ctx.interrupt)
    timer.daemon = True
    timer.start()
    try:
        return solver.check(*assumptions)
    finally:
        timer.cancel()


def _counterexample(
    symbols: Symbols, goal: list[z3.BoolRef], timeout: float
) -> tuple[z3.CheckSatResult, z3.ModelRef | None]:
    """Like _solve, but the model is the plainest request: what it need not hold, unset.

    "Plainest" is soft: each wish is an assumption, and the wishes an unsat core names are
    dropped before asking again (a coarse MaxSAT, within `timeout` in all); if time runs
    out first, the plain answer of `_solve`.
    """
    solver = z3.Solver()
    solver.add(*facts(symbols), *goal)
    wishes: list[z3.BoolRef] = []
    # Leave out keys, keep numbers numbers, prefer short texts: none changes the answer.
    for j in symbols.json.values():
        wishes += [z3.Not(j.present), j.unparsable]
    wishes += [z3.Length(var) <= 12 for var in symbols.strings.values()]
    wishes += [z3.Length(seq) == 0 for seq in symbols.lists.values()]
    lower = z3.Range("a", "z")
    plain = z3.Concat(z3.Plus(lower), z3.Star(z3.Concat(z3.Re("."), z3.Plus(lower))))
    wishes.append(z3.InRe(symbols.string(("action", "name")), plain))
    # A fresh literal names each wish, so that a core can name it back.
    marks = [z3.Bool(f"signoff.wish.{i}") for i in range(len(wishes))]
    solver.add(*(z3.Implies(m, w) for m, w in zip(marks, wishes, strict=True)))
    active = set(marks)
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        solver.set("timeout", max(1, int(left * 1000)))
        result = bounded_check(solver, left, *active)
        if result == z3.sat:
            return result, solver.model()
        if result == z3.unknown:
            break
        core = {m for m in marks if any(m.eq(c) for c in solver.unsat_core())}
        if not core:  # unsat whatever the wishes: the goal itself cannot hold
            return z3.unsat, None
        active -= core
    return _solve(symbols, goal, timeout)


def analyze_rules(bundle: Bundle, timeout: float = DEFAULT_TIMEOUT) -> list[Finding]:
    """Per rule: not analysed, never matches, matches all it applies to, or shadowed."""
    symbols = Symbols(schemas=bundle.params)
    term = decision(bundle, symbols, DefaultDecision())
    out: list[Finding] = []
    for i, r in enumerate(term.rules):

        def finding(kind: Kind, message: str, r: Any = r) -> Finding:
            return Finding(kind, r.rule.file, r.rule.line, r.policy.name, r.rule.name, message)

        if r.reason_unsupported:
            out.append(finding("not-analysed", r.reason_unsupported))
        if r.unsupported:
            out.append(finding("not-analysed", r.unsupported))
            continue
        can_hit, _ = _solve(symbols, [r.hit], timeout)
        if can_hit == z3.unsat:
            out.append(finding("ineffective", "never matches: its `when` is never true"))
            continue
        if can_hit != z3.sat:
            out.append(finding("unknown", f"the solver gave no answer within {timeout:g}s"))
            continue
        misses, _ = _solve(symbols, [r.applies, z3.Not(r.hit)], timeout)
        if misses == z3.unsat:
            out.append(finding("matches-all", "matches every request it applies to"))
        if r.rule.shadow:
            continue
        decides, _ = _solve(symbols, [r.hit, term.deciding[i]], timeout)
        if decides == z3.unsat:
            out.append(finding("shadowed", _shadowed_by(symbols, term, i, timeout)))
        elif decides != z3.sat:
            out.append(finding("unknown", f"the solver gave no answer within {timeout:g}s"))
    return out


def analyze_policies(bundle: Bundle, timeout: float = DEFAULT_TIMEOUT) -> list[Finding]:
    """Per policy: requests under its actions that no rule decides, with a confirmed example."""
    out = []
    for policy in bundle.policies:
        symbols = Symbols(schemas=bundle.params)
        term = decision(bundle, symbols, DefaultDecision())
        answer, model = _counterexample(
            symbols, [applies(policy, symbols), term.undecided], timeout
        )
        if answer == z3.unknown:
            message = f"the solver gave no answer within {timeout:g}s"
            out.append(Finding("unknown", policy.file, 1, policy.name, "", message))
        if answer != z3.sat or model is None:
            continue  # unsat: every request it applies to is decided by a rule
        data = complete(request_data(model, symbols), bundle.params)
        example = json.dumps(data, separators=(",", ":"))
        request = parsed(bundle, data)
        confirmed = not isinstance(request, str) and (
            evaluate(bundle, request, DEFAULT_NOW, DefaultDecision()).default_applied
        )
        message = "no rule decides some of its requests (the default decision applies), e.g. "
        if not confirmed:
            message = "no rule may decide some of its requests (not confirmed), e.g. "
        out.append(Finding("default-applies", policy.file, 1, policy.name, "", message + example))
    return out


def _shadowed_by(symbols: Symbols, term: DecisionTerm, i: int, timeout: float) -> str:
    """Name the rule that always outranks rule `i` when it matches, if one does alone."""
    r = term.rules[i]
    for j, s in enumerate(term.rules):
        if j == i or s.rule.shadow:
            continue
        outranks = z3.Or(s.effect > r.effect, z3.And(s.effect == r.effect, j < i))
        result, _ = _solve(symbols, [r.hit, z3.Not(outranks)], timeout)
        if result == z3.unsat:
            order = "more severe" if s.rule.decision != r.rule.decision else "earlier"
            return (
                f"never decides: whenever it matches, {order} rule {s.rule.name} "
                f"({s.rule.file}:{s.rule.line}) decides instead"
            )
    return "never decides: whenever it matches, other rules decide instead"


def check_invariant(
    bundle: Bundle, invariant: LoadedInvariant, timeout: float = DEFAULT_TIMEOUT
) -> InvariantResult:
    """Prove one invariant, or find a counterexample and confirm it with the engine."""
    start = time.perf_counter()
    symbols = Symbols(schemas=bundle.params)
    term = decision(bundle, symbols, invariant.default)

    def result(status: Any, message: str, **more: Any) -> InvariantResult:
        return InvariantResult(invariant, status, message, time.perf_counter() - start, **more)

    try:
        selected, _ = Translator(symbols).condition(tree(invariant.program))
    except Unsupported as exc:
        return result("unknown", f"not analysed: when: {exc}")
    holds = term.severity == SEVERITY[invariant.outcome]
    if invariant.reviewers is not None:
        holds = z3.And(holds, term.group == z3.StringVal(invariant.reviewers))
    violation = holds if invariant.kind == "never" else z3.Not(holds)
    answer, model = _counterexample(symbols, [selected, violation], timeout)
    if answer == z3.unsat:
        return result("proved", "proved")
    if model is None:
        return result("unknown", f"the solver gave no answer within {timeout:g}s")
    data = complete(request_data(model, symbols), bundle.params)
    confirmed, why, evaluation = recheck(bundle, invariant, data)
    if not confirmed:
        rules = [r.rule.name for r in term.rules if r.unsupported or r.reason_unsupported]
        hint = f" (rules not analysed: {', '.join(rules)})" if rules else ""
        return result("unknown", f"the solver's counterexample did not hold: {why}{hint}")
    return result("violated", why, counterexample=data, evaluation=evaluation)


def recheck(
    bundle: Bundle, invariant: LoadedInvariant, data: dict[str, Any]
) -> tuple[bool, str, Evaluation | None]:
    """Evaluate a counterexample with the engine: (it breaks the invariant, why, decision)."""
    request = parsed(bundle, data)
    if isinstance(request, str):
        return False, request, None
    try:
        selected = invariant.program.eval(Activation(request, DEFAULT_NOW)) is True
    except CelEvalError as exc:
        return False, f"its `when` fails on it ({exc})", None
    ev = evaluate(bundle, request, DEFAULT_NOW, invariant.default)
    holds = ev.outcome == invariant.outcome and (
        invariant.reviewers is None or ev.reviewer_group == invariant.reviewers
    )
    got = ev.outcome + (f" by {ev.reviewer_group}" if ev.reviewer_group else "")
    rule = ev.deciding_rule.name if ev.deciding_rule else "the default decision"
    broken = selected and (holds if invariant.kind == "never" else not holds)
    return broken, f"the engine decides {got} ({rule})", ev


def parsed(bundle: Bundle, data: dict[str, Any]) -> pb.common.ActionRequest | str:
    """`data` as a request the service accepts (valid, its params as its schemas say), or
    why it would be refused before any rule runs."""
    try:
        request = json_format.ParseDict(data, pb.common.ActionRequest())
        validate_request(request, Limits())
        check_request(bundle.params, request)
    except (json_format.ParseError, InvalidArgument) as exc:
        return f"not a valid request ({exc})"
    return request


def analyze(
    bundle: Bundle, invariants: list[LoadedInvariant], timeout: float = DEFAULT_TIMEOUT
) -> Analysis:
    """Every rule finding and every invariant of a bundle."""
    start = time.perf_counter()
    findings = analyze_rules(bundle, timeout) + analyze_policies(bundle, timeout)
    results = [check_invariant(bundle, inv, timeout) for inv in invariants]
    return Analysis(tuple(findings), tuple(results), time.perf_counter() - start)
