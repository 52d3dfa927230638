"""Standing approvals: the scope of a grant and whether a later request falls inside it.

Pure functions over JSON values (an action's params as a dict), no store and no gRPC: the
review desk checks a reviewer's bounds against the action they approve (`check_bounds`),
and the decision path asks whether a request is inside an active grant (`covers`).
A bound that cannot be checked (missing path, wrong type) never matches: a grant only ever
allows what its reviewer could see it allow. Three more rules keep a grant from allowing
what nobody reviewed:

- it never covers a request made by or for its grantor (separation of duties);
- it is closed-world: a request with a param path the approved action did not have is not
  covered (a grant stored before paths were recorded covers nothing);
- it bounds what the reviewer saw: at least one bound, an upper bound on every number (and
  == on a string CEL would read as one, or a list holding numbers), unless the rule says
  `grants: unbounded`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Op = Literal["<=", ">=", "=="]
OPS: tuple[Op, ...] = ("<=", ">=", "==")
UPPER: tuple[Op, ...] = ("<=", "==")
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
    """What a grant allows: one action name, one principal ('' = any), its bounds, and the
    param paths of the approved action (None: not recorded, so nothing is covered)."""

    action_name: str
    principal_id: str
    bounds: tuple[Bound, ...]
    granted_by: str
    param_paths: frozenset[str] | None

    def describe(self) -> str:
        """The scope in plain words, as the console and CLI show it."""
        who = f"principal {self.principal_id}" if self.principal_id else "any principal"
        where = ", ".join(str(b) for b in self.bounds) or "any params"
        return f"{self.action_name} by {who} where {where}"


@dataclass(frozen=True)
class Asked:
    """A request as grants see it, worked out once and held against every active grant."""

    action_name: str
    principal_id: str
    requesters: frozenset[str]  # reviews.requesters: who asks, and for whom
    params: Mapping[str, Any]  # as sent: bounds hold on these
    paths: frozenset[str]  # param_paths of the params as a reviewer would see them (redacted)


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


def _same(a: Any, b: Any) -> bool:
    # JSON equality: Python's == takes True for 1 and 1.0, also inside lists and maps.
    if _number(a) or _number(b):
        return _number(a) and _number(b) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _numeric(value: Any) -> bool:
    # Any number, NaN and infinities too: those need a bound as much (and can never get one).
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numeric_text(value: Any) -> bool:
    # CEL's double() reads these as numbers (strtod: hex too), so a policy may well compare
    # "750" as an amount: such a string needs a bound as much as 750 does. Python's float()
    # reads a little more ("1_0"): that only asks for a bound more often.
    if not isinstance(value, str):
        return False
    text = value.strip()
    try:
        float(text)
        return True
    except ValueError:
        pass
    try:
        float.fromhex(text)
    except ValueError:
        return False
    return text.lstrip("+-")[:2].lower() == "0x"


def _holds_number(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(_holds_number(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_number(v) for v in value)
    return _numeric(value) or _numeric_text(value)


def leaves(params: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Each leaf of `params` as (its keys from the top, its value): a scalar, a list or an
    empty map is a leaf; a non-empty map is walked into."""
    stack: list[tuple[tuple[str, ...], Mapping[str, Any]]] = [((), params)]
    while stack:  # a loop, not recursion: the depth is the request's, bounded or not
        keys, node = stack.pop()
        for key, value in node.items():
            if isinstance(value, Mapping) and value:
                stack.append(((*keys, key), value))
            else:
                yield (*keys, key), value


def _escape(key: str) -> str:
    # {"a.b": 1} and {"a": {"b": 1}} are different params and must have different paths.
    return key.replace("\\", "\\\\").replace(".", "\\.")


def param_paths(params: Mapping[str, Any]) -> frozenset[str]:
    """The closed world of `params`: the dotted path of every leaf (keys escaped)."""
    return frozenset(".".join(_escape(k) for k in keys) for keys, _ in leaves(params))


