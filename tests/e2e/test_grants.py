"""Standing approvals through the real server, on both backends: a reviewer grants while
approving, later requests inside the grant are allowed naming it, everything else is
reviewed as before, and every grant, use and revocation is audited."""

from __future__ import annotations

import asyncio
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from signoff import pb
from signoff.app.grants.desk import value
from signoff_client import receipts
from signoff_client._gen import decision_pb2_grpc, review_pb2_grpc

from .conftest import FakeClock, ServerHandle, write_tokens

R = pb.review
ALLOW, REVIEW, DENY = (
    pb.common.OUTCOME_AUTO_ALLOW,
    pb.common.OUTCOME_REQUIRE_REVIEW,
    pb.common.OUTCOME_DENY,
)
POLICIES = {
    "pay.yaml": """\
name: pay
actions: ["pay.*"]
rules:
  - name: big
    when: double(action.params.amount) > 100.0
    decision: review
    reviewers: finance
    reason: big payment
  - name: blocked
    when: action.params.currency == "XXX"
    decision: deny
    reason: blocked currency
""",
    "wire.yaml": """\
name: wire
actions: ["wire.*"]
rules:
  - name: pair
    when: "true"
    decision: review
    reviewers: finance
    approvals: 2
    reason: two people look
""",
    "lock.yaml": """\
name: lock
actions: ["lock.*"]
rules:
  - name: always
    when: "true"
    decision: review
    reviewers: finance
    grants: false
    reason: every time
""",
    "dual.yaml": """\
name: dual
actions: ["dual.*"]
rules:
  - name: pair
    when: "true"
    decision: review
    reviewers: finance
    approvals: 2
    grants: true
    reason: two people, who may grant
""",
}
PEOPLE = {
    "bot": ("bot", ["agent"]),
    "gw": ("gateway", ["agent"]),
    "alice": ("alice", ["reviewer:finance"]),
    "bob": ("bob", ["reviewer:finance"]),
    "dave": ("dave", ["reviewer:comms"]),
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def srv(make_server, backend, policy_dir, tmp_path: Path, clock: FakeClock) -> ServerHandle:
    tokens = write_tokens(tmp_path, PEOPLE, others=["gw"])
    return make_server(policy_dir(POLICIES), clock=clock, auth={"tokens_file": tokens})


def _md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _ask(srv: ServerHandle, amount: float, currency: str = "EUR", **kw: str) -> pb.common.Decision:
    req = pb.common.ActionRequest()
    req.action.name = kw.get("action", "pay.out")
    req.action.params.update({"amount": amount, "currency": currency})
    token = kw.get("token", "bot")
    req.principal.id = kw.get("principal", PEOPLE[token][0])
    stub = decision_pb2_grpc.DecisionServiceStub(srv.channel())
    return stub.Evaluate(req, metadata=_md(token))


def _stub(srv: ServerHandle) -> review_pb2_grpc.ReviewServiceStub:
    return review_pb2_grpc.ReviewServiceStub(srv.channel())


def _spec(ttl: int = 3600, uses: int = 3, any_principal: bool = False, **bounds: tuple):
    spec = R.GrantSpec(ttl_seconds=ttl, max_uses=uses, any_principal=any_principal)
    for path, (op, v) in bounds.items():
        spec.bounds.add(path=path, op=op, value=value(v))
    return spec


EUR_750 = {"amount": ("<=", 750), "currency": ("==", "EUR")}


def _approve(srv, review_id: str, spec, who: str = "alice", verdict=R.VERDICT_APPROVE):
    req = R.SubmitReviewRequest(
        review_id=review_id, verdict=verdict, expected_version=1, grant=spec, comment="ok"
    )
    return _stub(srv).SubmitReview(req, metadata=_md(who))


def _grants(srv, who: str = "alice", inactive: bool = False) -> list:
    req = R.ListGrantsRequest(reviewer_group="finance", include_inactive=inactive)
    return list(_stub(srv).ListGrants(req, metadata=_md(who)).grants)


def _audit(srv: ServerHandle) -> list:
    return srv.call(srv.running.app.store.read_audit(1, 100_000))


def _refused(fn, *args, **kw) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        fn(*args, **kw)
    return err.value.code(), err.value.details()


def _granted(srv, uses: int = 3, **kw) -> R.Grant:
    d = _ask(srv, 750)
    assert d.outcome == REVIEW
    r = _approve(srv, d.review_id, _spec(uses=uses, **kw))
    assert r.state == R.REVIEW_STATE_APPROVED
    (grant,) = _grants(srv)
    return grant


def test_a_grant_allows_later_requests_inside_it_and_names_itself(srv, clock):
    grant = _granted(srv, **EUR_750)
    assert grant.reviewer_group == "finance"
    assert (grant.policy, grant.rule, grant.principal_id) == ("pay", "big", "bot")
    assert grant.description == 'pay.out by principal bot where amount <= 750, currency == "EUR"'
    assert (grant.uses, grant.max_uses, grant.created_by) == (0, 3, "alice")
    assert grant.expires_at.ToSeconds() - grant.created_at.ToSeconds() == 3600

    d = _ask(srv, 500)
    assert d.outcome == ALLOW
    assert d.reason == f"standing approval {grant.grant_id} granted by alice"
    assert not d.review_id
    assert _grants(srv)[0].uses == 1
    # Its receipt is sealed with its write batch like any AUTO_ALLOW's (version 2).
    pay = {"action": "pay.out", "params": {"amount": 500, "currency": "EUR"}, "principal": "bot"}
    public = srv.running.app.receipts.key.public_key()
    verified = receipts.verify(d.receipt, public, pay, now=clock.now())
    assert verified.decision_id == d.decision_id
    assert d.receipt.tree_size >= 1

    audit = _audit(srv)
    created = [e for e in audit if e.type == "grant.created"]
    assert [(e.actor, e.payload["grant_id"]) for e in created] == [("alice", grant.grant_id)]
    assert created[0].payload["scope"] == grant.description
    (used,) = [e for e in audit if e.decision_id == d.decision_id]
    assert (used.type, used.outcome) == ("decision", "AUTO_ALLOW")
    assert used.payload["grant_id"] == grant.grant_id
    assert used.payload["decided_by"].startswith(f"standing approval {grant.grant_id}")


def test_requests_outside_a_grant_are_reviewed_as_before(srv, clock):
    grant = _granted(srv, **EUR_750)
    assert _ask(srv, 750.5).outcome == REVIEW  # past the bound
    assert _ask(srv, 500, "USD").outcome == REVIEW  # other currency
    assert _ask(srv, 500, token="gw", principal="other-bot").outcome == REVIEW
    assert _ask(srv, 500, "XXX").outcome == DENY  # a deny is never turned into an allow
    assert _grants(srv)[0].uses == 0
    clock.advance(seconds=3601)
    assert _ask(srv, 500).outcome == REVIEW  # expired
    assert _grants(srv) == []
    assert [g.grant_id for g in _grants(srv, inactive=True)] == [grant.grant_id]


def test_any_principal_and_a_deny_under_a_broad_grant(srv):
    _granted(srv, any_principal=True, amount=("<=", 750))
    assert _ask(srv, 500, token="gw", principal="other-bot").outcome == ALLOW
    assert _ask(srv, 500, "XXX").outcome == DENY


def test_a_grant_is_used_up_then_reviews_open_again(srv):
    _granted(srv, uses=2, **EUR_750)
    assert [_ask(srv, 200).outcome for _ in range(3)] == [ALLOW, ALLOW, REVIEW]
    assert _grants(srv) == []
    assert _grants(srv, inactive=True)[0].uses == 2


def test_revoke_ends_a_grant_at_once_and_is_audited(srv):
    grant = _granted(srv, **EUR_750)
    req = R.RevokeGrantRequest(grant_id=grant.grant_id, reason="too broad")
    code, details = _refused(_stub(srv).RevokeGrant, req, metadata=_md("dave"))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "finance" in details
    revoked = _stub(srv).RevokeGrant(req, metadata=_md("bob"))
    assert (revoked.revoked_by, revoked.revoked_at.ToSeconds() > 0) == ("bob", True)
    assert _ask(srv, 500).outcome == REVIEW
    code, details = _refused(_stub(srv).RevokeGrant, req, metadata=_md("bob"))
    assert (code, details) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        f"grant {grant.grant_id} is already revoked",
    )
    missing = R.RevokeGrantRequest(grant_id="nope")
    assert _refused(_stub(srv).RevokeGrant, missing, metadata=_md("bob"))[0] == (
        grpc.StatusCode.NOT_FOUND
    )
    entries = [e for e in _audit(srv) if e.type == "grant.revoked"]
    assert [(e.actor, e.payload["grant_id"], e.payload["reason"]) for e in entries] == [
        ("bob", grant.grant_id, "too broad")
    ]


