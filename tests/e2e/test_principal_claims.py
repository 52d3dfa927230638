"""Facts and claims about a principal, through the real server: CEL, the audit log and
reviewers see what the deployment vouches for; the caller's word is under principal.claimed.

The probe policy has one review rule per fact or claim it tests; `matched_rules` of the
decision says which of them CEL found true.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from signoff import pb
from signoff_client import Client, Outcome, receipts
from signoff_client._gen import audit_pb2_grpc, decision_pb2_grpc, review_pb2_grpc

from .conftest import MakeServer, ServerHandle, write_tokens

R = pb.review
PROBES = {
    "fact-vip": '"vip" in principal.tags',
    "fact-admin-role": '"admin" in principal.roles',
    "fact-kind-user": 'principal.kind == "user"',
    "fact-tier-gold": 'has(principal.attributes.tier) && principal.attributes.tier == "gold"',
    "fact-on-behalf": 'principal.on_behalf_of != ""',
    "fact-eu": '"eu" in principal.tags',
    "fact-support-role": '"support" in principal.roles',
    "fact-kind-agent": 'principal.kind == "agent"',
    "fact-team": 'has(principal.attributes.team) && principal.attributes.team == "support"',
    "claimed-vip": '"vip" in principal.claimed.tags',
    "claimed-on-behalf": 'principal.claimed.on_behalf_of != ""',
}
POLICY = "name: probe\nactions: [probe]\nrules:\n" + "".join(
    f"  - name: {name}\n    when: '{expr.replace(chr(39), chr(39) * 2)}'\n"
    f"    decision: review\n    reviewers: finance\n    reason: {name}\n"
    for name, expr in PROBES.items()
)
POLICY += "  - name: otherwise\n    when: 'true'\n    decision: allow\n    reason: none\n"
PEOPLE = {  # token: (identity, roles)
    "bot": ("support-bot", ["agent"]),
    "lonely": ("lonely-bot", ["agent"]),
    "gw": ("gateway", ["agent"]),
    "alice": ("alice", ["reviewer:finance"]),
    "carol": ("carol", ["reviewer:finance"]),
    "dave": ("dave", ["reviewer:finance"]),
    "root": ("root", ["admin"]),
    "ann": ("ann", ["auditor"]),
}
DIRECTORY = {
    "support-bot": {
        "kind": "agent",
        "roles": ["support"],
        "tags": ["eu"],
        "attributes": {"team": "support"},
        "on_behalf_of": ["carol"],
    },
    "claude-agent": {"tags": ["vip"], "on_behalf_of": "*"},
}
# What an agent with API access claims about itself, none of it vouched for.
CLAIMS = {
    "kind": "user",
    "roles": ["admin"],
    "tags": ["vip"],
    "attributes": {"tier": "gold"},
    "on_behalf_of": "alice",
}


@pytest.fixture
def secured(make_server: MakeServer, policy_dir, tmp_path: Path) -> ServerHandle:
    tokens = write_tokens(tmp_path, PEOPLE, others=["gw"], principals=DIRECTORY)
    return make_server(policies=policy_dir({"probe.yaml": POLICY}), auth={"tokens_file": tokens})


def _md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _request(principal_id: str = "", action: str = "probe", **claims: Any) -> Any:
    req = pb.common.ActionRequest()
    req.action.name = action
    p = req.principal
    p.id = principal_id
    p.kind = claims.get("kind", "")
    p.roles.extend(claims.get("roles", []))
    p.tags.extend(claims.get("tags", []))
    p.on_behalf_of = claims.get("on_behalf_of", "")
    if "attributes" in claims:
        p.attributes.update(claims["attributes"])
    return req


def _evaluate(server: ServerHandle, token: str, req: Any) -> pb.common.Decision:
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    return stub.Evaluate(req, metadata=_md(token))


def _matched(decision: Any) -> set[str]:
    return {m.rule for m in decision.matched_rules} - {"otherwise"}


def _review(server: ServerHandle, review_id: str, token: str = "alice") -> R.Review:
    stub = review_pb2_grpc.ReviewServiceStub(server.channel())
    return stub.GetReview(R.GetReviewRequest(review_id=review_id), metadata=_md(token))


def _submit(server: ServerHandle, review_id: str, token: str) -> R.Review:
    stub = review_pb2_grpc.ReviewServiceStub(server.channel())
    req = R.SubmitReviewRequest(review_id=review_id, verdict=R.VERDICT_APPROVE, expected_version=1)
    return stub.SubmitReview(req, metadata=_md(token))


def _code(fn: Any, *args: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        fn(*args)
    return err.value.code(), err.value.details()


def test_claims_an_agent_makes_about_itself_are_not_facts(secured):
    d = _evaluate(secured, "lonely", _request("lonely-bot", **CLAIMS))
    # Only the rules that knowingly read claims fire; "vip" in principal.tags does not.
    assert _matched(d) == {"claimed-vip", "claimed-on-behalf"}
    seen = _review(secured, d.review_id).request.principal
    assert (seen.kind, list(seen.roles), list(seen.tags), seen.on_behalf_of) == ("", [], [], "")
    assert not seen.attributes.fields
    c = seen.claimed
    assert (c.kind, list(c.roles), list(c.tags), c.on_behalf_of) == (
        "user",
        ["admin"],
        ["vip"],
        "alice",
    )
    assert dict(c.attributes) == {"tier": "gold"}


def test_the_audit_log_records_facts_and_claims_apart(secured):
    d = _evaluate(secured, "bot", _request("support-bot", tags=["vip"]))
    entries = secured.call(secured.running.app.store.read_audit(1, 10_000))
    [entry] = [e for e in entries if e.type == "decision" and e.decision_id == d.decision_id]
    principal = entry.payload["request"]["principal"]
    assert principal["tags"] == ["eu"]
    assert principal["claimed"] == {"tags": ["vip"]}


def test_facts_come_from_the_tokens_files_principals(secured):
    d = _evaluate(secured, "bot", _request("support-bot", tags=["vip"], roles=["admin"]))
    assert _matched(d) == {"fact-eu", "fact-support-role", "fact-kind-agent", "fact-team"} | {
        "claimed-vip"
    }


def test_an_agent_without_a_directory_entry_has_no_facts(secured):
    assert _matched(_evaluate(secured, "lonely", _request())) == set()


def test_on_behalf_of_a_vouched_user_is_kept(secured):
    d = _evaluate(secured, "bot", _request("support-bot", on_behalf_of="carol"))
    assert {"fact-on-behalf", "claimed-on-behalf"} <= _matched(d)
    assert _review(secured, d.review_id).request.principal.on_behalf_of == "carol"
    code, message = _code(_submit, secured, d.review_id, "carol")
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "separation of duties" in message


def test_on_behalf_of_an_unvouched_user_moves_to_claimed_and_still_bars_them(secured):
    d = _evaluate(secured, "bot", _request("support-bot", on_behalf_of="alice"))
    assert "fact-on-behalf" not in _matched(d)
    assert "claimed-on-behalf" in _matched(d)
    p = _review(secured, d.review_id).request.principal
    assert (p.on_behalf_of, p.claimed.on_behalf_of) == ("", "alice")
    # A claim only makes approving harder: alice, whom the agent says it acts for, may not
    # approve; dave may.
    code, message = _code(_submit, secured, d.review_id, "alice")
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "separation of duties" in message
    assert _submit(secured, d.review_id, "dave").state == R.REVIEW_STATE_APPROVED


def test_a_gateway_naming_a_principal_gets_that_principals_facts(secured):
    d = _evaluate(secured, "gw", _request("claude-agent", on_behalf_of="bob"))
    assert _matched(d) == {"fact-vip", "fact-on-behalf", "claimed-on-behalf"}
    # A principal the directory does not know has no facts, whoever names it.
    unknown = _evaluate(secured, "gw", _request("stranger", tags=["vip"], on_behalf_of="bob"))
    assert _matched(unknown) == {"claimed-vip", "claimed-on-behalf"}


def test_a_batch_sorts_every_request_and_refuses_a_caller_set_claim(secured):
    stub = decision_pb2_grpc.DecisionServiceStub(secured.channel())
    batch = pb.decision.EvaluateBatchRequest()
    batch.requests.append(_request("lonely-bot", tags=["vip"]))
    batch.requests.append(_request("lonely-bot", roles=["admin"]))
    decisions = stub.EvaluateBatch(batch, metadata=_md("lonely")).decisions
    assert [_matched(d) for d in decisions] == [{"claimed-vip"}, set()]
    forged = _request("lonely-bot")
    forged.principal.claimed.tags.append("vip")
    batch.requests.append(forged)
    code, message = _code(lambda: stub.EvaluateBatch(batch, metadata=_md("lonely")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message.startswith("requests[2].principal.claimed: is filled in by the server")


def test_a_caller_may_not_send_principal_claimed(secured):
    req = _request("lonely-bot")
    req.principal.claimed.tags.append("vip")
    code, message = _code(_evaluate, secured, "lonely", req)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message.startswith("principal.claimed:")


def test_explain_sees_the_same_facts(secured):
    stub = decision_pb2_grpc.DecisionServiceStub(secured.channel())
    mine = stub.Explain(_request("lonely-bot", tags=["vip"]), metadata=_md("lonely"))
    assert _matched(mine.decision) == {"claimed-vip"}
    # An admin explaining another principal gets that principal's facts, as Evaluate would.
    theirs = stub.Explain(_request("support-bot", tags=["vip"]), metadata=_md("root"))
    assert "fact-eu" in _matched(theirs.decision)
    assert "fact-vip" not in _matched(theirs.decision)


def test_receipts_and_approvals_verify_against_the_request_as_the_agent_sent_it(
    make_server: MakeServer, policy_dir, tmp_path: Path
):
    # The digest covers the principal as sent (claims), not the facts put in its place.
    tokens = write_tokens(tmp_path, PEOPLE, principals=DIRECTORY)
    server = make_server(auth={"tokens_file": tokens})  # the example policies
    principal = {"id": "support-bot", "tags": ["beta"], "attributes": {"shift": "night"}}
    action = {"action": "refund.issue", "params": {"amount": 50}, "principal": principal}
    with Client(server.target, token="bot") as bot:
        allowed = bot.evaluate(**action)
        assert allowed.outcome is Outcome.AUTO_ALLOW
        key = audit_pb2_grpc.AuditServiceStub(server.channel()).GetCheckpoints(
            pb.audit.GetCheckpointsRequest(), metadata=_md("ann")
        )
        receipts.verify(allowed.receipt, key.public_key_pem, action)
        # A review: the client checks the approval's digests against the request the
        # server echoes (facts on top, claims under `claimed`).
        big = {**action, "params": {"amount": 750}, "request_id": "big-1"}
        pending = bot.evaluate(**big)
        approved = _submit(server, pending.review_id, "alice")
        approval = bot.require(**big, timeout=10)  # the same request_id: that review
        assert approval.review is not None
        assert approval.review.review_id == pending.review_id
        receipts.verify(approved.receipt, key.public_key_pem, big)


def test_dev_mode_takes_claims_as_facts_and_says_so(make_server, policy_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="signoff"):
        dev = make_server(policies=policy_dir({"probe.yaml": POLICY}))
    assert any("auth.claims_trusted" in r.getMessage() for r in caplog.records)
    d = _evaluate(dev, "bot", _request("bot", **CLAIMS))
    assert {"fact-vip", "fact-admin-role", "fact-kind-user", "fact-tier-gold"} <= _matched(d)
    assert "claimed-vip" in _matched(d)


# --- JWT principal_claims, through the real server ---

ISSUER, AUDIENCE = "https://idp.example.com", "signoff"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwt(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "jwt-bot", "roles": ["agent"]}
    body |= {"exp": int(time.time()) + 300} | claims
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


def test_jwt_claims_vouch_for_the_callers_facts(make_server, policy_dir, tmp_path, key):
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}))
    names = {"tags": "labels", "roles": "groups", "kind": "typ", "on_behalf_of": "acts_for"}
    settings = {"jwks_file": jwks, "issuer": ISSUER, "audience": AUDIENCE}
    server = make_server(
        policies=policy_dir({"probe.yaml": POLICY}),
        auth={"jwt": {**settings, "principal_claims": names}},
    )
    token = _jwt(key, labels=["vip"], groups="support", typ="user", acts_for=["carol"])
    d = _evaluate(server, token, _request(on_behalf_of="carol", tags=["beta"]))
    assert {"fact-vip", "fact-support-role", "fact-kind-user", "fact-on-behalf"} <= _matched(d)
    # The same token's holder claiming more than its claims say gets nothing for it.
    plain = _jwt(key)
    d = _evaluate(server, plain, _request(on_behalf_of="carol", **{"tags": ["vip"]}))
    assert _matched(d) == {"claimed-vip", "claimed-on-behalf"}


def test_the_legacy_switch_trusts_claims_and_says_so(make_server, policy_dir, tmp_path, caplog):
    tokens = write_tokens(tmp_path, PEOPLE, principals=DIRECTORY)
    with caplog.at_level(logging.WARNING, logger="signoff"):
        server = make_server(
            policies=policy_dir({"probe.yaml": POLICY}),
            auth={"tokens_file": tokens, "trust_principal_claims": True},
        )
    assert any("auth.claims_trusted" in r.getMessage() for r in caplog.records)
    d = _evaluate(server, "lonely", _request("lonely-bot", tags=["vip"]))
    assert _matched(d) == {"fact-vip", "claimed-vip"}
