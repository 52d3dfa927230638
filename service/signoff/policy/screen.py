"""Is an action denied whatever its params? For gateways that hide what could never run.

A deny overrides every other outcome (SPEC "Decision semantics"), so an action is denied
whatever its params as soon as one enforced rule denies it without reading anything a
call could change. A rule is "fixed" when every path its `when` reads (reads.py, from the
CEL AST) is one the screened request pins: `action.name`, the principal, the resource,
and the context except the `varying` paths (those each call sets to its own value). It
is not fixed when it reads `action.params` (or `action` whole), `now`, or a context path
that overlaps a varying one. A rule that is not fixed could go either way: it never
hides an action. So the answer errs one way only: "denied" is exact, "not denied" may be
a deny after all once the call's params are known (and Evaluate still decides each call).

The default decision for no match never hides an action (it would need every rule to be
fixed and false); only rules do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from signoff import pb
from signoff.policy.bundle import Bundle, CompiledRule
from signoff.policy.cel import Activation, CelEvalError, Program
from signoff.policy.reads import Path, reads

_UNPINNED: tuple[Path, ...] = (("action", "params"), ("now",))


@dataclass(frozen=True)
class Screened:
    """A deny that holds whatever the params: the rule and its reason."""

    rule: CompiledRule
    reason: str

    @property
    def where(self) -> str:
        """`rule <name> (<file>:<line>)`."""
        return f"rule {self.rule.name} ({self.rule.file}:{self.rule.line})"


def denied_regardless(
    bundle: Bundle,
    request: pb.common.ActionRequest,
    varying: Iterable[str],
    now: dt.datetime,
) -> Screened | None:
    """The first rule (bundle order) that denies `request` whatever its params, or None.

    `request.action.params` is ignored; `varying`: dotted context paths ("context.mcp.x")
    whose value each call sets, which a fixed rule must not read.
    """
    unpinned = (*_UNPINNED, *(tuple(v.split(".")) for v in varying))
    applicable = bundle.applicable(request.action.name)
    screened = pb.common.ActionRequest()
    screened.CopyFrom(request)
    screened.action.ClearField("params")
    activation = Activation(screened, now)
    for policy in applicable.policies:
        for rule in policy.rules:
            if rule.shadow or not _fixed(rule.when_program, unpinned):
                continue
            try:
                matched = rule.when_program.eval(activation) is True
                effect = rule.decision if matched else None
            except CelEvalError:
                effect = None if rule.on_error == "ignore" else rule.on_error
                if effect == "deny":
                    reason = f"rule {rule.name} fails to evaluate for it; on_error: deny"
                    return Screened(rule, reason)
            if effect == "deny":
                return Screened(rule, _reason(rule, activation, unpinned, applicable.redact))
    return None


def _fixed(program: Program, unpinned: tuple[Path, ...]) -> bool:
    return not any(_overlaps(path, u) for path in _reads(program) for u in unpinned)


def _reads(program: Program) -> frozenset[Path]:
    # A path that stops at `action` reads its params too.
    return frozenset(("action", "params") if p == ("action",) else p for p in reads(program))


def _overlaps(a: Path, b: Path) -> bool:
    """One path is a prefix of the other: reading either reads something of both."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _reason(
    rule: CompiledRule, activation: Activation, unpinned: tuple[Path, ...], redact: tuple[str, ...]
) -> str:
    """The rule's reason, if it can be told without the params (or a redacted value)."""
    program = rule.reason_program
    if program is None:
        return rule.reason or ""
    if not redact and _fixed(program, unpinned):
        try:
            value = program.eval(activation)
        except CelEvalError:
            value = None
        if isinstance(value, str):
            return value
    return f"rule {rule.name} denies it whatever its arguments"
