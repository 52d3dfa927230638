"""`in_band: requester` through the real server (both backends): the person an agent acts for
settles the review, recorded as such; every other separation-of-duties path stays shut."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2

from signoff import pb
from signoff.cli import reviews_view
from signoff_client._gen import decision_pb2_grpc, review_pb2_grpc

from .conftest import MakeServer, ServerHandle, write_tokens

R = pb.review
PEOPLE = {  # token: (identity, roles)
    "bot": ("bot", ["agent"]),
    "gw": ("gw", ["agent"]),  # not vouched to act for anyone
    "alice": ("alice", ["reviewer:finance"]),
    "bob": ("bob", []),
    "carol": ("carol", ["reviewer:finance"]),  # a reviewer the agent acts for
}
DIRECTORY = {"bot": {"kind": "agent", "on_behalf_of": ["bob", "carol"]}}
POLICY = """\
name: refunds
actions: ["refund.*"]
rules:
  - name: big
    when: double(action.params.amount) >= 1000.0
    decision: review
    reviewers: finance
    reason: big refund
  - name: small
    when: double(action.params.amount) < 1000.0
    decision: review
    reviewers: finance
    in_band: requester
    reason: any refund
"""


@pytest.fixture
def secured(make_server: MakeServer, policy_dir, tmp_path: Path, backend: str) -> ServerHandle:
    tokens = write_tokens(tmp_path, PEOPLE, principals=DIRECTORY)
    return make_server(
        policies=policy_dir({"refunds.yaml": POLICY}),
        auth={"tokens_file": tokens},
        backend=backend,
    )


def _md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _open(server: ServerHandle, amount: float, *, agent: str = "bot", user: str = "bob") -> str:
    req = pb.common.ActionRequest()
    req.action.name = "refund.issue"
    req.action.params.update({"amount": amount})
    req.principal.id = agent
    req.principal.on_behalf_of = user
    with server.channel() as ch:
        d = decision_pb2_grpc.DecisionServiceStub(ch).Evaluate(req, metadata=_md(agent))
    assert d.outcome == pb.common.OUTCOME_REQUIRE_REVIEW
    return d.review_id


def _call(server: ServerHandle, method: str, request: object, token: str) -> object:
    with server.channel() as ch:
        return getattr(review_pb2_grpc.ReviewServiceStub(ch), method)(request, metadata=_md(token))


def _get(server: ServerHandle, review_id: str, token: str = "alice") -> R.Review:
    return _call(server, "GetReview", R.GetReviewRequest(review_id=review_id), token)  # type: ignore[return-value]


def _submit(server, review_id, token, verdict=R.VERDICT_APPROVE, **kw) -> R.Review:
    req = R.SubmitReviewRequest(
        review_id=review_id, verdict=verdict, expected_version=1, comment="c", **kw
    )
    return _call(server, "SubmitReview", req, token)  # type: ignore[return-value]


def _refused(fn, *args, **kw) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, **kw)
    return info.value


def _audit(server: ServerHandle, review_id: str) -> list:
    entries = server.call(server.running.app.store.read_audit(1, 100_000))
    return [e for e in entries if e.review_id == review_id]


@pytest.mark.parametrize("user", ["bob", "carol"])
def test_the_requester_approves_in_band_and_everyone_can_tell(secured, user):
    review_id = _open(secured, 50, user=user)
    seen = _get(secured, review_id, user)  # the requester may see what they settle
    assert (seen.in_band, seen.request.principal.on_behalf_of) == ("requester", user)
    done = _submit(secured, review_id, user)
    assert done.state == R.REVIEW_STATE_APPROVED
    assert [(a.reviewer, a.in_band) for a in done.acts] == [(user, True)]
    [entry] = [e for e in _audit(secured, review_id) if e.type == "review.approved"]
    assert (entry.reviewer, entry.payload["in_band"]) == (user, "requester")
    assert entry.payload["in_band_note"] == "approved by the requester in band"
    shown = reviews_view.details(_get(secured, review_id), dt.datetime.now(dt.UTC))
    assert "[in band, by the requester]" in shown
    assert f"the requester ({user}) may settle it" in shown


def test_a_group_reviewer_still_settles_an_in_band_review(secured):
    review_id = _open(secured, 50)
    done = _submit(secured, review_id, "alice", R.VERDICT_REJECT)
    assert done.state == R.REVIEW_STATE_REJECTED
    assert done.acts[0].in_band is False
    # The requester comes second: the version they saw is gone, exactly one outcome.
    err = _refused(_submit, secured, review_id, "bob")
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION


def _params(**kv: float) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(kv)
    return s


def test_every_other_path_stays_shut(secured):
    review_id = _open(secured, 50)
    # Edits need a reviewer of the group.
    err = _refused(_submit, secured, review_id, "bob", R.VERDICT_MODIFY, params=_params(amount=5))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "not edit it" in err.details()
    # The agent's own token, and a reviewer-requester's standing approval.
    err = _refused(_submit, secured, review_id, "bot")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    bound = R.GrantBound(path="amount", op="<=", value=struct_pb2.Value(number_value=50))
    grant = R.GrantSpec(ttl_seconds=600, max_uses=2, bounds=[bound])
    err = _refused(_submit, secured, review_id, "bob", grant=grant)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    carols = _open(secured, 50, user="carol")
    err = _refused(_submit, secured, carols, "carol", grant=grant)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "separation of duties" in err.details()
    # A batch is never in band, even of one review.
    err = _refused(_call, secured, "SubmitReviews", _batch(review_id), "bob")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    out = _call(secured, "SubmitReviews", _batch(carols), "carol")
    assert [r.error_code for r in out.results] == ["PERMISSION_DENIED"]  # type: ignore[attr-defined]
    # Nothing changed: both still pending, at version 1.
    assert [(_get(secured, r).state, _get(secured, r).version) for r in (review_id, carols)] == [
        (R.REVIEW_STATE_PENDING, 1)
    ] * 2


def _batch(review_id: str) -> R.SubmitReviewsRequest:
    return R.SubmitReviewsRequest(
        reviews=[R.ReviewRef(review_id=review_id, expected_version=1)],
        verdict=R.VERDICT_APPROVE,
    )


def test_a_rule_without_in_band_and_a_claimed_on_behalf_of_stay_shut(secured):
    big = _open(secured, 5000)
    assert _get(secured, big).in_band == ""
    err = _refused(_get, secured, big, "bob")  # not theirs to see either
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = _refused(_submit, secured, big, "bob")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = _refused(_submit, secured, _open(secured, 5000, user="carol"), "carol")
    assert "separation of duties" in err.details()
    # gw is not vouched to act for bob: on_behalf_of is cleared, only the claim remains.
    claimed = _open(secured, 50, agent="gw")
    r = _get(secured, claimed)
    assert (r.request.principal.on_behalf_of, r.request.principal.claimed.on_behalf_of) == (
        "",
        "bob",
    )
    err = _refused(_submit, secured, claimed, "bob")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
