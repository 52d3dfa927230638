"""Pure decision semantics: a Bundle and an ActionRequest in, an Evaluation out. No I/O.

The rules (SPEC "Decision semantics"):
1. Every rule of every policy whose `actions` match the action name is evaluated.
2. deny > review > allow; among equally severe matches the first in bundle order (files by
   path, rules in file order) gives the reason and the reviewer group. All are reported.
3. No match: the configured default (review by `default` out of the box).
4. A `when` that fails to evaluate is never false: `on_error` turns it into a review (by the
   rule's reviewers, or the default group for non-review rules), a deny, or nothing
   (`ignore`, still reported). A `reason_expr` that fails after `when` matched keeps the
   rule's decision, raised to at least what `on_error` asks for, with a fallback reason.
5. `mode: shadow` rules are evaluated and reported ("would have decided") but never decide.

Redaction (SPEC "Trust model" 3): `when` and the decision always see the real request, but
when the request holds a value at one of the applicable `redact` paths, every text computed
from it (reasons, error messages, Explain's variables) is computed from the redacted request
instead, so that it cannot carry a redacted value into a decision, a review, a log or the
audit log. A text is never scrubbed after the fact: what the engine said about the real
request is replaced by what it says about the redacted one, or by a positional message.
Redaction never changes an outcome, only texts.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from signoff import pb
from signoff.core.cel_values import to_json
from signoff.core.jsonify import RequestView
from signoff.core.redact import MASK, masked
from signoff.policy import Activation, Bundle, CelEvalError, CompiledPolicy, CompiledRule
from signoff.policy.cel import Program

Decision = Literal["allow", "review", "deny"]
# "" where a rule had no effect: an ignored failure (on_error: ignore) or no match.
Effect = Literal["allow", "review", "deny", ""]
SEVERITY: dict[str, int] = {"allow": 1, "review": 2, "deny": 3}


@dataclass(frozen=True)
class DefaultDecision:
    """What to decide when no rule matches (operators may choose deny)."""

    decision: Literal["review", "deny"] = "review"
    reviewer_group: str = "default"
    reason: str = "no policy matched"


@dataclass(frozen=True)
class MatchedRule:
    """A rule that matched or failed; `decision` is its effect ("": an ignored failure)."""

    file: str
    policy: str
    rule: str
    line: int
    decision: Effect
    reason: str
    shadow: bool
    error: str
    reviewer_group: str


@dataclass(frozen=True)
class RuleTrace:
    """How one applicable rule evaluated (Explain)."""

    file: str
    policy: str
    rule: str
    line: int
    when: str
    decision: Decision
    matched: bool
    error: str
    reason: str
    shadow: bool
    effect: Effect


@dataclass(frozen=True)
class VariableTrace:
    """The value of one policy variable for this request (Explain)."""

    policy: str
    name: str
    value: Any
    error: str


@dataclass(frozen=True)
class Evaluation:
    """The outcome of evaluating a bundle against one request."""

    outcome: Decision
    reason: str
    reviewer_group: str
    matched: tuple[MatchedRule, ...]
    default_applied: bool
    decided_by: str
    deciding_rule: CompiledRule | None
    redact: tuple[str, ...]
    applicable_files: tuple[str, ...]
    rule_traces: tuple[RuleTrace, ...] = ()
    variable_traces: tuple[VariableTrace, ...] = ()


def evaluate(
    bundle: Bundle,
    request: pb.common.ActionRequest,
    now: dt.datetime,
    default: DefaultDecision,
    trace: bool = False,
    view: RequestView | None = None,
) -> Evaluation:
    """Decide `request` with `bundle`; with `trace`, also report every rule and variable.

    `view`: the caller's view of `request` (`jsonify.request_view`), whose masked copy is
    used instead of masking again when it was made for this bundle's redact paths.
    """
    applicable = bundle.applicable(request.action.name)
    policies = applicable.policies
    activation = Activation(request, now)
    # Texts come from `shown`: the activation itself unless a redacted value is present.
    if view is not None and view.request is request and view.redacted_paths == applicable.redact:
        redacted = view.masked
    else:
        redacted = masked(request, applicable.redact) if applicable.redact else None
    shown = activation if redacted is None else Activation(redacted, now)
    matched: list[tuple[MatchedRule, CompiledRule]] = []
    traces: list[RuleTrace] = []
    for policy in policies:
        values = _batch_values(policy, activation)
        for i, rule in enumerate(policy.rules):
            if values is None:
                value, error = _when(rule, activation, shown)
            else:  # False, True, or the reason of a match (a string)
                value, error = values[i], ""
                if value is False and not trace:
                    continue  # no match, no error: nothing to report
            match, rule_trace = _evaluate_rule(
                rule, value, error, (activation, shown), default, trace
            )
            if match is not None:
                matched.append((match, rule))
            if rule_trace is not None:
                traces.append(rule_trace)
    deciding = _deciding(matched)
    if deciding is None:
        outcome, reason, group = default.decision, default.reason, default.reviewer_group
        decided_by, rule = "no rule matched: default decision", None
    else:
        match, rule = deciding
        outcome, reason, group = match.decision or "review", match.reason, match.reviewer_group
        decided_by = _decided_by(match, rule, [m for m, _ in matched])
    return Evaluation(
        outcome=outcome,
        reason=reason,
        reviewer_group=group if outcome == "review" else "",
        matched=tuple(m for m, _ in matched),
        default_applied=deciding is None,
        decided_by=decided_by,
        deciding_rule=rule,
        redact=applicable.redact,
        applicable_files=applicable.files,
        rule_traces=tuple(traces),
        variable_traces=_variable_traces(policies, activation, shown) if trace else (),
    )


def _batch_values(policy: CompiledPolicy, activation: Activation) -> list[Any] | None:
    """Every rule's outcome from the policy's batch (one eval), or None: rule by rule.

    The batch fails whenever a rule's `when` or matched reason_expr would (and sometimes
    when none would: comprehensions share one iteration budget), and any value the rule
    by rule path would not accept sends it there too, so results, errors included, are
    exactly those of evaluating each rule on its own.
    """
    batch = policy.batch
    if batch is None:
        return None
    try:
        values = batch.program.eval(activation)
    except CelEvalError:
        return None
    for value, with_reason in zip(values, batch.with_reason, strict=True):
        if not (value is False or (type(value) is str if with_reason else value is True)):
            return None
    return values


def _when(rule: CompiledRule, activation: Activation, shown: Activation) -> tuple[bool, str]:
    """(value, error) of one rule's `when`; a failure is (False, "when: ...")."""
    try:
        return _when_value(rule, activation), ""
    except CelEvalError as exc:
        again = functools.partial(_when_value, rule)
        return False, f"when: {_message(exc, again, _place(rule), activation, shown)}"


