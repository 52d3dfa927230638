"""Evaluations as API messages: the Decision and the Explanation (pure).

One place for the conversion, shared by the server (Evaluate, Explain) and the offline
`signoff explain`, so that both always show the same thing.
"""

from __future__ import annotations

import datetime as dt

from google.protobuf import json_format

from signoff import pb
from signoff.core.decide import Evaluation

OUTCOMES = {
    "allow": pb.common.OUTCOME_AUTO_ALLOW,
    "review": pb.common.OUTCOME_REQUIRE_REVIEW,
    "deny": pb.common.OUTCOME_DENY,
}
RULE_DECISIONS = {
    "allow": pb.common.RULE_DECISION_ALLOW,
    "review": pb.common.RULE_DECISION_REVIEW,
    "deny": pb.common.RULE_DECISION_DENY,
    "": pb.common.RULE_DECISION_UNSPECIFIED,
}


def decision_message(
    ev: Evaluation,
    version: str,
    now: dt.datetime,
    *,
    decision_id: str = "",
    request_id: str = "",
) -> pb.common.Decision:
    """The Decision message of an evaluation."""
    d = pb.common.Decision(
        decision_id=decision_id,
        request_id=request_id,
        outcome=OUTCOMES[ev.outcome],
        reason=ev.reason,
        reviewer_group=ev.reviewer_group if ev.outcome == "review" else "",
        policy_version=version,
        default_applied=ev.default_applied,
    )
    d.evaluated_at.FromDatetime(now)
    for m in ev.matched:
        d.matched_rules.add(
            file=m.file,
            policy=m.policy,
            rule=m.rule,
            decision=RULE_DECISIONS[m.decision],
            reason=m.reason,
            shadow=m.shadow,
            error=m.error,
            reviewer_group=m.reviewer_group,
            line=m.line,
        )
    return d


def explanation(ev: Evaluation, version: str, now: dt.datetime) -> pb.decision.Explanation:
    """The Explanation of an evaluation made with trace=True (nothing stored: no ids)."""
    out = pb.decision.Explanation(
        decision=decision_message(ev, version, now), decided_by=ev.decided_by
    )
    out.applicable_files.extend(ev.applicable_files)
    for t in ev.rule_traces:
        out.rules.add(
            file=t.file,
            policy=t.policy,
            rule=t.rule,
            line=t.line,
            when=t.when,
            decision=RULE_DECISIONS[t.decision],
            matched=t.matched,
            error=t.error,
            reason=t.reason,
            shadow=t.shadow,
            effect=RULE_DECISIONS[t.effect or ""],
        )
    for v in ev.variable_traces:
        vt = out.variables.add(policy=v.policy, name=v.name, error=v.error)
        if not v.error:
            json_format.ParseDict(v.value, vt.value)
    return out
