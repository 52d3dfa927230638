"""What a standing approval may never cover, through the real server on both backends: the
grantor's own requests (direct, or through a gateway on their behalf), a param the approved
action did not have, anything at all when it was stored without its param paths; and the
bounds a grant must carry unless its rule says `grants: unbounded`. Separation of duties
holds for batch acts too."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import grpc
import pytest

from signoff import pb
from signoff_client._gen import decision_pb2_grpc

from .conftest import FakeClock, ServerHandle, write_tokens
from .test_grants import (
    ALLOW,
    EUR_750,
    PEOPLE,
    POLICIES,
    REVIEW,
    _approve,
    _audit,
    _cli,
    _grants,
    _md,
    _refused,
    _spec,
    _stub,
)

R = pb.review
OPEN = """\
name: open
actions: ["open.*"]
rules:
  - name: any
    when: "true"
    decision: review
    reviewers: finance
    grants: unbounded
    reason: a grant here needs no bounds
"""
CARD = """\
name: card
actions: ["card.*"]
rules:
  - name: any
    when: "true"
    decision: review
    reviewers: finance
    reason: card payments
redact: ["action.params.card"]
"""
# carol is an agent and a finance reviewer: the person the attack needs.
STAFF = {**PEOPLE, "carol": ("carol", ["agent", "reviewer:finance"])}
PAY = {"amount": 750.0, "currency": "EUR"}


@pytest.fixture
def srv(make_server, backend, policy_dir, tmp_path: Path) -> ServerHandle:
    tokens = write_tokens(tmp_path, STAFF, others=["gw"])
    policies = policy_dir({**POLICIES, "open.yaml": OPEN, "card.yaml": CARD})
    return make_server(policies, clock=FakeClock(), auth={"tokens_file": tokens})


def _ask(
    srv: ServerHandle,
    params: dict[str, object] | None = None,
    *,
    token: str = "bot",
    principal: str = "",
    on_behalf_of: str = "",
    action: str = "pay.out",
) -> pb.common.Decision:
    req = pb.common.ActionRequest()
    req.action.name = action
    req.action.params.update(PAY if params is None else params)
    req.principal.id = principal or STAFF[token][0]
    req.principal.on_behalf_of = on_behalf_of
    stub = decision_pb2_grpc.DecisionServiceStub(srv.channel())
    return stub.Evaluate(req, metadata=_md(token))


def _grant(srv: ServerHandle, who: str = "carol", **kw: object) -> R.Grant:
    """`who` approves a 750 EUR payment (by bot, or as `kw` asks) with a grant on it."""
    spec_kw = {k: kw.pop(k) for k in ("any_principal", "uses") if k in kw}
    bounds = kw.pop("bounds", EUR_750)
    d = _ask(srv, **kw)  # type: ignore[arg-type]
    assert d.outcome == REVIEW
    r = _approve(srv, d.review_id, _spec(**spec_kw, **bounds), who)  # type: ignore[arg-type]
    assert r.state == R.REVIEW_STATE_APPROVED
    (grant,) = _grants(srv, inactive=True)
    return grant


# Nobody approves their own action, by a grant either.


def test_a_grant_for_any_principal_never_covers_its_grantor(srv):
    grant = _grant(srv, any_principal=True)
    assert grant.created_by == "carol"
    mine = _ask(srv, {"amount": 500.0, "currency": "EUR"}, token="carol")
    assert mine.outcome == REVIEW  # carol's own refund: reviewed by someone else
    assert _ask(srv, {"amount": 500.0, "currency": "EUR"}).outcome == ALLOW  # bot's: covered
    assert _grants(srv)[0].uses == 1


def test_a_grant_for_a_gateway_never_covers_a_request_on_behalf_of_its_grantor(srv):
    grant = _grant(srv, token="gw", on_behalf_of="dan")
    assert grant.principal_id == "gateway"
    assert _ask(srv, token="gw", on_behalf_of="carol").outcome == REVIEW
    assert _ask(srv, token="gw", on_behalf_of="erin").outcome == ALLOW


def test_the_grantor_cannot_approve_their_own_request_directly_or_in_a_batch(srv):
    own = _ask(srv, token="carol")
    proxied = _ask(srv, token="gw", on_behalf_of="carol")
    other = _ask(srv)
    code, details = _refused(_approve, srv, own.review_id, None, "carol")
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "separation of duties" in details
    req = R.SubmitReviewsRequest(verdict=R.VERDICT_APPROVE, comment="all fine")
    for d in (own, proxied, other):
        req.reviews.add(review_id=d.review_id, expected_version=1)
    out = _stub(srv).SubmitReviews(req, metadata=_md("carol"))
    assert [(r.error_code, r.review.state) for r in out.results] == [
        ("PERMISSION_DENIED", R.REVIEW_STATE_UNSPECIFIED),
        ("PERMISSION_DENIED", R.REVIEW_STATE_UNSPECIFIED),
        ("", R.REVIEW_STATE_APPROVED),
    ]
    assert all("separation of duties" in r.error_message for r in out.results[:2])


# Closed-world: what the approved action did not have is not covered.


def test_a_param_the_approved_action_did_not_have_is_not_covered(srv):
    grant = _grant(srv, "alice")
    assert (list(grant.param_paths), grant.closed_world) == (["amount", "currency"], True)
    (created,) = [e for e in _audit(srv) if e.type == "grant.created"]
    assert created.payload["param_paths"] == ["amount", "currency"]
    extra = {"amount": 500.0, "currency": "EUR", "destination_iban": "DE89370400440532013000"}
    assert _ask(srv, extra).outcome == REVIEW
    nested = {"amount": 500.0, "currency": "EUR", "meta": {"iban": "DE89"}}
    assert _ask(srv, nested).outcome == REVIEW
    assert _ask(srv, {"amount": 500.0, "currency": "EUR"}).outcome == ALLOW
    assert _grants(srv)[0].uses == 1


def _store_without_param_paths(srv: ServerHandle, grant: R.Grant) -> None:
    """Rewrite the stored grant as one made before param paths were recorded."""
    old = R.Grant()
    old.CopyFrom(grant)
    del old.param_paths[:]
    old.closed_world = False
    old.uses = 0
    blob = old.SerializeToString()
    if srv.backend == "sqlite":
        with sqlite3.connect(srv.db_path) as conn:
            conn.execute(
                "UPDATE grants SET grant_pb = ? WHERE grant_id = ?", (blob, grant.grant_id)
            )
    else:
        import psycopg

        with psycopg.connect(srv.db, autocommit=True) as conn:
            conn.execute(
                "UPDATE grants SET grant_pb = %s WHERE grant_id = %s", (blob, grant.grant_id)
            )
    srv.running.app.grants.changed()  # this process's cached read of the active grants


@pytest.mark.parametrize(
    ("action", "params", "bounds"),
    [
        ("pay.out", PAY, EUR_750),
        # No params, so no bounds and no paths: only the flag tells it from an old grant.
        ("card.ping", {}, {}),
    ],
)
def test_a_grant_stored_without_param_paths_covers_nothing(srv, action, params, bounds):
    grant = _grant(srv, "alice", uses=5, action=action, params=params, bounds=bounds)
    assert _ask(srv, params, action=action).outcome == ALLOW
    _store_without_param_paths(srv, grant)
    assert _ask(srv, params, action=action).outcome == REVIEW
    (still,) = _grants(srv)  # listed as before, used no more
    assert (still.uses, list(still.param_paths), still.closed_world) == (1, [], False)


async def test_cli_grants_list_says_an_old_grant_covers_nothing(srv):
    grant = _grant(srv, "alice")
    code, out, _ = await _cli(srv, "--group", "finance", cmd=("grants", "list"))
    assert (code, "covers nothing" in out) == (0, False)
    _store_without_param_paths(srv, grant)
    code, out, _ = await _cli(srv, "--group", "finance", cmd=("grants", "list"))
    assert "covers nothing (made before grants recorded their params)" in out


# Bounded: a grant bounds what its reviewer saw, unless the rule says otherwise.


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ({}, "grant.bounds: at least one bound is required"),
        (
            {"currency": ("==", "EUR")},
            "grant.bounds: param 'amount' is a number (750) without an upper bound",
        ),
        (
            {"amount": (">=", 500), "currency": ("==", "EUR")},
            "grant.bounds: param 'amount' is a number (750) without an upper bound",
        ),
    ],
)
def test_a_grant_that_does_not_bound_what_was_approved_is_refused(srv, bounds, message):
    d = _ask(srv)
    code, details = _refused(_approve, srv, d.review_id, _spec(**bounds))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(message)
    assert "grants: unbounded" in details
    r = _stub(srv).GetReview(R.GetReviewRequest(review_id=d.review_id), metadata=_md("bob"))
    assert r.state == R.REVIEW_STATE_PENDING
    assert _grants(srv, inactive=True) == []


def test_an_amount_sent_as_a_string_must_be_bound_equal(srv):
    # The rule reads double(action.params.amount): "750" is an amount to it.
    text = {"amount": "750", "currency": "EUR"}
    d = _ask(srv, text)
    assert d.outcome == REVIEW
    code, details = _refused(_approve, srv, d.review_id, _spec(currency=("==", "EUR")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(
        "grant.bounds: param 'amount' is a number written as a string (\"750\"): bound it with =="
    )
    _approve(srv, d.review_id, _spec(amount=("==", "750"), currency=("==", "EUR")))
    assert _ask(srv, {"amount": "9999", "currency": "EUR"}).outcome == REVIEW
    assert _ask(srv, text).outcome == ALLOW


def test_a_rule_with_grants_unbounded_accepts_a_grant_without_bounds(srv):
    grant = _grant(srv, "alice", action="open.pay", bounds={})
    assert grant.description == "open.pay by principal bot where any params"
    big = {"amount": 99_999.0, "currency": "USD"}
    assert _ask(srv, big, action="open.pay").outcome == ALLOW
    # Unbounded is not open-ended: the closed world and the grantor still hold.
    extra = {**big, "destination_iban": "DE89"}
    assert _ask(srv, extra, action="open.pay").outcome == REVIEW
    proxied = _ask(srv, token="gw", principal="bot", on_behalf_of="alice", action="open.pay")
    assert proxied.outcome == REVIEW


def test_the_offered_default_bounds_are_a_grant_the_server_accepts(srv):
    params = {"amount": 750.0, "currency": "EUR", "card": {"limit": 2000.0}, "tags": [1, 2]}
    d = _ask(srv, params)
    r = _stub(srv).GetReview(R.GetReviewRequest(review_id=d.review_id), metadata=_md("alice"))
    offer = r.grant_offer
    assert offer.allowed
    assert [(b.path, b.op) for b in offer.default_bounds] == [
        ("amount", "<="),
        ("card.limit", "<="),
        ("currency", "=="),
        ("tags", "=="),
    ]
    spec = R.GrantSpec(ttl_seconds=60, max_uses=1, bounds=offer.default_bounds)
    assert _approve(srv, d.review_id, spec).state == R.REVIEW_STATE_APPROVED
    assert _ask(srv, {**params, "card": {"limit": 2000.5}}).outcome == REVIEW
    assert _ask(srv, params).outcome == ALLOW


def test_an_action_no_bound_can_name_is_offered_no_grant(srv):
    d = _ask(srv, {"amount": 750.0, "currency": "EUR", "fx.rate": 1.1})
    r = _stub(srv).GetReview(R.GetReviewRequest(review_id=d.review_id), metadata=_md("alice"))
    assert not r.grant_offer.allowed
    assert r.grant_offer.refusal.startswith(
        "no grant can bound this action: param 'fx\\.rate' is a number (1.1) without an "
        "upper bound: no bound can name it"
    )


def test_a_redacted_param_is_one_leaf_of_the_closed_world(srv):
    # The reviewer saw the card masked: the grant covers any card, and nothing else new.
    params = {"amount": 750.0, "currency": "EUR", "card": {"number": "4111", "cvc": "123"}}
    grant = _grant(srv, "alice", action="card.pay", params=params)
    assert list(grant.param_paths) == ["amount", "card", "currency"]
    other_card = {**params, "card": {"number": "5500", "expiry": "12/30"}}
    assert _ask(srv, other_card, action="card.pay").outcome == ALLOW
    assert _ask(srv, {**params, "note": "x"}, action="card.pay").outcome == REVIEW
