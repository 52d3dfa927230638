"""Review.grant_offer through the real server: whether a reviewer's approval may grant a
standing approval and the bounds to propose, as GetReview and WatchReview tell the console
and `signoff reviews show`, for that reviewer, from the policy in force."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format, struct_pb2

from signoff import pb
from signoff_client._gen import decision_pb2_grpc

from .conftest import FakeClock, ServerHandle, write_tokens
from .test_grants import PEOPLE, POLICIES, _cli, _md, _refused, _stub

R = pb.review
# The pay policy of test_grants, redacting a card param.
REDACTING = {
    **POLICIES,
    "pay.yaml": POLICIES["pay.yaml"] + 'redact: ["action.params.card"]\n',
}


@pytest.fixture
def srv(make_server, policy_dir, tmp_path: Path) -> ServerHandle:
    tokens = write_tokens(tmp_path, PEOPLE, others=["gw"])
    return make_server(
        policy_dir(REDACTING),
        clock=FakeClock(),
        auth={"tokens_file": tokens},
        grants={"max_ttl": dt.timedelta(hours=8)},
    )


def _get(srv: ServerHandle, review_id: str, who: str = "alice") -> R.Review:
    return _stub(srv).GetReview(R.GetReviewRequest(review_id=review_id), metadata=_md(who))


def _bounds(offer: R.GrantOffer) -> list[tuple[str, str, object]]:
    return [(b.path, b.op, json_format.MessageToDict(b.value)) for b in offer.default_bounds]


def _pay(srv: ServerHandle, amount: float, action: str = "pay.out") -> str:
    req = pb.common.ActionRequest()
    req.action.name = action
    req.action.params.update(
        {"amount": amount, "currency": "EUR", "card": {"number": "4111"}, "note": None}
    )
    req.principal.id = "bot"
    stub = decision_pb2_grpc.DecisionServiceStub(srv.channel())
    d = stub.Evaluate(req, metadata=_md("bot"))
    assert d.outcome == pb.common.OUTCOME_REQUIRE_REVIEW
    return d.review_id


def test_a_reviewer_is_offered_the_default_bounds_and_can_grant_them(srv):
    review_id = _pay(srv, 750)
    r = _get(srv, review_id)
    offer = r.grant_offer
    assert (offer.allowed, offer.refusal) == (True, "")
    assert (offer.max_ttl_seconds, offer.max_uses) == (8 * 3600, 10_000)
    # The redacted card is left out: a bound on it would compare with the mask.
    assert _bounds(offer) == [
        ("amount", "<=", 750),
        ("currency", "==", "EUR"),
        ("note", "==", None),
    ]
    # The requesting agent may see the review, but is offered nothing.
    assert not _get(srv, review_id, "bot").HasField("grant_offer")

    spec = R.GrantSpec(ttl_seconds=3600, max_uses=2, bounds=offer.default_bounds)
    req = R.SubmitReviewRequest(
        review_id=review_id, verdict=R.VERDICT_APPROVE, expected_version=r.version, grant=spec
    )
    done = _stub(srv).SubmitReview(req, metadata=_md("alice"))
    assert done.state == R.REVIEW_STATE_APPROVED
    assert not done.HasField("grant_offer")
    assert not _get(srv, review_id).HasField("grant_offer")  # resolved: nothing to offer
    stored = srv.call(srv.running.app.store.get_review(review_id))
    assert not R.Review.FromString(stored.review).HasField("grant_offer")  # never stored


def test_a_bound_on_a_redacted_param_is_refused_naming_it(srv):
    review_id = _pay(srv, 750)
    spec = R.GrantSpec(ttl_seconds=3600, max_uses=2)
    spec.bounds.add(path="amount", op="<=", value=json_format.ParseDict(750, struct_pb2.Value()))
    spec.bounds.add(
        path="card.number", op="==", value=json_format.ParseDict("[REDACTED]", struct_pb2.Value())
    )
    req = R.SubmitReviewRequest(
        review_id=review_id, verdict=R.VERDICT_APPROVE, expected_version=1, grant=spec
    )
    code, details = _refused(_stub(srv).SubmitReview, req, metadata=_md("alice"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("grant.bounds[1] (card.number): the policy redacts this param")
    assert _get(srv, review_id).state == R.REVIEW_STATE_PENDING


@pytest.mark.parametrize(
    ("action", "refusal"),
    [
        ("lock.it", "rule lock/always forbids standing approvals (grants: false)"),
        ("wire.out", "rule wire/pair forbids standing approvals (approvals: 2+ without grants)"),
        ("dual.out", "1 more approval(s) needed after yours: only the approval that resolves"),
    ],
)
def test_rules_that_forbid_grants_say_why(srv, action, refusal):
    offer = _get(srv, _pay(srv, 750, action)).grant_offer
    assert not offer.allowed
    assert offer.refusal.startswith(refusal)
    assert not offer.default_bounds


def test_the_watch_offers_the_grant_once_the_next_approval_resolves(srv):
    review_id = _pay(srv, 750, "dual.out")
    stream = _stub(srv).WatchReview(R.WatchReviewRequest(review_id=review_id), metadata=_md("bob"))
    first = next(stream)
    assert not first.grant_offer.allowed
    req = R.SubmitReviewRequest(review_id=review_id, verdict=R.VERDICT_APPROVE, expected_version=1)
    _stub(srv).SubmitReview(req, metadata=_md("alice"))
    second = next(stream)
    stream.cancel()
    assert second.version == 2
    assert second.grant_offer.allowed
    assert _bounds(second.grant_offer)[0] == ("amount", "<=", 750)
    assert _get(srv, review_id).grant_offer.refusal == "alice approved this review already"


@pytest.mark.parametrize("ref", ["full", "suffix", "prefix"])
async def test_cli_show_says_whether_a_grant_is_possible(srv, ref):
    review_id = _pay(srv, 750)
    # A short id resolves through ListReviews, which carries no grant offer: it must show
    # the same screen as the full id.
    short = {"full": review_id, "suffix": review_id[-8:], "prefix": review_id[:20]}[ref]
    code, out, err = await _cli(srv, short, cmd=("reviews", "show"))
    assert (code, err) == (0, "")
    assert (
        "grant          possible with --grant-for (at most 8h, 10000 uses); suggested bounds: "
        'amount<=750, currency=="EUR", note==null'
    ) in out
    code, out, err = await _cli(srv, _pay(srv, 750, "lock.it"), cmd=("reviews", "show"))
    assert "grant          not possible: rule lock/always forbids standing approvals" in out
