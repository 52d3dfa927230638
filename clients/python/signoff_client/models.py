"""The typed values the client sends and returns: plain frozen dataclasses over the protos.

Every result keeps the message it came from as `.raw`, so that a field added to the API
is reachable before this module learns about it.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import timestamp_pb2

from signoff_client import _struct
from signoff_client._gen import common_pb2, decision_pb2
from signoff_client.errors import SignoffError

__all__ = [
    "Decision",
    "Explanation",
    "MatchedRule",
    "Outcome",
    "Principal",
    "Request",
    "Resource",
    "RuleDecision",
    "RuleTrace",
    "Screening",
    "VariableTrace",
]


class Outcome(enum.Enum):
    """What the service decided about an action."""

    AUTO_ALLOW = common_pb2.OUTCOME_AUTO_ALLOW
    REQUIRE_REVIEW = common_pb2.OUTCOME_REQUIRE_REVIEW
    DENY = common_pb2.OUTCOME_DENY

    @classmethod
    def from_proto(cls, value: int) -> Outcome:
        """Return the outcome for a wire value; fail closed on one this client does not know."""
        try:
            return cls(value)
        except ValueError:
            # Never guess: an unknown outcome read as "allowed" would let an agent act.
            raise SignoffError(
                f"the server sent outcome {value}, unknown to this client; upgrade signoff-client"
            ) from None


class RuleDecision(enum.Enum):
    """What a policy rule asks for when it matches."""

    ALLOW = common_pb2.RULE_DECISION_ALLOW
    REVIEW = common_pb2.RULE_DECISION_REVIEW
    DENY = common_pb2.RULE_DECISION_DENY

    @classmethod
    def from_proto(cls, value: int) -> RuleDecision | None:
        """Return the rule decision for a wire value, None for unset or unknown."""
        try:
            return cls(value)
        except ValueError:
            return None


def _timestamp(ts: timestamp_pb2.Timestamp) -> dt.datetime:
    when: dt.datetime = ts.ToDatetime(tzinfo=dt.UTC)
    return when


@dataclass(frozen=True, slots=True)
class MatchedRule:
    """A rule that matched (its `when` was true) or failed to evaluate."""

    file: str
    policy: str
    rule: str
    decision: RuleDecision | None
    reason: str
    shadow: bool
    error: str
    reviewer_group: str
    line: int

    @classmethod
    def from_proto(cls, raw: common_pb2.MatchedRule) -> MatchedRule:
        """Return the rule of a `signoff.v1.MatchedRule` message."""
        return cls(
            file=raw.file,
            policy=raw.policy,
            rule=raw.rule,
            decision=RuleDecision.from_proto(raw.decision),
            reason=raw.reason,
            shadow=raw.shadow,
            error=raw.error,
            reviewer_group=raw.reviewer_group,
            line=raw.line,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The service's answer to one action request."""

    decision_id: str
    request_id: str
    outcome: Outcome
    reason: str
    reviewer_group: str
    review_id: str
    matched_rules: tuple[MatchedRule, ...]
    policy_version: str
    evaluated_at: dt.datetime
    default_applied: bool
    replayed: bool
    raw: common_pb2.Decision = field(repr=False, compare=False)

    @property
    def allowed(self) -> bool:
        """True when the agent may go ahead now."""
        return self.outcome is Outcome.AUTO_ALLOW

    @property
    def receipt(self) -> common_pb2.Receipt | None:
        """The server's signed receipt (AUTO_ALLOW only); see `receipts.verify`."""
        return self.raw.receipt if self.raw.HasField("receipt") else None

    @property
    def denied(self) -> bool:
        """True when the agent must not take the step."""
        return self.outcome is Outcome.DENY

    @property
    def needs_review(self) -> bool:
        """True when a person of `reviewer_group` must approve first (see `review_id`)."""
        return self.outcome is Outcome.REQUIRE_REVIEW

    @classmethod
    def from_proto(cls, raw: common_pb2.Decision) -> Decision:
        """Return the decision of a `signoff.v1.Decision` message."""
        return cls(
            decision_id=raw.decision_id,
            request_id=raw.request_id,
            outcome=Outcome.from_proto(raw.outcome),
            reason=raw.reason,
            reviewer_group=raw.reviewer_group,
            review_id=raw.review_id,
            matched_rules=tuple(MatchedRule.from_proto(m) for m in raw.matched_rules),
            policy_version=raw.policy_version,
            evaluated_at=_timestamp(raw.evaluated_at),
            default_applied=raw.default_applied,
            replayed=raw.replayed,
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """How one rule of an applicable policy evaluated (from `explain`)."""

    file: str
    policy: str
    rule: str
    line: int
    when: str
    decision: RuleDecision | None
    matched: bool
    error: str
    reason: str
    shadow: bool
    effect: RuleDecision | None  # None when the rule contributed nothing

    @classmethod
    def from_proto(cls, raw: decision_pb2.RuleTrace) -> RuleTrace:
        """Return the trace of a `signoff.v1.RuleTrace` message."""
        return cls(
            file=raw.file,
            policy=raw.policy,
            rule=raw.rule,
            line=raw.line,
            when=raw.when,
            decision=RuleDecision.from_proto(raw.decision),
            matched=raw.matched,
            error=raw.error,
            reason=raw.reason,
            shadow=raw.shadow,
            effect=RuleDecision.from_proto(raw.effect),
        )


@dataclass(frozen=True, slots=True)
class VariableTrace:
    """The value (or error) of one policy variable for the explained request."""

    policy: str
    name: str
    value: Any
    error: str

    @classmethod
    def from_proto(cls, raw: decision_pb2.VariableTrace) -> VariableTrace:
        """Return the trace of a `signoff.v1.VariableTrace` message."""
        return cls(
            policy=raw.policy,
            name=raw.name,
            value=_struct.from_value(raw.value),
            error=raw.error,
        )


@dataclass(frozen=True, slots=True)
class Explanation:
    """What `explain` found: the decision Evaluate would give and every rule's evaluation."""

    decision: Decision  # its decision_id is empty: nothing was stored
    rules: tuple[RuleTrace, ...]
    variables: tuple[VariableTrace, ...]
    decided_by: str
    applicable_files: tuple[str, ...]
    raw: decision_pb2.Explanation = field(repr=False, compare=False)

    @classmethod
    def from_proto(cls, raw: decision_pb2.Explanation) -> Explanation:
        """Return the explanation of a `signoff.v1.Explanation` message."""
        return cls(
            decision=Decision.from_proto(raw.decision),
            rules=tuple(RuleTrace.from_proto(r) for r in raw.rules),
            variables=tuple(VariableTrace.from_proto(v) for v in raw.variables),
            decided_by=raw.decided_by,
            applicable_files=tuple(raw.applicable_files),
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class Screening:
    """What `screen` found for one action: denied whatever its params, or not (yet) known."""

    denied: bool
    reason: str
    rule: str  # "rule <name> (<file>:<line>)" when denied
    policy_version: str  # the bundle that answered: the answer holds until it changes

    @classmethod
    def from_proto(cls, raw: decision_pb2.Screening, policy_version: str) -> Screening:
        """Return the screening of a `signoff.v1.Screening` message."""
        return cls(raw.denied, raw.reason, raw.rule, policy_version)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: in CEL, the variable `principal`."""

    id: str
    kind: str = ""  # "agent", "user" or "service"
    roles: Sequence[str] = ()
    tags: Sequence[str] = ()
    on_behalf_of: str = ""  # the user the agent acts for (separation of duties)
    attributes: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Resource:
    """What the action touches: in CEL, the variable `resource`."""

    kind: str = ""
    id: str = ""
    attributes: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """One action request, as `evaluate` takes it; the element type of `evaluate_batch`."""

    action: str
    params: Mapping[str, Any] | None = None
    principal: str | Principal | Mapping[str, Any] | common_pb2.Principal | None = None
    resource: Resource | Mapping[str, Any] | common_pb2.Resource | None = None
    context: Mapping[str, Any] | None = None
    justification: str = ""
    request_id: str | None = None  # None: the client generates one (see README)
