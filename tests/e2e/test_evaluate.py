"""DecisionService through the real server and the generated stubs."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from signoff import pb
from signoff.core.audit import GENESIS, verify_chain
from signoff_client._gen import decision_pb2_grpc, policy_pb2_grpc

from .conftest import ServerHandle


def _req(action: str = "refund.issue", **params: object) -> pb.common.ActionRequest:
    r = pb.common.ActionRequest(justification="customer asked")
    r.action.name = action
    r.action.params.update(params)
    r.principal.id = "support-bot"
    r.principal.kind = "agent"
    r.resource.kind = "account"
    r.resource.id = "acct_1"
    return r


def _stub(server: ServerHandle) -> decision_pb2_grpc.DecisionServiceStub:
    return decision_pb2_grpc.DecisionServiceStub(server.channel())


def _audit(server: ServerHandle) -> list:
    return server.call(server.running.app.store.read_audit(1, 10_000))


@pytest.mark.parametrize(
    ("amount", "outcome", "group"),
    [
        (120, pb.common.OUTCOME_AUTO_ALLOW, ""),
        (750, pb.common.OUTCOME_REQUIRE_REVIEW, "finance"),
        (25_000, pb.common.OUTCOME_DENY, ""),
    ],
)
def test_refund_policy_gives_all_three_outcomes(server, amount, outcome, group):
    d = _stub(server).Evaluate(_req(amount=amount, currency="EUR"))
    assert d.outcome == outcome
    assert d.reviewer_group == group
    assert d.reason
    assert d.policy_version.startswith("sha256:")
    assert d.evaluated_at.seconds > 0
    assert d.matched_rules
    assert uuid.UUID(d.decision_id).version == 7


def test_every_decision_is_in_the_audit_log_when_the_reply_arrives(server):
    stub = _stub(server)
    decisions = [stub.Evaluate(_req(amount=a)) for a in (10, 600, 50_000)]
    entries = _audit(server)
    by_decision = {e.decision_id: e for e in entries if e.type == "decision"}
    for d in decisions:
        entry = by_decision[d.decision_id]
        assert entry.action_name == "refund.issue"
        assert entry.policy_version == d.policy_version
        assert entry.payload["decision"]["decision_id"] == d.decision_id
    assert entries[0].type == "policy.loaded"
    assert verify_chain(entries, GENESIS, 1).ok


def test_decision_ids_sort_by_time(server):
    stub = _stub(server)
    ids = [stub.Evaluate(_req(amount=1)).decision_id for _ in range(20)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 20


def test_card_number_is_redacted_before_it_is_stored(server):
    _stub(server).Evaluate(_req(amount=10, card_number="4111111111111111"))
    stored = [e for e in _audit(server) if e.type == "decision"][-1]
    assert "4111111111111111" not in str(stored.payload)
    assert stored.payload["request"]["action"]["params"]["card_number"] == "[REDACTED]"


def test_same_request_id_returns_the_same_decision(server):
    stub = _stub(server)
    req = _req(amount=750)
    req.request_id = "req-42"
    first = stub.Evaluate(req)
    again = stub.Evaluate(req)
    assert again.decision_id == first.decision_id
    assert again.replayed
    assert not first.replayed
    stored = [e.type for e in _audit(server) if e.request_id == "req-42"]
    assert stored == ["decision", "review.opened"]


def test_request_id_reused_for_a_different_request_is_refused(server):
    stub = _stub(server)
    req = _req(amount=750)
    req.request_id = "req-43"
    stub.Evaluate(req)
    req.action.params["amount"] = 751
    with pytest.raises(grpc.RpcError) as err:
        stub.Evaluate(req)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "req-43" in err.value.details()


def test_evaluate_batch_decides_each_in_order(server):
    resp = _stub(server).EvaluateBatch(
        pb.decision.EvaluateBatchRequest(requests=[_req(amount=1), _req(amount=99_999)])
    )
    assert [d.outcome for d in resp.decisions] == [
        pb.common.OUTCOME_AUTO_ALLOW,
        pb.common.OUTCOME_DENY,
    ]


def test_unknown_action_gets_the_default_review(server):
    d = _stub(server).Evaluate(_req("crm.export"))
    assert d.outcome == pb.common.OUTCOME_REQUIRE_REVIEW
    assert d.reviewer_group == "default"
    assert d.reason == "no policy matched"
    assert d.default_applied


def test_explain_traces_rules_and_stores_nothing(server):
    before = len(_audit(server))
    ex = _stub(server).Explain(_req(amount=750))
    assert ex.decision.outcome == pb.common.OUTCOME_REQUIRE_REVIEW
    assert ex.decision.decision_id == ""
    assert any(r.matched for r in ex.rules)
    assert any(not r.matched for r in ex.rules)
    assert ex.decided_by
    assert len(_audit(server)) == before


# --- bad input -------------------------------------------------------------------------


def _code_and_details(fn, *args) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        fn(*args)
    return err.value.code(), err.value.details()


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: setattr(r.action, "name", ""), "action.name"),
        (lambda r: setattr(r.action, "name", "refund issue"), "action.name"),
        (lambda r: setattr(r.action, "name", "refund..issue"), "action.name"),
        (lambda r: setattr(r.principal, "kind", "robot"), "principal.kind"),
        (lambda r: r.action.params.update({"blob": "x" * 300_000}), "action.params"),
        (lambda r: r.context.update({"blob": "x" * 300_000}), "context"),
        (lambda r: r.action.params.update({"n": float("nan")}), "action.params"),
    ],
)
def test_invalid_request_names_the_field(server, mutate, field):
    req = _req(amount=1)
    mutate(req)
    code, details = _code_and_details(_stub(server).Evaluate, req)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"{field}:")


def test_oversized_params_give_a_size_message(server):
    req = _req(blob="x" * 300_000)
    _, details = _code_and_details(_stub(server).Evaluate, req)
    assert "exceeds the 256 KiB limit" in details


def test_params_nested_too_deep_are_refused(server):
    v = struct_pb2.Value(string_value="leaf")
    for _ in range(25):
        s = struct_pb2.Struct()
        s.fields["a"].CopyFrom(v)
        v = struct_pb2.Value(struct_value=s)
    req = _req()
    req.action.params.fields["deep"].CopyFrom(v)
    code, details = _code_and_details(_stub(server).Evaluate, req)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "action.params: nested deeper than the 20-level limit" in details


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([b])
        out += bytes([b | 0x80])


def _ld(field: int, payload: bytes) -> bytes:
    return _varint((field << 3) | 2) + _varint(len(payload)) + payload


def test_params_nested_1000_deep_are_refused_not_crashed(server):
    # Built by hand: the Python protobuf runtime itself refuses to build such a message.
    val = _ld(3, b"leaf")
    for _ in range(1000):
        val = _ld(5, _ld(1, _ld(1, b"a") + _ld(2, val)))
    raw = _ld(2, _ld(1, b"refund.issue") + _ld(2, _ld(1, _ld(1, b"d") + _ld(2, val))))
    call = server.channel().unary_unary("/signoff.v1.DecisionService/Evaluate")
    code, details = _code_and_details(call, raw)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("request: cannot decode ActionRequest")
    assert _stub(server).Evaluate(_req(amount=1)).outcome == pb.common.OUTCOME_AUTO_ALLOW


def test_message_over_the_grpc_limit_is_refused_cleanly(server):
    code, _ = _code_and_details(_stub(server).Evaluate, _req(blob="x" * 10_000_000))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _stub(server).Evaluate(_req(amount=1)).outcome == pb.common.OUTCOME_AUTO_ALLOW


def test_batch_over_the_limit_is_refused(make_server):
    server = make_server(max_batch=3)
    batch = pb.decision.EvaluateBatchRequest(requests=[_req(amount=1)] * 4)
    code, details = _code_and_details(_stub(server).EvaluateBatch, batch)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "requests: 4 entries exceeds the limit of 3 (max_batch)"


def test_bad_request_in_a_batch_names_its_index(server):
    bad = _req()
    bad.action.name = ""
    batch = pb.decision.EvaluateBatchRequest(requests=[_req(amount=1), bad])
    _, details = _code_and_details(_stub(server).EvaluateBatch, batch)
    assert details.startswith("requests[1].action.name:")


# --- the rest of the surface ----------------------------------------------------------


def test_health_and_reflection_are_served(server):
    ch = server.channel()
    resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""))
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    resp = health_pb2_grpc.HealthStub(ch).Check(
        health_pb2.HealthCheckRequest(service="signoff.v1.DecisionService")
    )
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(ch)
    req = reflection_pb2.ServerReflectionRequest(list_services="")
    names = {
        s.name
        for r in stub.ServerReflectionInfo(iter([req]))
        for s in r.list_services_response.service
    }
    assert {"signoff.v1.DecisionService", "signoff.v1.ReviewService"} <= names


def test_get_bundle_describes_the_policies(server):
    info = policy_pb2_grpc.PolicyServiceStub(server.channel()).GetBundle(
        pb.policy.GetBundleRequest()
    )
    assert info.version.startswith("sha256:")
    assert any(f.name == "refunds" for f in info.files)


def test_shadow_rules_are_audited_as_would_have_decided(server):
    d = _stub(server).Evaluate(_req(amount=7_000))
    shadow = [m for m in d.matched_rules if m.shadow]
    assert [m.rule for m in shadow] == ["very-large-refund-two-approvers"]
    assert d.reviewer_group == "finance"  # the shadow rule asked for 2 approvers: not applied
    stored = next(e for e in _audit(server) if e.decision_id == d.decision_id)
    assert stored.payload["shadow"] == [
        "very-large-refund-two-approvers (refunds.yaml:49) would have decided review"
    ]
