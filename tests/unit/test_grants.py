"""Standing approvals: a grant's bounds are checked against the approved action, and a later
request is covered only when it is inside every bound."""

from __future__ import annotations

import re

import pytest

from signoff.grants import Bound, Scope, check_bounds, covers, default_bounds

APPROVED = {"amount": 750, "currency": "EUR", "card": {"country": "FR"}, "rush": False}
SCOPE = Scope(
    action_name="refund.issue",
    principal_id="agent-1",
    bounds=(Bound("amount", "<=", 750), Bound("currency", "==", "EUR")),
)


@pytest.mark.parametrize(
    ("action", "principal", "params", "covered"),
    [
        ("refund.issue", "agent-1", {"amount": 750, "currency": "EUR"}, True),
        ("refund.issue", "agent-1", {"amount": 20.5, "currency": "EUR", "x": 1}, True),
        ("refund.issue", "agent-1", {"amount": 750.01, "currency": "EUR"}, False),
        ("refund.issue", "agent-1", {"amount": 100, "currency": "USD"}, False),
        ("refund.issue", "agent-1", {"currency": "EUR"}, False),  # missing: never covered
        ("refund.issue", "agent-1", {"amount": "100", "currency": "EUR"}, False),
        ("refund.issue", "agent-1", {"amount": True, "currency": "EUR"}, False),
        ("refund.issue", "agent-2", {"amount": 100, "currency": "EUR"}, False),
        ("refund.void", "agent-1", {"amount": 100, "currency": "EUR"}, False),
    ],
)
def test_covers(action, principal, params, covered):
    assert covers(SCOPE, action, principal, params) is covered


def test_any_principal_and_nested_paths():
    scope = Scope("refund.issue", "", (Bound("card.country", "==", "FR"), Bound("amount", ">=", 1)))
    assert covers(scope, "refund.issue", "anyone", {"amount": 5, "card": {"country": "FR"}})
    assert not covers(scope, "refund.issue", "anyone", {"amount": 5, "card": {"country": "DE"}})
    assert not covers(scope, "refund.issue", "anyone", {"amount": 0, "card": {"country": "FR"}})
    assert not covers(scope, "refund.issue", "anyone", {"amount": 5, "card": "FR"})


def test_describe_in_plain_words():
    assert SCOPE.describe() == (
        'refund.issue by principal agent-1 where amount <= 750, currency == "EUR"'
    )
    assert Scope("a.b", "", ()).describe() == "a.b by any principal where any params"


def test_good_bounds_are_accepted():
    check_bounds(
        [
            Bound("amount", "<=", 750),
            Bound("amount", ">=", 1),
            Bound("currency", "==", "EUR"),
            Bound("card.country", "==", "FR"),
            Bound("rush", "==", False),
        ],
        APPROVED,
    )
    check_bounds([Bound("amount", "<=", 1000)], APPROVED)  # wider than approved: allowed


# Bad input: each bound that cannot stand names its index, its path and why.
@pytest.mark.parametrize(
    ("bound", "message"),
    [
        (Bound("amount", "<=", 700), "grant.bounds[0] (amount): amount <= 700 does not hold"),
        (Bound("amount", ">=", 800), "grant.bounds[0] (amount): amount >= 800 does not hold"),
        (Bound("currency", "==", "USD"), 'currency == "USD" does not hold'),
        (Bound("amount", "==", True), "amount == true does not hold"),
        (Bound("refund_to", "==", "x"), "the approved action has no param 'refund_to'"),
        (Bound("", "==", "x"), "grant.bounds[0] (<empty path>): the approved action has no"),
        (Bound("currency", "<=", "EUR"), "<= compares numbers"),
        (Bound("amount", "<=", "750"), "<= compares numbers"),
        (Bound("amount", "<", 750), "op '<' is not one of <=, >=, =="),  # type: ignore[arg-type]
    ],
)
def test_bad_bounds_are_refused(bound, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_bounds([bound], APPROVED)


def test_duplicate_bound_is_refused():
    expected = "grant.bounds[1] (amount): a second <= bound on the same path"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        check_bounds([Bound("amount", "<=", 750), Bound("amount", "<=", 900)], APPROVED)


def test_default_bounds_from_the_approved_action():
    assert default_bounds(APPROVED) == (
        Bound("amount", "<=", 750),
        Bound("currency", "==", "EUR"),
        Bound("rush", "==", False),
    )
    check_bounds(default_bounds(APPROVED), APPROVED)
    assert covers(Scope("a", "", default_bounds(APPROVED)), "a", "p", APPROVED)