def test_list_grants_is_for_the_groups_reviewers(srv):
    _granted(srv, **EUR_750)
    code, _ = _refused(_grants, srv, "dave")
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert len(_grants(srv, "bob")) == 1


# Bad input: each refused grant leaves the review pending and grants nothing.
@pytest.mark.parametrize(
    ("action", "who", "spec", "verdict", "code", "message"),
    [
        (
            "wire.out",
            "alice",
            _spec(),
            R.VERDICT_APPROVE,
            grpc.StatusCode.FAILED_PRECONDITION,
            "rule wire/pair forbids standing approvals (approvals: 2+ without grants)",
        ),
        (
            "lock.out",
            "alice",
            _spec(),
            R.VERDICT_APPROVE,
            grpc.StatusCode.FAILED_PRECONDITION,
            "rule lock/always forbids standing approvals (grants: false)",
        ),
        (
            "pay.out",
            "dave",
            _spec(),
            R.VERDICT_APPROVE,
            grpc.StatusCode.PERMISSION_DENIED,
            "dave does not review for finance and cannot grant for it",
        ),
        (
            "pay.out",
            "alice",
            _spec(amount=("<=", 700)),
            R.VERDICT_APPROVE,
            grpc.StatusCode.INVALID_ARGUMENT,
            "grant.bounds[0] (amount): amount <= 700 does not hold for the approved action",
        ),
        (
            "pay.out",
            "alice",
            _spec(refund_to=("==", "x")),
            R.VERDICT_APPROVE,
            grpc.StatusCode.INVALID_ARGUMENT,
            "the approved action has no param 'refund_to'",
        ),
        (
            "pay.out",
            "alice",
            _spec(ttl=86401),
            R.VERDICT_APPROVE,
            grpc.StatusCode.INVALID_ARGUMENT,
            "grant.ttl_seconds: must be 1-86400 (the server's grants.max_ttl)",
        ),
        (
            "pay.out",
            "alice",
            _spec(uses=0),
            R.VERDICT_APPROVE,
            grpc.StatusCode.INVALID_ARGUMENT,
            "grant.max_uses: must be 1-10000",
        ),
        (
            "pay.out",
            "alice",
            _spec(),
            R.VERDICT_REJECT,
            grpc.StatusCode.INVALID_ARGUMENT,
            "grant: only with VERDICT_APPROVE",
        ),
    ],
)
def test_bad_grants_are_refused(srv, action, who, spec, verdict, code, message):
    d = _ask(srv, 750, action=action)
    assert d.outcome == REVIEW
    got, details = _refused(_approve, srv, d.review_id, spec, who, verdict)
    assert got == code
    assert message in details
    r = _stub(srv).GetReview(R.GetReviewRequest(review_id=d.review_id), metadata=_md("bob"))
    assert r.state == R.REVIEW_STATE_PENDING
    assert _grants(srv, inactive=True) == []
    assert not [e for e in _audit(srv) if e.type == "grant.created"]


