"""A reviewer's edit against the policy (pure): the edited action is evaluated like a request,
and a reviewer settles it alone only if the policy would have let them settle it anyway.

Trust model, invariant 1 ("no edit escapes the policy"). The edit is refused when the edited
action would be denied, or would need review by another group or by more approvers than the
review asks for: a reviewer of group A cannot turn an action into one only group B (or two
people) may allow. The reviewer rejects instead and the agent asks again, which opens the
right review. Reopening the review for another group was considered and not done: it would
let one reviewer move work into another group's queue under a request nobody made.

The re-evaluation sees the review's stored request, which is redacted: values at the
policy's redact paths are the mask, unless the reviewer typed a new value there (that value
is theirs and visible). See docs/policies.md "Reviews and edits" for what this means for
rules that read redacted fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import struct_pb2

from signoff import pb
from signoff.core.decide import Decision, Evaluation
from signoff.core.redact import MASK
from signoff.errors import FailedPrecondition

OUTCOMES = {"allow": "AUTO_ALLOW", "review": "REQUIRE_REVIEW", "deny": "DENY"}


@dataclass(frozen=True)
class Recheck:
    """How the bundle in force decides an edited action."""

    outcome: Decision
    rule: str  # "policy/rule (file:line)"; "" when the default decision applied
    reason: str
    reviewer_group: str  # "" unless the outcome is review
    approvals: int  # approvals the edited action needs (0 unless review)
    policy_version: str
    rule_failed: bool  # the deciding rule failed to evaluate: its on_error decided
    failed_rules: tuple[str, ...]  # every enforced rule that failed to evaluate, as `rule`
    redacted: tuple[str, ...]  # paths the re-evaluation saw masked (unless the edit set them)

    def payload(self) -> dict[str, Any]:
        """The re-evaluation as the `review.modified` audit entry records it."""
        out: dict[str, Any] = {
            "outcome": OUTCOMES[self.outcome],
            "rule": self.rule,
            "reviewer_group": self.reviewer_group,
            "approvals_required": self.approvals,
            "policy_version": self.policy_version,
        }
        # Which rules failed, not their CEL error text: that can quote a value the reviewer
        # typed at a redacted path, and the audit log never stores one.
        if self.failed_rules:
            out["failed_rules"] = list(self.failed_rules)
        return out


def edited_request(review: pb.review.Review, params: struct_pb2.Struct) -> pb.common.ActionRequest:
    """The action the edit asks for: the review's (redacted) request with the edited params."""
    req = pb.common.ActionRequest()
    req.CopyFrom(review.request)
    req.action.params.Clear()
    req.action.params.MergeFrom(params)
    return req


def approvals_needed(ev: Evaluation) -> int:
    """Approvals a review opened by `ev` asks for: the deciding review rule's, else one."""
    rule = ev.deciding_rule
    return rule.approvals if rule is not None and rule.decision == "review" else 1


def recheck(ev: Evaluation, policy_version: str) -> Recheck:
    """Summarise the evaluation of an edited request (redacted as the review stores it)."""
    rule = ev.deciding_rule
    where = _label(rule.policy, rule.name, rule.file, rule.line) if rule is not None else ""
    failed = [m for m in ev.matched if m.error and not m.shadow]
    return Recheck(
        outcome=ev.outcome,
        rule=where,
        reason=ev.reason,
        reviewer_group=ev.reviewer_group,
        approvals=approvals_needed(ev) if ev.outcome == "review" else 0,
        policy_version=policy_version,
        rule_failed=rule is not None
        and any((m.policy, m.rule) == (rule.policy, rule.name) for m in failed),
        failed_rules=tuple(_label(m.policy, m.rule, m.file, m.line) for m in failed),
        redacted=ev.redact,
    )


def check_edit(review: pb.review.Review, edit: Recheck) -> None:
    """Refuse an edit this review's reviewer may not settle alone (FailedPrecondition)."""
    if edit.outcome == "allow":
        return
    by = _by(edit)
    if edit.outcome == "deny":
        raise FailedPrecondition(
            f"edit refused: the policy would deny the edited action ({by}): "
            f"{edit.reason.rstrip('.')}{_mask_note(edit)}. Edit it within the policy, or "
            "reject the review",
            current_state="PENDING",
        )
    # An escalated review is settled by the group it was escalated to, standing in for the
    # groups it came from (the policy's own on_timeout said so).
    groups = (review.reviewer_group, *review.escalated_from)
    if edit.reviewer_group not in groups:
        raise FailedPrecondition(
            f"edit refused: the edited action needs review by group {edit.reviewer_group!r} "
            f"({by}), not {review.reviewer_group!r}{_mask_note(edit)}; this reviewer cannot "
            "settle it alone: reject the review and let the agent ask again",
            current_state="PENDING",
        )
    if edit.approvals > review.approvals_required:
        raise FailedPrecondition(
            f"edit refused: the edited action needs {edit.approvals} approvals ({by}), this "
            f"review {review.approvals_required}; this reviewer cannot settle it alone: "
            "reject the review and let the agent ask again",
            current_state="PENDING",
        )


def _label(policy: str, rule: str, file: str, line: int) -> str:
    return f"{policy}/{rule} ({file}:{line})"


def _by(edit: Recheck) -> str:
    if not edit.rule:
        return "no rule matches it: the server's default decision"
    if edit.rule_failed:
        return f"rule {edit.rule} failed to evaluate on it, and its on_error decides"
    return f"rule {edit.rule}"


def _mask_note(edit: Recheck) -> str:
    if not (edit.rule_failed and edit.redacted):
        return ""
    # Most likely the rule read a redacted value: say so, or the author hunts a CEL bug.
    return (
        f"; the server checks an edit with the redacted values ({', '.join(edit.redacted)}) "
        f"masked as {MASK!r}, as the reviewer saw them: it never holds the real ones"
    )