def _when_value(rule: CompiledRule, activation: Activation) -> bool:
    value = rule.when_program.eval(activation)
    if not isinstance(value, bool):
        # Even a type can tell something about a redacted value: _message checks this too.
        raise CelEvalError(f"when evaluated to {type(value).__name__}, not bool")
    return value


def _evaluate_rule(
    rule: CompiledRule,
    value: bool | str,
    error: str,
    activations: tuple[Activation, Activation],
    default: DefaultDecision,
    trace: bool,
) -> tuple[MatchedRule | None, RuleTrace | None]:
    """`value`: the `when` (False on error), or the reason when the batch evaluated it.

    `activations`: the request, and the one texts are computed from (see the module doc).
    """
    activation, shown = activations
    reason = ""
    effect: Effect = ""
    if value is not False:
        effect = rule.decision
        try:
            reason = value if isinstance(value, str) else _reason(rule, activation)
        except CelEvalError as exc:
            again = functools.partial(_reason, rule)
            message = _message(exc, again, _place(rule), activation, shown)
            error = f"reason_expr: {message}"
            reason = f"rule {rule.name} matched; its reason_expr failed: {message}"
            if rule.on_error != "ignore" and SEVERITY[rule.on_error] > SEVERITY[effect]:
                effect = rule.on_error
        else:
            if shown is not activation and rule.reason_program is not None:
                # The reason above saw the real request (the batch computes it too).
                reason = _shown_reason(rule, shown)
    elif error:
        effect = "" if rule.on_error == "ignore" else rule.on_error
        reason = f"rule {rule.name} failed to evaluate ({error}); on_error: {rule.on_error}"
    group = ""
    if effect == "review":
        group = rule.reviewers or default.reviewer_group
    match = None
    if effect or error:
        match = MatchedRule(
            file=rule.file,
            policy=rule.policy,
            rule=rule.name,
            line=rule.line,
            decision=effect,
            reason=reason,
            shadow=rule.shadow,
            error=error,
            reviewer_group=group,
        )
    if not trace:
        return match, None
    return match, RuleTrace(
        file=rule.file,
        policy=rule.policy,
        rule=rule.name,
        line=rule.line,
        when=rule.when,
        decision=rule.decision,
        matched=value is not False,
        error=error,
        reason=reason,
        shadow=rule.shadow,
        effect="" if rule.shadow else effect,
    )