def test_only_the_approval_that_resolves_a_review_may_grant(srv):
    d = _ask(srv, 750, action="dual.out")
    code, details = _refused(_approve, srv, d.review_id, _spec(**EUR_750))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "is not approved by this act (1 more approvals needed)" in details
    first = R.SubmitReviewRequest(review_id=d.review_id, verdict=R.VERDICT_APPROVE)
    first.expected_version = 1
    assert _stub(srv).SubmitReview(first, metadata=_md("alice")).state == (R.REVIEW_STATE_PENDING)
    second = R.SubmitReviewRequest(
        review_id=d.review_id, verdict=R.VERDICT_APPROVE, expected_version=2, grant=_spec(**EUR_750)
    )
    assert _stub(srv).SubmitReview(second, metadata=_md("bob")).state == (R.REVIEW_STATE_APPROVED)
    (grant,) = _grants(srv)
    assert (grant.rule, grant.created_by) == ("pair", "bob")
    assert _ask(srv, 10, action="dual.out").outcome == ALLOW


def test_concurrent_uses_never_exceed_max_uses(srv):
    grant = _granted(srv, uses=5, **EUR_750)
    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(lambda _: _ask(srv, 300).outcome, range(20)))
    assert outcomes.count(ALLOW) == 5
    assert outcomes.count(REVIEW) == 15
    (used,) = _grants(srv, inactive=True)
    assert (used.grant_id, used.uses) == (grant.grant_id, 5)
    named = [e for e in _audit(srv) if e.type == "decision" and "grant_id" in e.payload]
    assert len(named) == 5


