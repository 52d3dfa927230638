"""An author's innocent loop meets an agent's hostile request: `xs.exists(x, s.contains(x))`
with a 180 KiB string and ~10,000 elements, both within the request limits, took 11 s of
CPU. Through a real server, the evaluation is refused before the engine runs and the
rule's on_error decides; the same rule on an ordinary request still decides by its value."""

from __future__ import annotations

from pathlib import Path

from signoff import pb
from signoff_client._gen import decision_pb2_grpc

from ..e2e.conftest import MakeServer

POLICY = """\
name: outbound-email
actions: ["email.send"]
rules:
  - name: mentions-a-recipient
    when: action.params.to.exists(r, action.params.body.contains(r))
    decision: deny
    reason: the body names a recipient
    on_error: review
  - name: otherwise
    when: "true"
    decision: allow
    reason: ordinary mail
"""


def _send(body: str, to: list[str]) -> pb.common.ActionRequest:
    req = pb.common.ActionRequest(request_id=f"r{len(body)}-{len(to)}")
    req.action.name = "email.send"
    req.action.params.update({"body": body, "to": to})
    return req


def test_a_contains_per_element_on_a_hostile_request_goes_to_on_error(
    make_server: MakeServer, tmp_path: Path
):
    (tmp_path / "email.yaml").write_text(POLICY)
    server = make_server(policies=tmp_path)
    evaluate = decision_pb2_grpc.DecisionServiceStub(server.channel()).Evaluate

    hostile = _send("a" * 180 * 1024, ["ab"] * 9_999)
    assert hostile.action.params.ByteSize() < 256 * 1024  # within the params limit
    d = evaluate(hostile)
    assert d.outcome == pb.common.OUTCOME_REQUIRE_REVIEW
    (rule,) = [m for m in d.matched_rules if m.rule == "mentions-a-recipient"]
    assert "could read" in rule.error
    assert "action.params.to" in rule.error
    assert "action.params.body" in rule.error
    assert "mentions-a-recipient failed to evaluate" in d.reason

    ordinary = evaluate(_send("Hello ann, your refund is on its way.", ["ann", "bob"]))
    assert ordinary.outcome == pb.common.OUTCOME_DENY
    assert evaluate(_send("Hello, your refund is on its way.", ["ann"])).outcome == (
        pb.common.OUTCOME_AUTO_ALLOW
    )
