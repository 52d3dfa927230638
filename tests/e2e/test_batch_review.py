"""SubmitReviews (batch review) through the real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from signoff import pb
from signoff.core.audit import GENESIS, verify_chain
from signoff_client._gen import decision_pb2_grpc, review_pb2_grpc

from .conftest import ServerHandle, write_tokens

R = pb.review

POLICY = """\
name: batch
actions: ["job.*"]
rules:
  - name: big
    when: action.name == "job.pay" && double(action.params.amount) > 100
    decision: review
    reviewers: ops
    reason: big payment
  - name: small
    when: action.name == "job.pay" && double(action.params.amount) <= 100
    decision: review
    reviewers: ops
    reason: small payment
  - name: other
    when: action.name == "job.other"
    decision: review
    reviewers: ops
    reason: other job
  - name: books
    when: action.name == "job.books"
    decision: review
    reviewers: finance
    reason: the books
  - name: two
    when: action.name == "job.two"
    decision: review
    reviewers: ops
    approvals: 2
    reason: needs two
"""


@pytest.fixture
def server(make_server, policy_dir, backend) -> ServerHandle:
    """A server on the batch policy, on the test's backend."""
    return make_server(policies=policy_dir({"b.yaml": POLICY}), backend=backend)


def _md(who: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {who}"),)


def _open(server: ServerHandle, name: str = "job.pay", amount: float = 500) -> str:
    req = pb.common.ActionRequest()
    req.action.name = name
    req.action.params.update({"amount": amount})
    req.principal.id = "bot"
    d = decision_pb2_grpc.DecisionServiceStub(server.channel()).Evaluate(req, metadata=_md("bot"))
    assert d.outcome == pb.common.OUTCOME_REQUIRE_REVIEW
    return d.review_id


def _stub(server: ServerHandle) -> review_pb2_grpc.ReviewServiceStub:
    return review_pb2_grpc.ReviewServiceStub(server.channel())


def _batch(
    server: ServerHandle,
    ids: list[str],
    who: str = "alice",
    verdict: int = R.VERDICT_APPROVE,
    comment: str = "all the same",
    version: int = 1,
) -> R.SubmitReviewsResponse:
    req = R.SubmitReviewsRequest(verdict=verdict, comment=comment)
    for rid in ids:
        req.reviews.add(review_id=rid, expected_version=version)
    return _stub(server).SubmitReviews(req, metadata=_md(who))


def _refused(server: ServerHandle, ids: list[str], **kw: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        _batch(server, ids, **kw)  # type: ignore[arg-type]
    return err.value


def _audit(server: ServerHandle) -> list:
    return server.call(server.running.app.store.read_audit(1, 100_000))


def _get(server: ServerHandle, rid: str) -> R.Review:
    return _stub(server).GetReview(R.GetReviewRequest(review_id=rid), metadata=_md("alice"))


def test_batch_approve_approves_each_with_its_own_audit_entry(server):
    ids = [_open(server) for _ in range(5)]
    out = _batch(server, ids)
    assert out.succeeded == 5
    assert out.batch_id
    assert [r.review_id for r in out.results] == ids
    for res in out.results:
        assert res.error_code == ""
        assert res.review.state == R.REVIEW_STATE_APPROVED
        assert res.review.acts[-1].comment == "all the same"
        assert _get(server, res.review_id).state == R.REVIEW_STATE_APPROVED
    entries = [e for e in _audit(server) if e.type == "review.approved"]
    assert sorted(e.review_id for e in entries) == sorted(ids)
    for e in entries:
        assert e.reviewer == "alice"
        assert e.payload["act"]["comment"] == "all the same"
        assert e.payload["batch_id"] == out.batch_id
        assert e.payload["batch_size"] == 5
    verify_chain(_audit(server), GENESIS)


def test_batch_reject_needs_a_comment_and_rejects_each(server):
    ids = [_open(server) for _ in range(3)]
    err = _refused(server, ids, verdict=R.VERDICT_REJECT, comment=" ")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("comment:")
    assert all(_get(server, rid).state == R.REVIEW_STATE_PENDING for rid in ids)
    out = _batch(server, ids, verdict=R.VERDICT_REJECT, comment="duplicates")
    assert out.succeeded == 3
    assert {r.review.outcome for r in out.results} == {pb.common.OUTCOME_DENY}
    assert len([e for e in _audit(server) if e.type == "review.rejected"]) == 3


@pytest.mark.parametrize(
    ("verdict", "field"),
    [(R.VERDICT_MODIFY, "verdict: VERDICT_MODIFY cannot"), (R.VERDICT_UNSPECIFIED, "verdict:")],
)
def test_edits_and_no_verdict_are_refused(server, verdict, field):
    rid = _open(server)
    err = _refused(server, [rid], verdict=verdict)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(field)


def test_empty_duplicate_and_unversioned_batches_are_refused(server):
    rid, other = _open(server), _open(server)
    err = _refused(server, [])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("reviews: must hold 1-100")
    err = _refused(server, [rid, other, rid])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == f"reviews[2].review_id: review {rid} is in the batch twice"
    err = _refused(server, [rid, other], version=0)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("reviews[0].expected_version:")
    err = _refused(server, [rid, "no-such-review"])
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-review" in err.details()
    assert _get(server, rid).state == R.REVIEW_STATE_PENDING


def test_a_batch_of_mixed_actions_or_rules_is_refused_naming_the_review(server):
    big1, big2 = _open(server), _open(server)
    small = _open(server, amount=50)
    other = _open(server, "job.other")
    err = _refused(server, [big1, big2, small])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(f"reviews[2].review_id: review {small} was decided by")
    assert "batch/small" in err.details()
    err = _refused(server, [big1, other])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"review {other} is of action 'job.other'" in err.details()
    assert _get(server, big1).state == R.REVIEW_STATE_PENDING
    assert _batch(server, [big1, big2]).succeeded == 2


def test_a_changed_review_fails_alone_and_the_others_go_through(server):
    ids = [_open(server) for _ in range(4)]
    resolved, cancelled = ids[1], ids[3]
    _batch(server, [resolved], who="carol")
    _stub(server).CancelReview(R.CancelReviewRequest(review_id=cancelled), metadata=_md("bot"))
    out = _batch(server, ids)
    assert out.succeeded == 2
    by_id = {r.review_id: r for r in out.results}
    assert by_id[ids[0]].review.state == R.REVIEW_STATE_APPROVED
    assert by_id[ids[2]].review.state == R.REVIEW_STATE_APPROVED
    assert by_id[resolved].error_code == "FAILED_PRECONDITION"
    assert "is APPROVED" in by_id[resolved].error_message
    assert not by_id[resolved].HasField("review")
    assert by_id[cancelled].error_code == "FAILED_PRECONDITION"
    assert "is CANCELLED" in by_id[cancelled].error_message
    assert _get(server, resolved).acts[-1].reviewer == "carol"
    approvals = [e.review_id for e in _audit(server) if e.type == "review.approved"]
    assert sorted(approvals) == sorted([resolved, ids[0], ids[2]])


def test_two_approvals_count_a_batch_act_once_per_review(server):
    ids = [_open(server, "job.two") for _ in range(3)]
    first = _batch(server, ids)
    assert {r.review.state for r in first.results} == {R.REVIEW_STATE_PENDING}
    again = _batch(server, ids, version=2)
    assert again.succeeded == 0
    assert {r.error_code for r in again.results} == {"FAILED_PRECONDITION"}
    assert "already approved" in again.results[0].error_message
    second = _batch(server, ids, who="carol", version=2)
    assert {r.review.state for r in second.results} == {R.REVIEW_STATE_APPROVED}


def test_overlapping_concurrent_batches_resolve_each_review_exactly_once(server):
    ids = [_open(server) for _ in range(12)]
    sets = {"alice": ids[:8], "carol": ids[4:]}
    start = threading.Barrier(2)

    def act(who: str) -> R.SubmitReviewsResponse:
        start.wait()
        return _batch(server, sets[who], who=who)

    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(sets, pool.map(act, sets), strict=True))
    winners: dict[str, str] = {}
    for who, out in results.items():
        for res in out.results:
            if not res.error_code:
                assert res.review_id not in winners
                winners[res.review_id] = who
            else:
                assert res.error_code == "FAILED_PRECONDITION"
    assert sorted(winners) == sorted(ids)
    entries = [e for e in _audit(server) if e.type == "review.approved"]
    assert sorted(e.review_id for e in entries) == sorted(ids)
    for e in entries:
        assert e.reviewer == winners[e.review_id]
        assert _get(server, e.review_id).acts[-1].reviewer == winners[e.review_id]


def test_a_reviewer_of_another_group_is_refused_and_nothing_is_done(
    make_server, policy_dir, tmp_path: Path, backend
):
    people = {
        "bot-t": ("bot", ["agent"]),
        "ann-t": ("ann", ["reviewer:ops"]),
    }
    server = make_server(
        policies=policy_dir({"b.yaml": POLICY}),
        backend=backend,
        auth={"tokens_file": write_tokens(tmp_path, people)},
    )
    ids = []
    for name in ("job.books", "job.books"):
        req = pb.common.ActionRequest()
        req.action.name = name
        req.principal.id = "bot"
        stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
        ids.append(stub.Evaluate(req, metadata=_md("bot-t")).review_id)
    err = _refused(server, ids, who="ann-t")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details() == (
        f"ann may not review {ids[0]}: group 'finance' (needs role reviewer:finance)"
    )
    assert not [e for e in _audit(server) if e.type == "review.approved"]
    assert [e.actor for e in _audit(server) if e.type == "access.denied"] == ["ann"]
