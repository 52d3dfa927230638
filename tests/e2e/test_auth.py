"""Who may do what, through the real server with a tokens file."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from signoff import pb
from signoff.auth import hash_token
from signoff.serving.build import authenticator_for
from signoff.settings.model import ConfigError, Settings
from signoff_client._gen import decision_pb2_grpc, policy_pb2_grpc, review_pb2_grpc

from .conftest import ServerHandle, write_tokens

R = pb.review
PEOPLE = {
    "bot-token": ("support-bot", ["agent"], False),
    "gateway-token": ("gateway", ["agent"], True),
    "alice-token": ("alice", ["reviewer:finance"], False),
    "dave-token": ("dave", ["reviewer:comms"], False),
    "audit-token": ("ann", ["auditor"], False),
    "admin-token": ("root", ["admin"], False),
}


@pytest.fixture
def secured(make_server, tmp_path: Path) -> ServerHandle:
    people = {token: (who, roles) for token, (who, roles, _) in PEOPLE.items()}
    others = [token for token, (_, _, acts_for_others) in PEOPLE.items() if acts_for_others]
    return make_server(auth={"tokens_file": write_tokens(tmp_path, people, others)})


def _md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _refund(server: ServerHandle, token: str = "bot-token", principal: str = "support-bot"):
    req = pb.common.ActionRequest()
    req.action.name = "refund.issue"
    req.action.params.update({"amount": 750})
    req.principal.id = principal
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    return stub.Evaluate(req, metadata=_md(token))


def _code(fn, *args, **kw) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        fn(*args, **kw)
    return err.value.code(), err.value.details()


def _submit(server, review_id, token, version=1):
    req = R.SubmitReviewRequest(
        review_id=review_id, verdict=R.VERDICT_APPROVE, expected_version=version
    )
    return review_pb2_grpc.ReviewServiceStub(server.channel()).SubmitReview(
        req, metadata=_md(token)
    )


def _denials(server: ServerHandle) -> list:
    entries = server.call(server.running.app.store.read_audit(1, 10_000))
    return [e for e in entries if e.type == "access.denied"]


def test_agent_evaluates_and_reviewer_of_the_group_approves(secured):
    d = _refund(secured)
    assert d.outcome == pb.common.OUTCOME_REQUIRE_REVIEW
    r = _submit(secured, d.review_id, "alice-token")
    assert r.state == R.REVIEW_STATE_APPROVED
    assert list(r.acts[0].roles) == ["reviewer:finance"]


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ((), "missing bearer token"),
        (_md("nope"), "unknown token"),
        ((("authorization", "Basic abc"),), "Bearer"),
    ],
)
def test_unauthenticated_calls_are_refused_and_audited(secured, metadata, message):
    req = pb.common.ActionRequest()
    req.action.name = "refund.issue"
    stub = decision_pb2_grpc.DecisionServiceStub(secured.channel())
    code, details = _code(stub.Evaluate, req, metadata=metadata)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert message in details
    denied = _denials(secured)[-1]
    assert denied.payload["method"] == "signoff.v1.DecisionService/Evaluate"
    assert "nope" not in str(denied.payload)  # tokens never reach the audit log


def test_reviewer_of_another_group_is_denied(secured):
    d = _refund(secured)
    code, details = _code(_submit, secured, d.review_id, "dave-token")
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "reviewer:finance" in details
    assert _denials(secured)[-1].actor == "dave"


def test_agent_cannot_speak_for_another_principal_but_a_gateway_can(secured):
    code, details = _code(_refund, secured, "bot-token", "someone-else")
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "principal.id" in details
    assert _refund(secured, "gateway-token", "someone-else").review_id


def test_roles_gate_each_service(secured):
    code, _ = _code(_refund, secured, "alice-token", "alice")  # reviewers do not evaluate
    assert code == grpc.StatusCode.PERMISSION_DENIED
    policies = policy_pb2_grpc.PolicyServiceStub(secured.channel())
    code, _ = _code(
        policies.ReloadBundle, pb.policy.ReloadBundleRequest(), metadata=_md("bot-token")
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    ok = policies.ReloadBundle(pb.policy.ReloadBundleRequest(), metadata=_md("admin-token"))
    assert ok.accepted


def test_agents_see_their_own_reviews_reviewers_their_groups(secured):
    d = _refund(secured)
    stub = review_pb2_grpc.ReviewServiceStub(secured.channel())
    get = R.GetReviewRequest(review_id=d.review_id)
    assert stub.GetReview(get, metadata=_md("bot-token")).review_id == d.review_id
    assert stub.GetReview(get, metadata=_md("alice-token")).review_id == d.review_id
    assert stub.GetReview(get, metadata=_md("audit-token")).review_id == d.review_id
    code, _ = _code(stub.GetReview, get, metadata=_md("dave-token"))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    mine = stub.ListReviews(R.ListReviewsRequest(), metadata=_md("bot-token"))
    assert [r.review_id for r in mine.reviews] == [d.review_id]
    code, _ = _code(
        stub.ListReviews, R.ListReviewsRequest(reviewer_groups=["finance"]),
        metadata=_md("dave-token"),
    )  # fmt: skip
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert stub.ListReviews(R.ListReviewsRequest(), metadata=_md("dave-token")).reviews == []


def test_only_the_requesting_agent_cancels(secured):
    d = _refund(secured)
    stub = review_pb2_grpc.ReviewServiceStub(secured.channel())
    cancel = R.CancelReviewRequest(review_id=d.review_id)
    code, _ = _code(stub.CancelReview, cancel, metadata=_md("alice-token"))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert stub.CancelReview(cancel, metadata=_md("bot-token")).state == R.REVIEW_STATE_CANCELLED


def test_dev_mode_refuses_to_listen_beyond_loopback(tmp_path):
    settings = Settings(listen="0.0.0.0:50051", db=f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ConfigError, match="only listens on loopback"):
        authenticator_for(settings)


def test_bad_tokens_file_stops_start_up_with_its_line(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text("tokens:\n  - sha256: zz\n    identity: x\n    roles: [agent]\n")
    settings = Settings(auth={"tokens_file": path}, db=f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ConfigError, match=r"tokens\.yaml:2"):
        authenticator_for(settings)


def test_outside_dev_mode_a_missing_signing_key_stops_start_up(make_server, tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text(
        f"tokens:\n  - sha256: {hash_token('t')}\n    identity: x\n    roles: [agent]\n"
    )
    with pytest.raises(ConfigError, match="audit signing key not found"):
        make_server(auth={"tokens_file": path}, audit={"create_key": False})


def test_audit_rpcs_need_the_auditor_role(secured):
    from signoff_client._gen import audit_pb2_grpc

    stub = audit_pb2_grpc.AuditServiceStub(secured.channel())
    query = pb.audit.QueryAuditRequest()
    for token in ("bot-token", "alice-token", "admin-token"):
        code, details = _code(stub.QueryAudit, query, metadata=_md(token))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert "auditor" in details
    assert stub.QueryAudit(query, metadata=_md("audit-token")).entries
