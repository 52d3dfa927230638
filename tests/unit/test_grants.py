"""Standing approvals: a grant's bounds are checked against the approved action, and a later
request is covered only when it is inside every bound, inside the approved action's params,
and not made by or for the grantor."""

from __future__ import annotations

import re
from typing import Any

import pytest

from signoff import pb
from signoff.core.grants import (
    Asked,
    Bound,
    Scope,
    check_bounds,
    covers,
    default_bounds,
    param_paths,
)
from signoff.core.reviews import requesters

APPROVED = {"amount": 750, "currency": "EUR", "card": {"country": "FR"}, "rush": False}
EUR_750 = (Bound("amount", "<=", 750), Bound("currency", "==", "EUR"))
SCOPE = Scope(
    action_name="refund.issue",
    principal_id="agent-1",
    bounds=EUR_750,
    granted_by="alice",
    param_paths=param_paths(APPROVED),
)


def asked(
    params: dict[str, Any],
    action: str = "refund.issue",
    principal: str = "agent-1",
    on_behalf_of: str = "",
) -> Asked:
    p = pb.common.Principal(id=principal, on_behalf_of=on_behalf_of)
    return Asked(action, principal, requesters(p), params, param_paths(params))


@pytest.mark.parametrize(
    ("action", "principal", "params", "covered"),
    [
        ("refund.issue", "agent-1", {"amount": 750, "currency": "EUR"}, True),
        ("refund.issue", "agent-1", APPROVED, True),
        ("refund.issue", "agent-1", {**APPROVED, "card": {"country": "DE"}}, True),  # unbound
        ("refund.issue", "agent-1", {"amount": 20.5, "currency": "EUR"}, True),
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
    assert covers(SCOPE, asked(params, action, principal)) is covered


# Closed-world: a param path the approved action did not have is never covered.
@pytest.mark.parametrize(
    "params",
    [
        {"amount": 20, "currency": "EUR", "destination_iban": "DE00"},
        {"amount": 20, "currency": "EUR", "card": {"country": "FR", "number": "4111"}},
        {"amount": 20, "currency": "EUR", "rush": {"really": True}},  # a leaf grown into a map
        {"amount": 20, "currency": "EUR", "x": {}},  # an empty map is a leaf too
        {"amount": 20, "currency": "EUR", "card.country": "FR"},  # not card -> country
    ],
)
def test_a_param_the_approved_action_did_not_have_is_not_covered(params):
    assert not covers(SCOPE, asked(params))
    wider = Scope(SCOPE.action_name, "", SCOPE.bounds, "alice", SCOPE.param_paths | {"x"})
    assert covers(wider, asked({"amount": 20, "currency": "EUR", "x": 1}))


def test_a_grant_without_recorded_param_paths_covers_nothing():
    old = Scope(SCOPE.action_name, SCOPE.principal_id, SCOPE.bounds, "alice", None)
    assert not covers(old, asked({"amount": 1, "currency": "EUR"}))
    assert not covers(old, asked(APPROVED))
    # An action without params records an empty set, which is not the same as none.
    bare = Scope("ping", "", (), "alice", param_paths({}))
    assert covers(bare, asked({}, "ping"))
    assert not covers(bare, asked({"x": 1}, "ping"))


@pytest.mark.parametrize(
    ("principal", "on_behalf_of"),
    [("alice", ""), ("gateway", "alice"), ("alice", "bob")],
)
def test_a_grant_never_covers_its_grantor(principal, on_behalf_of):
    for scope_principal in ("", principal):
        scope = Scope(SCOPE.action_name, scope_principal, EUR_750, "alice", SCOPE.param_paths)
        assert not covers(scope, asked(APPROVED, principal=principal, on_behalf_of=on_behalf_of))
        other = Scope(SCOPE.action_name, scope_principal, EUR_750, "carol", SCOPE.param_paths)
        assert covers(other, asked(APPROVED, principal=principal, on_behalf_of=on_behalf_of))


def test_requesters_are_the_principal_and_whom_it_acts_for():
    assert requesters(pb.common.Principal(id="gw", on_behalf_of="alice")) == {"gw", "alice"}
    assert requesters(pb.common.Principal(id="bot")) == {"bot"}
    assert requesters(pb.common.Principal()) == frozenset()


def test_param_paths_are_leaves_with_escaped_keys():
    params = {"a": {"b": 1, "c": [1, {"d": 2}], "e": {}}, "f.g": None, "h\\": "x"}
    assert param_paths(params) == {"a.b", "a.c", "a.e", "f\\.g", "h\\\\"}
    assert param_paths({"f": {"g": None}}) == {"f.g"}  # not the same as {"f.g": None}


def test_any_principal_and_nested_paths():
    approved = {"amount": 5, "card": {"country": "FR"}}
    bounds = (Bound("card.country", "==", "FR"), Bound("amount", "<=", 5))
    scope = Scope("refund.issue", "", bounds, "alice", param_paths(approved))
    assert covers(scope, asked({"amount": 5, "card": {"country": "FR"}}, principal="anyone"))
    assert not covers(scope, asked({"amount": 5, "card": {"country": "DE"}}))
    assert not covers(scope, asked({"amount": 6, "card": {"country": "FR"}}))
    assert not covers(scope, asked({"amount": 5, "card": "FR"}))


def test_equal_bounds_compare_as_json():
    approved = {"ids": [1, 2], "on": True}
    bounds = (Bound("ids", "==", [1.0, 2.0]), Bound("on", "==", True))
    scope = Scope("a", "", bounds, "alice", param_paths(approved))
    assert covers(scope, asked({"ids": [1, 2], "on": True}, "a"))
    assert not covers(scope, asked({"ids": [True, 2], "on": True}, "a"))  # True is not 1
    assert not covers(scope, asked({"ids": [1, 2], "on": 1}, "a"))


def test_describe_in_plain_words():
    assert SCOPE.describe() == (
        'refund.issue by principal agent-1 where amount <= 750, currency == "EUR"'
    )
    assert Scope("a.b", "", (), "x", None).describe() == "a.b by any principal where any params"


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
        unbounded=False,
    )
    # Wider than approved: allowed. An equal bound is an upper bound too.
    check_bounds([Bound("amount", "<=", 1000)], APPROVED, unbounded=False)
    check_bounds([Bound("amount", "==", 750)], APPROVED, unbounded=False)
    # Nothing to bound: an action without params (the closed world admits only `{}`).
    check_bounds([], {}, unbounded=False)


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
        check_bounds([bound], APPROVED, unbounded=True)


def test_duplicate_bound_is_refused():
    expected = "grant.bounds[1] (amount): a second <= bound on the same path"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        check_bounds(
            [Bound("amount", "<=", 750), Bound("amount", "<=", 900)], APPROVED, unbounded=True
        )


# A grant bounds what its reviewer saw, unless the rule says `grants: unbounded`.
@pytest.mark.parametrize(
    ("bounds", "approved", "message"),
    [
        ([], APPROVED, "grant.bounds: at least one bound is required"),
        (
            [Bound("currency", "==", "EUR")],
            APPROVED,
            "grant.bounds: param 'amount' is a number (750) without an upper bound: add e.g. "
            "amount <= 750",
        ),
        (
            [Bound("amount", ">=", 1), Bound("currency", "==", "EUR")],
            APPROVED,
            "param 'amount' is a number (750) without an upper bound",
        ),
        (
            [Bound("amount", "<=", 9)],
            {"amount": 9, "card": {"limit": 500}},
            "param 'card.limit' is a number (500) without an upper bound",
        ),
        (
            [Bound("amount", "<=", 9)],
            {"amount": 9, "lines": [{"price": 3}]},
            "param 'lines' is a list holding numbers: bound it with ==",
        ),
        # CEL's double() reads these strings as numbers: a policy may compare them as amounts.
        (
            [Bound("currency", "==", "EUR")],
            {"amount": "750", "currency": "EUR"},
            "param 'amount' is a number written as a string (\"750\"): bound it with ==, "
            'e.g. amount == "750"',
        ),
        (
            [Bound("currency", "==", "EUR")],
            {"amount": " -0X1A ", "currency": "EUR"},
            "param 'amount' is a number written as a string",
        ),
        (
            [Bound("currency", "==", "EUR")],
            {"amount": "1e3", "currency": "EUR"},
            "param 'amount' is a number written as a string",
        ),
        (
            [Bound("currency", "==", "EUR")],
            {"lines": ["5"], "currency": "EUR"},
            "param 'lines' is a list holding numbers",
        ),
        (
            [Bound("amount", "<=", 9)],
            {"amount": 9, "a.b": 1},
            "param 'a\\.b' is a number (1) without an upper bound",
        ),
    ],
)
def test_unbounded_grants_are_refused(bounds, approved, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_bounds(bounds, approved, unbounded=False)
    check_bounds(bounds, approved, unbounded=True)  # the rule said so explicitly


def test_strings_that_do_not_read_as_numbers_need_no_bound():
    approved = {"amount": 9, "code": "abc", "hex": "cafe", "note": "1,000", "empty": ""}
    check_bounds([Bound("amount", "<=", 9)], approved, unbounded=False)
    check_bounds([Bound("amount", "==", "750")], {"amount": "750"}, unbounded=False)


def test_default_bounds_from_the_approved_action():
    assert default_bounds(APPROVED) == (
        Bound("amount", "<=", 750),
        Bound("card.country", "==", "FR"),
        Bound("currency", "==", "EUR"),
        Bound("rush", "==", False),
    )
    check_bounds(default_bounds(APPROVED), APPROVED, unbounded=False)
    scope = Scope("a", "", default_bounds(APPROVED), "alice", param_paths(APPROVED))
    assert covers(scope, asked(APPROVED, "a"))


def test_default_bounds_bound_every_param_a_bound_can_name():
    approved = {"n": 1, "m": {"k": 2.5, "e": {}}, "l": [1, 2], "s": None, "a.b": 3}
    defaults = default_bounds(approved)
    assert [str(b) for b in defaults] == [
        "l == [1, 2]",
        "m.e == {}",
        "m.k <= 2.5",
        "n <= 1",
        "s == null",
    ]
    check_bounds(defaults, {k: v for k, v in approved.items() if k != "a.b"}, unbounded=False)
    with pytest.raises(ValueError, match=re.escape("param 'a\\.b' is a number")):
        check_bounds(defaults, approved, unbounded=False)  # no bound can name "a.b"
