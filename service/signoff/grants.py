"""Standing approvals: the scope of a grant and whether a later request falls inside it.

Pure functions over JSON values (an action's params as a dict), no store and no gRPC: the
review desk checks a reviewer's bounds against the action they approve (`check_bounds`),
and the decision path asks whether a request is inside an active grant (`covers`).
A bound that cannot be checked (missing path, wrong type) never matches: a grant only ever
allows what its reviewer could see it allow.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Op = Literal["<=", ">=", "=="]
OPS: tuple[Op, ...] = ("<=", ">=", "==")
_MISSING = object()


@dataclass(frozen=True)
class Bound:
    """One parameter bound: `params.<path> <op> value`, e.g. amount <= 750."""

    path: str  # dotted, under the action's params
    op: Op
    value: Any  # a JSON value; a number for <= and >=

    def __str__(self) -> str:
        return f"{self.path} {self.op} {show(self.value)}"


@dataclass(frozen=True)
class Scope:
    """What a grant allows: one action name, one principal ('' = any) and its bounds."""

    action_name: str
    principal_id: str
    bounds: tuple[Bound, ...]

    def describe(self) -> str:
        """The scope in plain words, as the console and CLI show it."""
        who = f"principal {self.principal_id}" if self.principal_id else "any principal"
        where = ", ".join(str(b) for b in self.bounds) or "any params"
        return f"{self.action_name} by {who} where {where}"


def show(value: Any) -> str:
    """A JSON value as written in a bound; 750.0 (every number in a Struct is one) as 750."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, sort_keys=True)


def lookup(params: Mapping[str, Any], path: str) -> Any:
    """The value at dotted `path` in `params`, or `_MISSING`."""
    value: Any = params
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _number(value: Any) -> bool:
    # bool is an int in Python, never a number in JSON.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def holds(bound: Bound, params: Mapping[str, Any]) -> bool:
    """Whether `params` satisfy `bound` (a missing path or a wrong type never does)."""
    actual = lookup(params, bound.path)
    if actual is _MISSING:
        return False
    if bound.op == "==":
        return _number(actual) == _number(bound.value) and actual == bound.value
    if not (_number(actual) and _number(bound.value)):
        return False
    return actual <= bound.value if bound.op == "<=" else actual >= bound.value


def covers(scope: Scope, action_name: str, principal_id: str, params: Mapping[str, Any]) -> bool:
    """Whether a request (action, principal, params) falls inside `scope`."""
    if action_name != scope.action_name:
        return False
    if scope.principal_id and principal_id != scope.principal_id:
        return False
    return all(holds(b, params) for b in scope.bounds)


def check_bounds(bounds: Sequence[Bound], approved: Mapping[str, Any]) -> None:
    """Raise ValueError naming `bounds[i]` unless each bound is valid and admits `approved`.

    A grant extends what the reviewer approved, so every bound must name a param of the
    approved action and hold for it: `amount <= 750` for an approved 750 (or 500), never
    `amount <= 100`, and `currency == "EUR"` only if the approved currency was EUR.
    """
    seen: set[tuple[str, str]] = set()
    for i, bound in enumerate(bounds):
        where = f"grant.bounds[{i}] ({bound.path or '<empty path>'})"
        if bound.op not in OPS:
            raise ValueError(f"{where}: op {bound.op!r} is not one of {', '.join(OPS)}")
        if (bound.path, bound.op) in seen:
            raise ValueError(f"{where}: a second {bound.op} bound on the same path")
        seen.add((bound.path, bound.op))
        actual = lookup(approved, bound.path) if bound.path else _MISSING
        if actual is _MISSING:
            raise ValueError(f"{where}: the approved action has no param {bound.path!r}")
        if bound.op != "==" and not (_number(actual) and _number(bound.value)):
            raise ValueError(f"{where}: {bound.op} compares numbers; bound and param must be both")
        if not holds(bound, approved):
            raise ValueError(
                f"{where}: {bound} does not hold for the approved action "
                f"({bound.path} = {show(actual)})"
            )


def default_bounds(approved: Mapping[str, Any]) -> tuple[Bound, ...]:
    """Bounds a console offers by default: numbers at most as approved, the rest equal."""
    out = []
    for key in sorted(approved):
        value = approved[key]
        if _number(value):
            out.append(Bound(key, "<=", value))
        elif isinstance(value, str | bool) or value is None:
            out.append(Bound(key, "==", value))
    return tuple(out)
