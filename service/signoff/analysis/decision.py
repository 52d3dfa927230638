"""The bundle's decision as a formula over the request (core/decide.py's semantics).

Per rule: applies (its policy's action globs), matches, fails (on_error), and its effect
as a severity (0 none, 1 allow, 2 review, 3 deny); the outcome is the highest severity,
the first rule in bundle order with it gives the reviewer group, and with no effect at
all the default decision applies. Shadow-mode rules never decide and are left out. A rule
outside the analysed subset is not guessed: its match and failure are free variables, so
a proof still holds whatever it does (a counterexample may then not be real: the re-check
through the engine tells).
"""

from __future__ import annotations

from dataclasses import dataclass

import z3

from signoff.analysis.symbols import Symbols, glob_re
from signoff.analysis.translate import Translator, Unsupported
from signoff.analysis.tree import tree
from signoff.core.decide import SEVERITY, DefaultDecision
from signoff.policy import Bundle, CompiledPolicy, CompiledRule


@dataclass(frozen=True)
class RuleTerm:
    """One rule's formulas."""

    policy: CompiledPolicy
    rule: CompiledRule
    applies: z3.BoolRef
    hit: z3.BoolRef  # applies, and `when` is true
    fails: z3.BoolRef  # applies, and `when` fails
    effect: z3.ArithRef
    unsupported: str  # why the rule's `when` is not analysed ("" when it is)
    # Why its reason_expr is not (its failure is then free: the `when` is still analysed).
    reason_unsupported: str = ""


@dataclass(frozen=True)
class DecisionTerm:
    """The whole bundle's decision."""

    rules: tuple[RuleTerm, ...]
    severity: z3.ArithRef  # of the outcome: 1 allow, 2 review, 3 deny
    group: z3.SeqRef  # reviewer group ("" unless the outcome is review)
    deciding: dict[int, z3.BoolRef]  # rule index -> "this rule decides"
    undecided: z3.BoolRef  # no rule has an effect: the default decision applies


def applies(policy: CompiledPolicy, symbols: Symbols) -> z3.BoolRef:
    """When the policy applies: the action name matches one of its globs."""
    if not policy.actions:
        return z3.BoolVal(True)
    name = symbols.string(("action", "name"))
    return z3.Or(*(z3.InRe(name, glob_re(g)) for g in policy.actions))


def rule_term(policy: CompiledPolicy, rule: CompiledRule, symbols: Symbols) -> RuleTerm:
    """One rule's formulas (free variables where it is outside the subset)."""
    t = Translator(symbols)
    app = applies(policy, symbols)
    unsupported = ""
    key = ""  # the expression's tree: equal keys are the same expression (variables inlined)
    try:
        when = tree(rule.when_program)
        key = repr(when)
        true, fails = t.condition(when)
    except Unsupported as exc:
        unsupported = f"when: {exc}"
        true = _opaque(symbols, f"{rule.name}#when", key)
        fails = _opaque(symbols, f"{rule.name}#fails", key)
        true = z3.And(true, z3.Not(fails))
    reason_fails: z3.BoolRef = z3.BoolVal(False)
    reason_unsupported = ""
    if rule.reason_program is not None:
        reason_key = ""
        try:
            reason = tree(rule.reason_program)
            reason_key = repr(reason)
            reason_fails = t.fails(reason)
            if rule.reason_program.return_type != "STRING":
                reason_fails = _opaque(symbols, f"{rule.name}#reason", reason_key)
        except Unsupported as exc:
            reason_unsupported = f"reason_expr: {exc}"
            reason_fails = _opaque(symbols, f"{rule.name}#reason", reason_key)
    hit, failed = z3.And(app, true), z3.And(app, fails)
    decided = SEVERITY[rule.decision]
    on_error = 0 if rule.on_error == "ignore" else SEVERITY[rule.on_error]
    on_hit = z3.If(reason_fails, max(decided, on_error), decided) if on_error > decided else decided
    effect = z3.If(hit, on_hit, z3.If(failed, on_error, 0))
    return RuleTerm(policy, rule, app, hit, failed, effect, unsupported, reason_unsupported)  # type: ignore[arg-type]


def _opaque(symbols: Symbols, what: str, key: str) -> z3.BoolRef:
    """A free boolean; the same one for the same expression (a fresh one without a key)."""
    kind = what.rsplit("#", 1)[1]
    if not key:
        return symbols.fresh(z3.BoolSort(), what)  # type: ignore[return-value]
    return symbols.opaque(z3.BoolSort(), what, f"{kind}\0{key}")  # type: ignore[return-value]


def decision(bundle: Bundle, symbols: Symbols, default: DefaultDecision) -> DecisionTerm:
    """The bundle's decision over the request variables in `symbols`."""
    rules = tuple(
        rule_term(policy, rule, symbols) for policy in bundle.policies for rule in policy.rules
    )
    deciders = [(i, r) for i, r in enumerate(rules) if not r.rule.shadow]
    top: z3.ArithRef = z3.IntVal(0)
    for _, r in deciders:
        top = z3.If(r.effect > top, r.effect, top)  # type: ignore[assignment]
    severity = z3.If(top == 0, SEVERITY[default.decision], top)
    deciding: dict[int, z3.BoolRef] = {}
    earlier: list[z3.BoolRef] = []
    for i, r in deciders:
        first = z3.And(r.effect > 0, r.effect == top, *(z3.Not(e) for e in earlier))
        deciding[i] = first
        earlier.append(z3.And(r.effect > 0, r.effect == top))
    group: z3.SeqRef = z3.StringVal(default.reviewer_group if default.decision == "review" else "")
    for i, r in reversed(deciders):
        name = r.rule.reviewers or default.reviewer_group
        group = z3.If(deciding[i], z3.StringVal(name), group)  # type: ignore[assignment]
    group = z3.If(severity == SEVERITY["review"], group, z3.StringVal(""))  # type: ignore[assignment]
    return DecisionTerm(rules, severity, group, deciding, top == 0)  # type: ignore[arg-type]
