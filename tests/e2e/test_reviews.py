"""ReviewService through the real server (dev-mode identities: the token names the caller)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from signoff import pb
from signoff.core.audit import GENESIS, verify_chain
from signoff_client._gen import decision_pb2_grpc, review_pb2_grpc
from signoff_client.canonical import action_digest

from .conftest import FakeClock, ServerHandle

R = pb.review


def _md(who: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {who}"),)


def _refund(server: ServerHandle, amount: float = 750, who: str = "bot", request_id: str = ""):
    req = pb.common.ActionRequest(request_id=request_id, justification="double charge")
    req.action.name = "refund.issue"
    req.action.params.update({"amount": amount, "currency": "EUR", "card_number": "4111"})
    req.principal.id = who
    req.resource.kind = "account"
    req.resource.id = "acct_9"
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    return stub.Evaluate(req, metadata=_md(who))


def _reviews(server: ServerHandle) -> review_pb2_grpc.ReviewServiceStub:
    return review_pb2_grpc.ReviewServiceStub(server.channel())


def _submit(server, review_id, who, verdict=R.VERDICT_APPROVE, version=1, params=None):
    req = R.SubmitReviewRequest(
        review_id=review_id, verdict=verdict, expected_version=version, comment=f"by {who}"
    )
    if params is not None:
        req.params.update(params)
    return _reviews(server).SubmitReview(req, metadata=_md(who))


def _error(fn, *args, **kw) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        fn(*args, **kw)
    return err.value


def _audit(server: ServerHandle) -> list:
    return server.call(server.running.app.store.read_audit(1, 100_000))


def test_review_decision_opens_a_pending_review(server):
    d = _refund(server)
    assert d.outcome == pb.common.OUTCOME_REQUIRE_REVIEW
    assert d.review_id
    r = _reviews(server).GetReview(R.GetReviewRequest(review_id=d.review_id), metadata=_md("bot"))
    assert r.state == R.REVIEW_STATE_PENDING
    assert r.version == 1
    assert r.reviewer_group == "finance"
    assert r.decision_id == d.decision_id
    assert r.request.justification == "double charge"
    assert r.request.action.params["card_number"] == "[REDACTED]"
    assert list(r.redacted_paths) == ["action.params.card_number"]
    types = [e.type for e in _audit(server) if e.decision_id == d.decision_id]
    assert types == ["decision", "review.opened"]


def test_approval_binds_the_digest_the_agent_can_check(server):
    d = _refund(server)
    r = _submit(server, d.review_id, "alice")
    assert r.state == R.REVIEW_STATE_APPROVED
    assert r.outcome == pb.common.OUTCOME_AUTO_ALLOW
    assert r.acts[0].reviewer == "alice"
    masked = {"amount": 750, "currency": "EUR", "card_number": "[REDACTED]"}
    principal = {"id": "bot"}
    resource = {"kind": "account", "id": "acct_9"}
    assert r.final_digest == action_digest("refund.issue", masked, principal, resource)
    entry = [e for e in _audit(server) if e.type == "review.approved"][-1]
    assert entry.reviewer == "alice"
    assert entry.payload["act"]["comment"] == "by alice"


def test_approve_with_edits_keeps_both_versions(server):
    d = _refund(server)
    edited = {"amount": 500, "currency": "EUR", "card_number": "[REDACTED]"}
    r = _submit(server, d.review_id, "alice", R.VERDICT_MODIFY, params=edited)
    assert r.state == R.REVIEW_STATE_MODIFIED
    assert r.final_params["amount"] == 500
    assert r.final_digest == action_digest(
        "refund.issue", edited, {"id": "bot"}, {"kind": "account", "id": "acct_9"}
    )
    entry = [e for e in _audit(server) if e.type == "review.modified"][-1]
    assert entry.payload["act"]["params"]["amount"] == 500
    assert entry.payload["requested_params"]["amount"] == 750


def test_reject_and_resolved_reviews_are_immutable(server):
    d = _refund(server)
    r = _submit(server, d.review_id, "alice", R.VERDICT_REJECT)
    assert r.outcome == pb.common.OUTCOME_DENY
    err = _error(_submit, server, d.review_id, "carol", version=2)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "REJECTED" in err.details()


@pytest.mark.parametrize("who", ["bot"])
def test_self_approval_is_refused_and_audited(server, who):
    d = _refund(server)
    err = _error(_submit, server, d.review_id, who)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "separation of duties" in err.details()
    denied = [e for e in _audit(server) if e.type == "access.denied"]
    assert denied[-1].actor == who
    assert denied[-1].payload["method"] == "signoff.v1.ReviewService/SubmitReview"


def test_stale_version_is_refused_with_the_current_state(server):
    d = _refund(server)
    _submit(server, d.review_id, "alice", R.VERDICT_REJECT)
    err = _error(_submit, server, d.review_id, "carol", version=1)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_unknown_review_is_not_found(server):
    err = _error(_reviews(server).GetReview, R.GetReviewRequest(review_id="nope"))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_edits_over_the_size_limit_are_invalid(server):
    d = _refund(server)
    err = _error(
        _submit, server, d.review_id, "alice", R.VERDICT_MODIFY, params={"x": "y" * 300_000}
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("params:")


def test_missing_version_is_invalid(server):
    d = _refund(server)
    err = _error(_submit, server, d.review_id, "alice", version=0)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("expected_version:")


def test_same_request_id_returns_the_same_review(server):
    first = _refund(server, request_id="t-1")
    again = _refund(server, request_id="t-1")
    assert again.review_id == first.review_id
    assert again.replayed
    opened = [e for e in _audit(server) if e.type == "review.opened"]
    assert [e.review_id for e in opened].count(first.review_id) == 1


def test_two_reviewers_at_once_exactly_one_wins(server):
    rounds, outcomes = 40, []
    pool = ThreadPoolExecutor(max_workers=2)
    for _ in range(rounds):
        review_id = _refund(server).review_id
        barrier = threading.Barrier(2)

        def act(who: str, verdict: int, rid: str = review_id, b: threading.Barrier = barrier):
            b.wait()
            try:
                return _submit(server, rid, who, verdict).state
            except grpc.RpcError as exc:
                return exc.code()

        results = list(pool.map(act, ["alice", "carol"], [R.VERDICT_APPROVE, R.VERDICT_REJECT]))
        outcomes.append(results)
        winners = [x for x in results if not isinstance(x, grpc.StatusCode)]
        assert len(winners) == 1, results
        assert grpc.StatusCode.FAILED_PRECONDITION in results
    pool.shutdown()
    # Every review has exactly one resolving act in the audit log, and the chain holds.
    entries = _audit(server)
    resolved = [e for e in entries if e.type in ("review.approved", "review.rejected")]
    assert len(resolved) == rounds
    assert verify_chain(entries, GENESIS, 1).ok


def test_watch_sends_the_state_then_the_resolution(server):
    d = _refund(server)
    stream = _reviews(server).WatchReview(
        R.WatchReviewRequest(review_id=d.review_id), metadata=_md("bot"), timeout=30
    )
    first = next(stream)
    assert first.state == R.REVIEW_STATE_PENDING
    _submit(server, d.review_id, "alice")
    rest = list(stream)
    assert [r.state for r in rest] == [R.REVIEW_STATE_APPROVED]


def test_agent_cancels_its_own_review(server):
    d = _refund(server)
    r = _reviews(server).CancelReview(
        R.CancelReviewRequest(review_id=d.review_id, reason="done"), metadata=_md("bot")
    )
    assert r.state == R.REVIEW_STATE_CANCELLED
    assert r.outcome == pb.common.OUTCOME_DENY
    assert r.resolution_note == "done"
    err = _error(_submit, server, d.review_id, "alice", version=2)
    assert "CANCELLED" in err.details()


def test_list_reviews_pages_oldest_first(make_server):
    clock = FakeClock()
    server = make_server(clock=clock)
    ids = []
    for _ in range(5):
        ids.append(_refund(server).review_id)
        clock.advance(seconds=1)
    stub = _reviews(server)
    seen, token = [], ""
    while True:
        page = stub.ListReviews(
            R.ListReviewsRequest(reviewer_groups=["finance"], page_size=2, page_token=token),
            metadata=_md("alice"),
        )
        seen += [r.review_id for r in page.reviews]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids
    newest = stub.ListReviews(
        R.ListReviewsRequest(order=R.REVIEW_ORDER_NEWEST_FIRST, page_size=1),
        metadata=_md("alice"),
    )
    assert newest.reviews[0].review_id == ids[-1]
    old = stub.ListReviews(R.ListReviewsRequest(older_than={"seconds": 3}), metadata=_md("alice"))
    assert [r.review_id for r in old.reviews] == ids[:2]


TIMEOUTS = """\
name: timeouts
actions: ["job.*"]
rules:
  - name: deny-later
    when: action.name == "job.deny"
    decision: review
    reviewers: ops
    reason: needs ops
    timeout: 1h
  - name: allow-later
    when: action.name == "job.allow"
    decision: review
    reviewers: ops
    reason: needs ops
    timeout: 1h
    on_timeout: allow
  - name: escalate
    when: action.name == "job.escalate"
    decision: review
    reviewers: ops
    reason: needs ops
    timeout: 1h
    on_timeout: escalate:ops-leads
  - name: two
    when: action.name == "job.two"
    decision: review
    reviewers: ops
    approvals: 2
    reason: needs two