def _bound_path(keys: tuple[str, ...]) -> str | None:
    # The path a Bound names this leaf by; None if no bound can (an empty key, or one with a
    # dot, which `lookup` would split).
    return None if any(not k or "." in k for k in keys) else ".".join(keys)


def holds(bound: Bound, params: Mapping[str, Any]) -> bool:
    """Whether `params` satisfy `bound` (a missing path or a wrong type never does)."""
    actual = lookup(params, bound.path)
    if actual is _MISSING:
        return False
    if bound.op == "==":
        return _same(actual, bound.value)
    if not (_number(actual) and _number(bound.value)):
        return False
    return actual <= bound.value if bound.op == "<=" else actual >= bound.value


def covers(scope: Scope, asked: Asked) -> bool:
    """Whether the request `asked` falls inside `scope`."""
    if asked.action_name != scope.action_name:
        return False
    if scope.principal_id and asked.principal_id != scope.principal_id:
        return False
    # Nobody approves their own action, not even ahead of time: a grant for any principal,
    # or for a gateway acting on the grantor's behalf, still never covers the grantor.
    if scope.granted_by in asked.requesters:
        return False
    # Closed-world: a param the reviewer never saw was never approved. A missing param is
    # fine here; a bound on it fails below.
    if scope.param_paths is None or not asked.paths <= scope.param_paths:
        return False
    return all(holds(b, asked.params) for b in scope.bounds)


def check_bounds(bounds: Sequence[Bound], approved: Mapping[str, Any], *, unbounded: bool) -> None:
    """Raise ValueError naming `grant.bounds` unless the bounds are valid, admit `approved`
    and bound it (`unbounded`: the rule says `grants: unbounded`, so they need not).

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
    if not unbounded:
        _check_bounded(bounds, approved)


def _check_bounded(bounds: Sequence[Bound], approved: Mapping[str, Any]) -> None:
    # An action without params is bounded by the closed world alone: it covers only `{}`.
    if not approved:
        return
    unless = "or ask the policy author for `grants: unbounded` on the rule"
    if not bounds:
        raise ValueError(
            "grant.bounds: at least one bound is required: a grant bounds what its reviewer "
            f"saw ({unless})"
        )
    upper = {b.path for b in bounds if b.op in UPPER}
    equal = {b.path for b in bounds if b.op == "=="}
    for keys, value in sorted(leaves(approved), key=lambda leaf: leaf[0]):
        path = _bound_path(keys)
        name = path if path is not None else ".".join(_escape(k) for k in keys)
        if _numeric(value) and path not in upper:
            fix = f"add e.g. {name} <= {show(value)}" if path else "no bound can name it"
            raise ValueError(
                f"grant.bounds: param '{name}' is a number ({show(value)}) without an upper "
                f"bound: {fix} ({unless})"
            )
        if _numeric_text(value) and path not in equal:
            fix = (
                f"bound it with ==, e.g. {name} == {show(value)}"
                if path
                else "no bound can name it"
            )
            raise ValueError(
                f"grant.bounds: param '{name}' is a number written as a string "
                f"({show(value)}): {fix} ({unless})"
            )
        # A list is one leaf, bound as a whole: any number inside it stays as approved.
        if isinstance(value, list) and _holds_number(value) and path not in equal:
            raise ValueError(
                f"grant.bounds: param '{name}' is a list holding numbers: bound it with == "
                f"({unless})"
            )


def default_bounds(approved: Mapping[str, Any]) -> tuple[Bound, ...]:
    """Bounds a console offers by default, one per leaf: numbers at most as approved, the
    rest equal; they satisfy `check_bounds` for every param a bound can name."""
    out = []
    for keys, value in leaves(approved):
        path = _bound_path(keys)
        if path is not None:
            out.append(Bound(path, "<=" if _number(value) else "==", value))
    return tuple(sorted(out, key=lambda b: b.path))
