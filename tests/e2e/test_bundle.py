"""Loading, rejecting and reloading policy bundles in a running server."""

from __future__ import annotations

import pytest

from signoff import pb
from signoff.policy import BundleError
from signoff_client._gen import decision_pb2_grpc, policy_pb2_grpc

from .bundles import ALLOW_ALL, BROKEN, DENY_ALL


def _req(name: str = "anything.at_all") -> pb.common.ActionRequest:
    r = pb.common.ActionRequest()
    r.action.name = name
    return r


def test_empty_policy_directory_serves_the_default(make_server, policy_dir):
    server = make_server(policies=policy_dir({}))
    d = decision_pb2_grpc.DecisionServiceStub(server.channel()).Evaluate(_req())
    assert d.outcome == pb.common.OUTCOME_REQUIRE_REVIEW
    assert d.default_applied
    assert server.running.app.bundle.warnings


def test_default_can_be_deny(make_server, policy_dir):
    server = make_server(policies=policy_dir({}), default_decision="deny")
    d = decision_pb2_grpc.DecisionServiceStub(server.channel()).Evaluate(_req())
    assert d.outcome == pb.common.OUTCOME_DENY


def test_bad_bundle_stops_start_up_with_every_error(make_server, policy_dir):
    with pytest.raises(BundleError) as err:
        make_server(policies=policy_dir({"a.yaml": BROKEN}))
    assert "a.yaml:4:" in str(err.value.errors[0])
    assert "bad-rule" in str(err.value.errors[0])


def test_reload_swaps_a_good_bundle_and_keeps_the_last_good_one(make_server, policy_dir):
    root = policy_dir({"all.yaml": ALLOW_ALL})
    server = make_server(policies=root, watch_policies=False)  # reloads by RPC only
    decide = decision_pb2_grpc.DecisionServiceStub(server.channel()).Evaluate
    policies = policy_pb2_grpc.PolicyServiceStub(server.channel())
    first = decide(_req())
    assert first.outcome == pb.common.OUTCOME_AUTO_ALLOW

    (root / "all.yaml").write_text(DENY_ALL)
    resp = policies.ReloadBundle(pb.policy.ReloadBundleRequest())
    assert resp.accepted
    second = decide(_req())
    assert second.outcome == pb.common.OUTCOME_DENY
    assert second.policy_version != first.policy_version

    (root / "all.yaml").write_text(BROKEN)
    resp = policies.ReloadBundle(pb.policy.ReloadBundleRequest())
    assert not resp.accepted
    assert resp.errors[0].file == "all.yaml"
    assert resp.errors[0].line == 4
    assert resp.bundle.version == second.policy_version
    assert decide(_req()).outcome == pb.common.OUTCOME_DENY

    types = [e.type for e in server.call(server.running.app.store.read_audit(1, 100))]
    assert types.count("policy.loaded") == 2
    assert types.count("policy.rejected") == 1


RUNAWAY = """\
name: runaway
rules:
  - name: cubic
    when: >-
      action.params.items.all(i, action.params.items.all(j,
      action.params.items.all(k, i + j + k >= 0.0)))
    decision: allow
    reason: looks harmless
"""


def test_runaway_expression_is_stopped_and_sent_to_review(make_server, policy_dir):
    server = make_server(policies=policy_dir({"runaway.yaml": RUNAWAY}))
    req = _req("anything")
    req.action.params.update({"items": list(range(1000))})
    d = decision_pb2_grpc.DecisionServiceStub(server.channel()).Evaluate(req)
    assert d.outcome == pb.common.OUTCOME_REQUIRE_REVIEW
    assert d.matched_rules[0].rule == "cubic"
    assert d.matched_rules[0].error
