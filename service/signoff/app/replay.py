"""What-if replay: re-decide recorded requests with another bundle and aggregate the changes.

Pure: recorded decisions in (from an audit export or QueryAudit, converted by the caller),
a `ReplayReport` out. Feed a `Replay` one record at a time, so a log of any size streams
through in constant memory (groups hold at most `examples` examples each).

What a replay can and cannot see:

* Recorded requests are **redacted**: values at a policy's `redact` paths were stored as
  "[REDACTED]". A rule reading such a field replays on the mask (a string), so
  `double(action.params.card_number)` fails and `has(action.params.card_number)` is still
  true. Such records are counted (`redacted`) so the reader knows how many could differ.
* `now` is the time the decision was originally made, so time-of-day rules replay as they
  were evaluated then, not as of the replay.
* The default decision (no rule matched) is the server's out of the box, review by the
  group `default`; pass the one the server is configured with.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format

from signoff import pb
from signoff.core.decide import DefaultDecision, Evaluation, evaluate
from signoff.policy import Bundle

MASK = "[REDACTED]"
OUTCOMES = {"allow": "AUTO_ALLOW", "review": "REQUIRE_REVIEW", "deny": "DENY"}
_RULE_DECISION = {"AUTO_ALLOW": "ALLOW", "REQUIRE_REVIEW": "REVIEW", "DENY": "DENY"}
DEFAULT_RULE = "(default)"  # how a decision made by the default, not a rule, is named


@dataclass(frozen=True)
class Recorded:
    """One recorded decision: the (redacted) request and what was decided then."""

    decision_id: str
    request: pb.common.ActionRequest
    outcome: str  # AUTO_ALLOW | REQUIRE_REVIEW | DENY
    rule: str  # the deciding rule, DEFAULT_RULE when the default decided
    policy_version: str
    time: dt.datetime


def recorded_from_payload(
    payload: Any, *, decision_id: str, time: dt.datetime, policy_version: str
) -> Recorded:
    """A decision entry's payload as a Recorded; ValueError says what is missing."""
    if not isinstance(payload, dict):
        raise ValueError("payload is not an object")
    request, decision = payload.get("request"), payload.get("decision")
    if not isinstance(request, dict):
        raise ValueError("payload.request is missing")
    if not isinstance(decision, dict):
        raise ValueError("payload.decision is missing")
    outcome = decision.get("outcome")
    if outcome not in _RULE_DECISION:
        raise ValueError(f"payload.decision.outcome {outcome!r} is not an outcome")
    try:
        # Unknown fields are ignored: a log written by a newer server should still replay.
        req = json_format.ParseDict(request, pb.common.ActionRequest(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise ValueError(f"payload.request: {exc}") from None
    return Recorded(
        decision_id=decision_id or str(decision.get("decision_id", "")),
        request=req,
        outcome=outcome,
        rule=_deciding_rule(decision, outcome),
        policy_version=policy_version or str(decision.get("policy_version", "")),
        time=time,
    )


def _deciding_rule(decision: dict[str, Any], outcome: str) -> str:
    # The audit payload keeps every match but not which one decided; by the semantics it is
    # the first non-shadow match of the outcome's severity (files by path, rules in order).
    if decision.get("default_applied"):
        return DEFAULT_RULE
    wanted = _RULE_DECISION[outcome]
    for m in decision.get("matched_rules") or []:
        if isinstance(m, dict) and not m.get("shadow") and m.get("decision") == wanted:
            return str(m.get("rule", ""))
    return DEFAULT_RULE


@dataclass(frozen=True)
class Example:
    """One replayed decision shown as an example of its group."""

    decision_id: str
    action: str
    params: dict[str, Any]
    old_rule: str
    new_rule: str
    reason: str


@dataclass
class Group:
    """Decisions that went from one outcome to another, decided (now) by one rule."""

    old_outcome: str
    new_outcome: str
    new_rule: str
    count: int = 0
    examples: list[Example] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether the outcome differs from the recorded one."""
        return self.old_outcome != self.new_outcome


@dataclass
class ShadowGroup:
    """Matches of one shadow rule: what it would have decided, and how often."""

    rule: str
    would_decide: str
    count: int = 0
    examples: list[Example] = field(default_factory=list)


@dataclass
class ErrorGroup:
    """One rule failing with one message under the new bundle (or a record that would not parse)."""

    rule: str
    error: str
    count: int = 0
    examples: list[str] = field(default_factory=list)  # decision ids


@dataclass
class ReplayReport:
    """The aggregate of a replay."""

    bundle_version: str
    total: int = 0
    changed: int = 0
    rule_changed: int = 0  # same outcome, another deciding rule
    redacted: int = 0
    groups: list[Group] = field(default_factory=list)
    shadow: list[ShadowGroup] = field(default_factory=list)
    errors: list[ErrorGroup] = field(default_factory=list)
    unreadable: list[ErrorGroup] = field(default_factory=list)
    old_versions: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-like data (changed groups first, then by count)."""

        def ex(e: Example) -> dict[str, Any]:
            return {
                "decision_id": e.decision_id,
                "action": e.action,
                "params": e.params,
                "old_rule": e.old_rule,
                "new_rule": e.new_rule,
                "reason": e.reason,
            }

        return {
            "bundle_version": self.bundle_version,
            "total": self.total,
            "changed": self.changed,
            "rule_changed": self.rule_changed,
            "redacted": self.redacted,
            "old_policy_versions": dict(self.old_versions),
            "groups": [
                {
                    "old_outcome": g.old_outcome,
                    "new_outcome": g.new_outcome,
                    "new_rule": g.new_rule,
                    "changed": g.changed,
                    "count": g.count,
                    "examples": [ex(e) for e in g.examples],
                }
                for g in self.groups
            ],
            "shadow": [
                {
                    "rule": s.rule,
                    "would_decide": s.would_decide,
                    "count": s.count,
                    "examples": [ex(e) for e in s.examples],
                }
                for s in self.shadow
            ],
            "errors": [_error_json(e) for e in self.errors],
            "unreadable": [_error_json(e) for e in self.unreadable],
        }


def _error_json(e: ErrorGroup) -> dict[str, Any]:
    return {"rule": e.rule, "error": e.error, "count": e.count, "examples": e.examples}


class Replay:
    """Accumulates replayed decisions; `report()` gives the aggregate so far."""

    def __init__(
        self, bundle: Bundle, default: DefaultDecision | None = None, examples: int = 3
    ) -> None:
        self.bundle = bundle
        self.default = default or DefaultDecision()
        self.examples = max(examples, 0)
        self._report = ReplayReport(bundle_version=bundle.version)
        self._groups: dict[tuple[str, str, str], Group] = {}
        self._shadow: dict[tuple[str, str], ShadowGroup] = {}
        self._errors: dict[tuple[str, str], ErrorGroup] = {}
        self._unreadable: dict[str, ErrorGroup] = {}

    def add(self, rec: Recorded) -> Evaluation:
        """Re-decide one recorded request with the new bundle and count the result."""
        ev = evaluate(self.bundle, rec.request, rec.time, self.default)
        r = self._report
        r.total += 1
        r.old_versions[rec.policy_version] = r.old_versions.get(rec.policy_version, 0) + 1
        new_outcome = OUTCOMES[ev.outcome]
        new_rule = ev.deciding_rule.name if ev.deciding_rule else DEFAULT_RULE
        if new_outcome != rec.outcome:
            r.changed += 1
        elif new_rule != rec.rule:
            r.rule_changed += 1
        if _has_mask(rec.request):
            r.redacted += 1
        key = (rec.outcome, new_outcome, new_rule)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(*key)
        group.count += 1
        self._example(group.examples, rec, new_rule, ev.reason)
        for m in ev.matched:
            if m.error:
                err = self._errors.setdefault((m.rule, m.error), ErrorGroup(m.rule, m.error))
                err.count += 1
                if len(err.examples) < self.examples:
                    err.examples.append(rec.decision_id)
            if m.shadow and m.decision and not m.error.startswith("when:"):
                sh = self._shadow.setdefault((m.rule, m.decision), ShadowGroup(m.rule, m.decision))
                sh.count += 1
                self._example(sh.examples, rec, new_rule, m.reason)
        return ev

    def add_unreadable(self, decision_id: str, error: str) -> None:
        """Count a decision entry that could not be turned into a request."""
        err = self._unreadable.setdefault(error, ErrorGroup("", error))
        err.count += 1
        if len(err.examples) < self.examples:
            err.examples.append(decision_id)

    def _example(self, into: list[Example], rec: Recorded, new_rule: str, reason: str) -> None:
        if len(into) < self.examples:
            params = json_format.MessageToDict(rec.request.action.params)
            action = rec.request.action.name
            into.append(Example(rec.decision_id, action, params, rec.rule, new_rule, reason))

    def report(self) -> ReplayReport:
        """The aggregate: changed groups first, then the largest."""
        r = self._report
        r.groups = sorted(self._groups.values(), key=lambda g: (not g.changed, -g.count))
        r.shadow = sorted(self._shadow.values(), key=lambda s: -s.count)
        r.errors = sorted(self._errors.values(), key=lambda e: -e.count)
        r.unreadable = sorted(self._unreadable.values(), key=lambda e: -e.count)
        return r


def replay(
    bundle: Bundle,
    records: Iterable[Recorded],
    default: DefaultDecision | None = None,
    examples: int = 3,
) -> ReplayReport:
    """Replay every record against `bundle` and return the aggregate."""
    acc = Replay(bundle, default, examples)
    for rec in records:
        acc.add(rec)
    return acc.report()


def _has_mask(req: pb.common.ActionRequest) -> bool:
    # Serialized bytes contain the mask iff some string field or Struct value holds it.
    return MASK.encode() in req.SerializeToString()