SIGNOFF = [sys.executable, "-m", "signoff.cli.main"]


async def _cli(
    srv: ServerHandle,
    *args: str,
    cmd: tuple[str, ...] = ("reviews", "approve"),
    token: str = "alice",
) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    env.update(SIGNOFF_TOKEN=token, SIGNOFF_SERVER=srv.target)
    proc = await asyncio.create_subprocess_exec(
        *SIGNOFF,
        *cmd,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_approve_with_a_grant(srv):
    d = _ask(srv, 750)
    code, out, err = await _cli(
        srv,
        d.review_id,
        *("--grant-for", "1h", "--grant-uses", "10", "--grant-any-principal"),
        *("--grant-bound", "amount<=750", "--grant-bound", "currency==EUR"),
    )
    assert (code, err) == (0, "")
    assert "now APPROVED by alice" in out
    (grant,) = _grants(srv)
    assert grant.description == ('pay.out by any principal where amount <= 750, currency == "EUR"')
    assert (grant.max_uses, grant.expires_at.ToSeconds() - grant.created_at.ToSeconds()) == (
        10,
        3600,
    )
    assert _ask(srv, 200, token="gw", principal="other-bot").outcome == ALLOW


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grant-for", "1h", "--grant-bound", "amount<750"], "--grant-bound 'amount<750': use"),
        (["--grant-uses", "5"], "--grant-uses, --grant-bound and --grant-any-principal need"),
        (["another-id", "--grant-for", "1h"], "--grant-for takes one review, not a batch"),
        (["--grant-for", "1h", "--grant-bound", "amount<=10"], "amount <= 10 does not hold"),
        (["--grant-for", "1h"], "grant.bounds: at least one bound is required"),
        (
            ["--grant-for", "1h", "--grant-bound", "currency==EUR"],
            "grant.bounds: param 'amount' is a number (750) without an upper bound",
        ),
    ],
)
async def test_cli_bad_grant_flags_are_refused(srv, args, message):
    d = _ask(srv, 750)
    code, _out, err = await _cli(srv, d.review_id, *args)
    assert code != 0
    assert message in err
    assert _grants(srv, inactive=True) == []


async def test_cli_grants_list_and_revoke(srv):
    grant = _granted(srv, **EUR_750)
    code, out, err = await _cli(srv, "--group", "finance", cmd=("grants", "list"))
    assert (code, err) == (0, "")
    assert f"{grant.grant_id}  {grant.description}  0/3 used, until " in out
    assert "granted by alice (pay/big)" in out
    code, out, err = await _cli(srv, "--group", "finance", cmd=("grants", "list"), token="dave")
    assert code != 0
    assert "dave does not review for finance" in err
    code, out, err = await _cli(srv, grant.grant_id, "--reason", "enough", cmd=("grants", "revoke"))
    assert (code, err) == (0, "")
    assert out.strip() == f"revoked {grant.grant_id}: {grant.description}"
    code, out, _ = await _cli(srv, "--group", "finance", cmd=("grants", "list"))
    assert out.strip() == "no active standing approvals for finance"
    code, out, _ = await _cli(srv, "--group", "finance", "--all", cmd=("grants", "list"))
    assert "revoked by alice" in out
    code, _, err = await _cli(srv, grant.grant_id, cmd=("grants", "revoke"))
    assert code != 0
    assert "is already revoked" in err