"""


def _job(server: ServerHandle, name: str) -> pb.common.Decision:
    req = pb.common.ActionRequest()
    req.action.name = name
    req.principal.id = "bot"
    return decision_pb2_grpc.DecisionServiceStub(server.channel()).Evaluate(
        req, metadata=_md("bot")
    )


def _state(server: ServerHandle, review_id: str) -> R.Review:
    return _reviews(server).GetReview(R.GetReviewRequest(review_id=review_id))


def test_expiry_resolves_by_on_timeout_when_time_moves(make_server, policy_dir):
    clock = FakeClock()
    server = make_server(policies=policy_dir({"t.yaml": TIMEOUTS}), clock=clock)
    deny, allow, esc = (_job(server, f"job.{n}").review_id for n in ("deny", "allow", "escalate"))
    assert server.call(server.running.app.reviews.sweep()) == 0
    clock.advance(hours=1)
    assert server.call(server.running.app.reviews.sweep()) == 3
    assert _state(server, deny).outcome == pb.common.OUTCOME_DENY
    assert _state(server, allow).outcome == pb.common.OUTCOME_AUTO_ALLOW
    escalated = _state(server, esc)
    assert escalated.state == R.REVIEW_STATE_PENDING
    assert escalated.reviewer_group == "ops-leads"
    types = [e.type for e in _audit(server) if e.review_id == esc]
    assert types == ["review.opened", "review.escalated"]
    clock.advance(hours=1)
    server.call(server.running.app.reviews.sweep())
    assert _state(server, esc).state == R.REVIEW_STATE_EXPIRED
    err = _error(_submit, server, deny, "alice", version=2)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "EXPIRED" in err.details()


def test_two_approvals_need_two_people(make_server, policy_dir):
    server = make_server(policies=policy_dir({"t.yaml": TIMEOUTS}))
    rid = _job(server, "job.two").review_id
    assert _submit(server, rid, "alice").state == R.REVIEW_STATE_PENDING
    err = _error(_submit, server, rid, "alice", version=2)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already approved" in err.details()
    assert _submit(server, rid, "carol", version=2).state == R.REVIEW_STATE_APPROVED


def test_a_restarted_server_expires_what_fell_due_while_it_was_down(make_server, policy_dir):
    clock = FakeClock()
    policies = policy_dir({"t.yaml": TIMEOUTS})
    first = make_server(policies=policies, clock=clock)
    review_id = _job(first, "job.deny").review_id
    db = first.db_path
    first.call(first.running.stop(0))
    clock.advance(hours=3)  # the deadline passes while no server runs
    second = make_server(policies=policies, clock=clock, db=f"sqlite:///{db}")
    second.call(second.running.app.reviews.sweep())
    r = _state(second, review_id)
    assert r.state == R.REVIEW_STATE_EXPIRED
    assert r.outcome == pb.common.OUTCOME_DENY


def test_every_act_is_audited_with_actor_roles_and_comment(server):
    d = _refund(server)
    _submit(server, d.review_id, "alice", R.VERDICT_REJECT)
    entry = [e for e in _audit(server) if e.type == "review.rejected"][-1]
    assert entry.actor == "alice"
    assert entry.payload["act"]["comment"] == "by alice"
    assert "reviewer:*" in entry.payload["actor_roles"]
    assert entry.review_state == "REJECTED"
