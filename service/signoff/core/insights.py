"""Policy insights: what the reviews each rule asked for became (pure; no storage, no gRPC).

A review counts for every non-shadow matched rule that decided REVIEW (a review no rule asked
for -- the default decision -- counts for the row ("", "(default)")). Per rule: reviews by
final state, time to review (opening to resolution, for the ones a reviewer decided:
approved, edited, rejected), distinct reviewers, and disagreement:

"Similar" reviews are those ListPrecedents compares: the same action name under the same set
of (policy, rule) pairs. Among a rule's reviewer-decided reviews, in every such bucket of at
least two, the verdicts split into approve (unchanged or edited) and reject; the reviews on
the minority side are the disagreements. `disagreement` = minority reviews / reviews in
buckets of two or more (`compared`); 0 means similar requests always got the same verdict,
0.5 the most divided.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from signoff import pb
from signoff.core.reviews import rule_set

R = pb.review
AUTO_ALLOW = "auto_allow_candidate"
NEEDS_REVIEWERS = "needs_more_reviewers_or_time"
DEFAULT_RULE = ("", "(default)")
_STATE_FIELD = {
    R.REVIEW_STATE_APPROVED: "approved_unchanged",
    R.REVIEW_STATE_MODIFIED: "edited",
    R.REVIEW_STATE_REJECTED: "rejected",
    R.REVIEW_STATE_EXPIRED: "expired",
    R.REVIEW_STATE_CANCELLED: "cancelled",
    R.REVIEW_STATE_PENDING: "pending",
}
_BY_REVIEWER = (R.REVIEW_STATE_APPROVED, R.REVIEW_STATE_MODIFIED, R.REVIEW_STATE_REJECTED)


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    """When a rule is flagged."""

    min_reviews: int = 20  # decided reviews (approved, edited, rejected, expired) at least
    auto_allow_share: float = 0.95  # approved unchanged / decided at least
    expired_share: float = 0.10  # expired / decided at least


@dataclass(slots=True)
class _Acc:
    """What is gathered for one rule while reading reviews."""

    file: str = ""
    line: int = 0
    states: Counter[str] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)
    reviewers: set[str] = field(default_factory=set)
    # (action name, rule set) -> [approvals, rejections]
    buckets: dict[tuple[str, frozenset[tuple[str, str]]], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0])
    )


class Tally:
    """Per-rule accumulators fed page by page, so a long window is never held whole."""

    def __init__(self) -> None:
        self._accs: dict[tuple[str, str], _Acc] = {}

    def add(self, reviews: Iterable[R.Review]) -> None:
        """Count `reviews` towards every rule that asked for them."""
        for review in reviews:
            for key, file, line in _asking_rules(review):
                acc = self._accs.get(key)
                if acc is None:
                    acc = self._accs[key] = _Acc(file=file, line=line)
                _add(acc, review)

    def rows(self, thresholds: Thresholds) -> list[pb.policy.RuleInsight]:
        """One row per rule seen, most reviews first."""
        rows = [_row(key, acc, thresholds) for key, acc in self._accs.items()]
        rows.sort(key=lambda r: (-r.reviews, r.policy, r.rule))
        return rows


def rule_rows(reviews: Iterable[R.Review], thresholds: Thresholds) -> list[pb.policy.RuleInsight]:
    """One row per rule that asked for any of `reviews`, most reviews first."""
    tally = Tally()
    tally.add(reviews)
    return tally.rows(thresholds)


def percentile(sorted_values: list[float], p: float) -> float:
    """The nearest-rank `p`-th percentile (0 < p <= 100) of ascending values; 0.0 for none."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _asking_rules(review: R.Review) -> list[tuple[tuple[str, str], str, int]]:
    found = {
        (m.policy, m.rule): (m.file, m.line)
        for m in review.matched_rules
        if not m.shadow and m.decision == pb.common.RULE_DECISION_REVIEW
    }
    if not found:
        return [(DEFAULT_RULE, "", 0)]
    return [(key, file, line) for key, (file, line) in found.items()]


def _add(acc: _Acc, review: R.Review) -> None:
    state = review.state
    acc.states[_STATE_FIELD.get(state, "pending")] += 1
    acc.reviewers.update(act.reviewer for act in review.acts if act.reviewer)
    if state not in _BY_REVIEWER:
        return
    if review.HasField("resolved_at") and review.HasField("created_at"):
        waited = review.resolved_at.ToDatetime() - review.created_at.ToDatetime()
        acc.seconds.append(max(0.0, waited.total_seconds()))
    bucket = acc.buckets[(review.request.action.name, rule_set(review))]
    bucket[1 if state == R.REVIEW_STATE_REJECTED else 0] += 1


def _row(key: tuple[str, str], acc: _Acc, t: Thresholds) -> pb.policy.RuleInsight:
    s = acc.states
    seconds = sorted(acc.seconds)
    compared = sum(a + r for a, r in acc.buckets.values() if a + r >= 2)
    minority = sum(min(a, r) for a, r in acc.buckets.values() if a + r >= 2)
    row = pb.policy.RuleInsight(
        policy=key[0],
        rule=key[1],
        file=acc.file,
        line=acc.line,
        reviews=s.total(),
        approved_unchanged=s["approved_unchanged"],
        edited=s["edited"],
        rejected=s["rejected"],
        expired=s["expired"],
        cancelled=s["cancelled"],
        pending=s["pending"],
        median_s=percentile(seconds, 50),
        p90_s=percentile(seconds, 90),
        reviewers=len(acc.reviewers),
        disagreement=minority / compared if compared else 0.0,
        compared=compared,
    )
    row.flags.extend(flags(row, t))
    return row


def flags(row: pb.policy.RuleInsight, t: Thresholds) -> list[pb.policy.InsightFlag]:
    """The flags of one row: relax it (auto-allow) or staff it (reviewers, timeout)."""
    decided = row.approved_unchanged + row.edited + row.rejected + row.expired
    if decided < t.min_reviews or decided == 0:
        return []
    out: list[pb.policy.InsightFlag] = []
    approved = row.approved_unchanged / decided
    if approved >= t.auto_allow_share:
        out.append(
            pb.policy.InsightFlag(
                kind=AUTO_ALLOW,
                reason=f"approved unchanged {row.approved_unchanged} of {decided} decided "
                f"reviews ({approved:.0%} >= {t.auto_allow_share:.0%})",
            )
        )
    expired = row.expired / decided
    if expired >= t.expired_share:
        out.append(
            pb.policy.InsightFlag(
                kind=NEEDS_REVIEWERS,
                reason=f"expired {row.expired} of {decided} decided reviews "
                f"({expired:.0%} >= {t.expired_share:.0%}): add reviewers or a longer timeout",
            )
        )
    return out
