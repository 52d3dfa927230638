"""The per-rule insight computation: counts, time to review, disagreement, flags."""

from __future__ import annotations

import datetime as dt

import pytest

from signoff import pb
from signoff.core import insights
from signoff.core.insights import AUTO_ALLOW, NEEDS_REVIEWERS, Thresholds, percentile, rule_rows

R = pb.review
C = pb.common
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
STATES = {
    "approved": R.REVIEW_STATE_APPROVED,
    "edited": R.REVIEW_STATE_MODIFIED,
    "rejected": R.REVIEW_STATE_REJECTED,
    "expired": R.REVIEW_STATE_EXPIRED,
    "cancelled": R.REVIEW_STATE_CANCELLED,
    "pending": R.REVIEW_STATE_PENDING,
}


def review(
    state: str,
    *,
    after_s: float = 60,
    rules: tuple[tuple[str, str], ...] = (("refunds", "large"),),
    action: str = "refund.issue",
    reviewer: str = "alice",
    shadow: tuple[tuple[str, str], ...] = (),
) -> R.Review:
    r = R.Review(state=STATES[state])
    r.request.action.name = action
    r.created_at.FromDatetime(T0)
    for policy, rule in rules:
        r.matched_rules.add(
            policy=policy, rule=rule, file=f"{policy}.yaml", line=7, decision=C.RULE_DECISION_REVIEW
        )
    for policy, rule in shadow:
        r.matched_rules.add(policy=policy, rule=rule, decision=C.RULE_DECISION_REVIEW, shadow=True)
    if state != "pending":
        r.resolved_at.FromDatetime(T0 + dt.timedelta(seconds=after_s))
    if state in ("approved", "edited", "rejected"):
        r.acts.add(reviewer=reviewer)
    return r


def test_counts_each_state_and_the_rule_position() -> None:
    states = ["approved"] * 3 + ["edited", "rejected", "expired", "cancelled", "pending"]
    [row] = rule_rows([review(s) for s in states], Thresholds())
    assert (row.policy, row.rule, row.file, row.line) == ("refunds", "large", "refunds.yaml", 7)
    assert row.reviews == 8
    counts = (row.approved_unchanged, row.edited, row.rejected, row.expired)
    assert counts == (3, 1, 1, 1)
    assert (row.cancelled, row.pending) == (1, 1)


def test_time_to_review_counts_reviewer_decisions_only() -> None:
    reviews = [review("approved", after_s=s) for s in range(10, 110, 10)]  # 10..100
    reviews += [review("expired", after_s=9999), review("cancelled", after_s=9999)]
    [row] = rule_rows(reviews, Thresholds())
    assert (row.median_s, row.p90_s) == (50, 90)


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [([], 50, 0.0), ([7.0], 90, 7.0), ([1.0, 2.0], 50, 1.0), ([1.0, 2.0, 3.0], 90, 3.0)],
)
def test_percentile_is_nearest_rank(values: list[float], p: float, expected: float) -> None:
    assert percentile(values, p) == expected


def test_a_review_counts_for_every_rule_that_asked_for_it_but_not_shadow_rules() -> None:
    both = review("approved", rules=(("refunds", "large"), ("fraud", "new_payee")))
    shadowed = review("approved", shadow=(("refunds", "trial"),))
    rows = rule_rows([both, shadowed], Thresholds())
    assert [(r.policy, r.rule, r.reviews) for r in rows] == [
        ("refunds", "large", 2),
        ("fraud", "new_payee", 1),
    ]


def test_reviews_no_rule_asked_for_count_for_the_default_row() -> None:
    [row] = rule_rows([review("approved", rules=())], Thresholds())
    assert (row.policy, row.rule) == insights.DEFAULT_RULE


def test_distinct_reviewers() -> None:
    reviews = [review("approved", reviewer=r) for r in ("alice", "bob", "alice")]
    [row] = rule_rows([*reviews, review("expired")], Thresholds())
    assert row.reviewers == 2


def test_disagreement_is_the_minority_share_among_similar_reviews() -> None:
    # refund.issue: 3 approvals (one edited) vs 1 rejection -> 1 minority of 4 compared;
    # refund.void: alone, nothing to compare; expired ones are not a reviewer's verdict.
    reviews = [review(s) for s in ("approved", "approved", "edited", "rejected", "expired")]
    reviews.append(review("rejected", action="refund.void"))
    [row] = rule_rows(reviews, Thresholds())
    assert (row.compared, row.disagreement) == (4, 0.25)


def test_similar_means_the_same_rule_set_too() -> None:
    other = review("rejected", rules=(("refunds", "large"), ("fraud", "new_payee")))
    rows = {r.rule: r for r in rule_rows([review("approved"), other], Thresholds())}
    assert (rows["large"].compared, rows["large"].disagreement) == (0, 0.0)


def test_unanimous_similar_reviews_do_not_disagree() -> None:
    [row] = rule_rows([review("rejected") for _ in range(3)], Thresholds())
    assert (row.compared, row.disagreement) == (3, 0.0)


def test_a_rule_approved_unchanged_almost_always_is_an_auto_allow_candidate() -> None:
    reviews = [review("approved") for _ in range(19)] + [review("edited")]
    [row] = rule_rows(reviews, Thresholds(min_reviews=20))
    assert [f.kind for f in row.flags] == [AUTO_ALLOW]
    assert row.flags[0].reason == "approved unchanged 19 of 20 decided reviews (95% >= 95%)"


def test_no_flag_below_the_minimum_or_the_share() -> None:
    few = [review("approved") for _ in range(19)]
    [row] = rule_rows(few, Thresholds(min_reviews=20))
    assert list(row.flags) == []
    mixed = [review("approved") for _ in range(18)] + [review("edited"), review("rejected")]
    [row] = rule_rows(mixed, Thresholds(min_reviews=20))
    assert list(row.flags) == []


def test_a_rule_whose_reviews_expire_needs_reviewers_or_time() -> None:
    reviews = [review("rejected") for _ in range(9)] + [review("expired")]
    [row] = rule_rows(reviews, Thresholds(min_reviews=10, expired_share=0.1))
    assert [f.kind for f in row.flags] == [NEEDS_REVIEWERS]
    assert "expired 1 of 10 decided reviews (10% >= 10%)" in row.flags[0].reason


def test_cancelled_and_pending_reviews_do_not_count_towards_a_flag() -> None:
    reviews = [review("approved") for _ in range(5)] + [review("pending") for _ in range(20)]
    [row] = rule_rows(reviews, Thresholds(min_reviews=20))
    assert list(row.flags) == []


def test_rows_are_ordered_by_reviews_then_name() -> None:
    reviews = [review("approved", rules=(("b", "x"),)), review("approved", rules=(("a", "y"),))]
    reviews.append(review("approved", rules=(("c", "z"),)))
    reviews.append(review("approved", rules=(("c", "z"),)))
    assert [r.policy for r in rule_rows(reviews, Thresholds())] == ["c", "a", "b"]


def test_no_reviews_no_rows() -> None:
    assert rule_rows([], Thresholds()) == []


def test_a_tally_fed_page_by_page_equals_one_pass() -> None:
    reviews = [review(s, after_s=n * 7) for n, s in enumerate(["approved", "rejected"] * 5)]
    tally = insights.Tally()
    tally.add(reviews[:3])
    tally.add(reviews[3:])
    assert tally.rows(Thresholds(min_reviews=1)) == rule_rows(reviews, Thresholds(min_reviews=1))