def _place(rule: CompiledRule) -> str:
    return f"rule {rule.name}, {rule.file}:{rule.line}"


def _message(
    exc: CelEvalError,
    run: Callable[[Activation], Any],
    place: str,
    activation: Activation,
    shown: Activation,
) -> str:
    """The text of `exc`, raised by `run(activation)`, fit to be shown.

    With something redacted, the engine's message about the real request may quote a
    redacted value (`Key not found in map : "5500-..."`). The same expression run on the
    redacted request can only quote what that request holds, so its message is shown if it
    fails too; otherwise the failure depended on a redacted value and only its place is.
    """
    if shown is activation:
        return str(exc)
    try:
        run(shown)
    except CelEvalError as again:
        return str(again)
    return (
        f"evaluation failed ({place}); the engine's message is withheld because it depends "
        "on a redacted value"
    )


def _shown_reason(rule: CompiledRule, shown: Activation) -> str:
    """The reason_expr's text on the redacted request (its value on the real one is hidden)."""
    try:
        return _reason(rule, shown)
    except CelEvalError:
        # It worked on the real request, so the rule keeps its decision (redaction changes
        # texts, never outcomes); the text it would have given depends on a redacted value.
        return (
            f"rule {rule.name} matched ({rule.file}:{rule.line}); its reason is withheld "
            "because it depends on a redacted value"
        )


def _reason(rule: CompiledRule, activation: Activation) -> str:
    if rule.reason_program is None:
        return rule.reason or ""
    value = rule.reason_program.eval(activation)
    if not isinstance(value, str):
        raise CelEvalError(f"reason_expr evaluated to {type(value).__name__}, not string")
    return value


def _deciding(
    matched: list[tuple[MatchedRule, CompiledRule]],
) -> tuple[MatchedRule, CompiledRule] | None:
    best: tuple[MatchedRule, CompiledRule] | None = None
    for match, rule in matched:
        if match.shadow or not match.decision:
            continue
        # Strictly greater: among equals the first in bundle order wins.
        if best is None or SEVERITY[match.decision] > SEVERITY[best[0].decision or "allow"]:
            best = (match, rule)
    return best


def _decided_by(match: MatchedRule, rule: CompiledRule, matched: list[MatchedRule]) -> str:
    where = f"rule {rule.name} ({rule.file}:{rule.line})"
    if match.error.startswith("when:"):
        where += f" failed to evaluate, on_error: {rule.on_error}"
    others = {m.decision for m in matched if not m.shadow and m.decision}
    if match.decision == "deny":
        step = "deny overrides review and allow" if len(others) > 1 else "a rule denies"
    elif match.decision == "review":
        step = "review overrides allow" if "allow" in others else "a rule requires review"
    else:
        step = "every matching rule allows"
    first = sum(1 for m in matched if m.decision == match.decision and not m.shadow) > 1
    return f"{step}: {where}" + (", the first in bundle order" if first else "")


def _variable_traces(
    policies: tuple[CompiledPolicy, ...], activation: Activation, shown: Activation
) -> tuple[VariableTrace, ...]:
    """Each variable's value; with something redacted, a value that depends on it is MASK."""
    out = []
    for policy in policies:
        for variable in policy.variables:
            program = variable.program
            try:
                value, error = to_json(program.eval(activation)), ""
            except CelEvalError as exc:
                value = None
                place = f"variable {variable.name}, {policy.file}:{variable.line}"
                error = _message(exc, program.eval, place, activation, shown)
            else:
                if shown is not activation and _value_on(program, shown) != value:
                    value = MASK  # it differs on the redacted request: it shows a redacted value
            out.append(VariableTrace(policy.name, variable.name, value, error))
    return tuple(out)


def _value_on(program: Program, shown: Activation) -> Any:
    try:
        return to_json(program.eval(shown))
    except CelEvalError:
        return _FAILED


_FAILED = object()  # equal to no value: a variable failing only on the redacted request
