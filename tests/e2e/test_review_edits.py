"""No edit escapes the policy: a reviewer's edit is evaluated with the bundle in force before
it is accepted, through the real server (gRPC, Connect, the CLI) on both backends.

Dev mode: the bearer token names the caller and every caller has every role, so "alice" may
review for any group; the refusals below hold even for her.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from signoff import pb
from signoff_client import Client, ReviewState, receipts
from signoff_client._gen import audit_pb2_grpc, decision_pb2_grpc, review_pb2_grpc

from .conftest import MakeServer, ServerHandle
from .test_cli_reviews import _cli

R = pb.review
MASK = "[REDACTED]"
CARD = "4111 1111 1111 1111"
ACCOUNT = "1068"  # 1068 % 97 == 1: passes the payouts policy's checksum
PAYOUTS = """\
name: payouts
description: Payouts to a bank account (a test policy for reviewers' edits).
actions: ["payout.*"]
variables:
  amount: double(action.params.amount)
rules:
  - name: payout-over-limit
    when: vars.amount > 10000
    decision: deny
    reason: Payouts above 10,000 are never made by an agent.
{checksum}
  - name: treasury-payout
    when: vars.amount > 5000
    decision: review
    reviewers: treasury
    reason: Payouts above 5,000 need treasury.
  - name: large-payout
    when: vars.amount > 2000
    decision: review
    reviewers: finance
    approvals: 2
    reason: Payouts above 2,000 need two finance reviewers.
  - name: payout
    when: vars.amount > 500
    decision: review
    reviewers: finance
    reason: Payouts above 500 need a finance reviewer.
  - name: small-payout
    when: vars.amount <= 500
    decision: allow
    reason: Small payout.
redact: ["action.params.account"]
"""
# Reads the redacted account number: on the mask, int() fails and on_error decides.
CHECKSUM = """\
  - name: account-checksum
    when: has(action.params.account) && int(action.params.account) % 97 != 1
    decision: {decision}
    reason: The account number fails its checksum.
    on_error: {on_error}
"""


def _md(who: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {who}"),)


def _evaluate(server: ServerHandle, req: pb.common.ActionRequest) -> pb.common.Decision:
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    return stub.Evaluate(req, metadata=_md(req.principal.id))


def _request(name: str, params: dict[str, Any]) -> pb.common.ActionRequest:
    req = pb.common.ActionRequest(justification="customer asked")
    req.action.name = name
    req.action.params.update(params)
    req.principal.id = "bot"
    req.resource.kind = "account"
    req.resource.id = "acct_9"
    return req


def _open(server: ServerHandle, name: str, params: dict[str, Any]) -> str:
    d = _evaluate(server, _request(name, params))
    assert d.outcome == pb.common.OUTCOME_REQUIRE_REVIEW, d
    return d.review_id


def _modify(server: ServerHandle, review_id: str, params: dict[str, Any]) -> R.Review:
    req = R.SubmitReviewRequest(
        review_id=review_id, verdict=R.VERDICT_MODIFY, expected_version=1, comment="edited"
    )
    req.params.update(params)
    stub = review_pb2_grpc.ReviewServiceStub(server.channel())
    return stub.SubmitReview(req, metadata=_md("alice"))


def _refused(server: ServerHandle, review_id: str, params: dict[str, Any]) -> str:
    """Submit the edit, expect FAILED_PRECONDITION; check nothing changed; the message."""
    before = _audit(server)
    with pytest.raises(grpc.RpcError) as err:
        _modify(server, review_id, params)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, err.value.details()
    _assert_untouched(server, review_id, before)
    return err.value.details()


def _assert_untouched(server: ServerHandle, review_id: str, before: list[Any]) -> None:
    r = _get(server, review_id)
    assert (r.state, r.version, len(r.acts)) == (R.REVIEW_STATE_PENDING, 1, 0)
    assert not r.HasField("final_params")
    after = _audit(server)
    assert [e.seq for e in after] == [e.seq for e in before]  # nothing recorded


def _get(server: ServerHandle, review_id: str) -> R.Review:
    stub = review_pb2_grpc.ReviewServiceStub(server.channel())
    return stub.GetReview(R.GetReviewRequest(review_id=review_id), metadata=_md("carol"))


def _audit(server: ServerHandle) -> list[Any]:
    return server.call(server.running.app.store.read_audit(1, 100_000))


def _modified_entry(server: ServerHandle, review_id: str) -> Any:
    (entry,) = [
        e for e in _audit(server) if e.review_id == review_id and e.type == "review.modified"
    ]
    return entry


def _where(server: ServerHandle, name: str) -> str:
    """`policy/rule (file:line)` of the rule `policy/rule` of the bundle in force."""
    for policy in server.running.app.bundle.policies:
        for r in policy.rules:
            if f"{r.policy}/{r.name}" == name:
                return f"{name} ({r.file}:{r.line})"
    raise AssertionError(f"no rule {name}")


PayoutServer = Callable[..., ServerHandle]


@pytest.fixture
def payouts(make_server: MakeServer, backend: str, tmp_path: Path) -> PayoutServer:
    """Factory: a server on the payouts policy, with the checksum rule as asked."""

    def start(decision: str = "deny", on_error: str = "deny") -> ServerHandle:
        root = tmp_path / f"policies-{decision}-{on_error}"
        root.mkdir()
        checksum = CHECKSUM.format(decision=decision, on_error=on_error)
        if decision == "review":
            checksum += "    reviewers: finance\n"
        (root / "payouts.yaml").write_text(PAYOUTS.format(checksum=checksum.rstrip("\n")))
        return make_server(root, backend=backend, watch_policies=False)  # reloads by hand

    return start


def test_an_edit_to_a_denied_amount_is_refused_naming_the_rule(server):
    # The case: a 750 refund edited into 25,000 to another account.
    review_id = _open(
        server, "refund.issue", {"amount": 750, "currency": "EUR", "card_number": CARD}
    )
    edited = {"amount": 25000, "currency": "EUR", "card_number": MASK, "iban": "XX00 ATTACKER"}
    message = _refused(server, review_id, edited)
    rule = _where(server, "refunds/refund-over-hard-limit")
    assert message == (
        f"edit refused: the policy would deny the edited action (rule {rule}): Refunds above "
        "10,000 are never issued by an agent. Edit it within the policy, or reject the review"
    )
    # The same request, asked directly, is denied by the same rule.
    direct = _evaluate(server, _request("refund.issue", edited))
    assert direct.outcome == pb.common.OUTCOME_DENY
    assert direct.matched_rules[0].rule == "refund-over-hard-limit"


@pytest.mark.parametrize(
    ("edit", "details"),
    [
        ({"amount": "lots"}, "params.amount: must be a number"),
        ({"amount": -5}, "params.amount: must be at least 0"),
        ({"amount": 500, "currency": "EURO"}, "params.currency: must have at most 3 characters"),
    ],
    ids=["type", "minimum", "max-length"],
)
def test_an_edit_that_breaks_the_actions_schema_is_refused_naming_the_field(server, edit, details):
    # policies/refunds.yaml declares refund.*'s params: the edit is what the agent runs.
    review_id = _open(
        server, "refund.issue", {"amount": 750, "currency": "EUR", "card_number": CARD}
    )
    before = _audit(server)
    with pytest.raises(grpc.RpcError) as err:
        _modify(server, review_id, {"currency": "EUR", "card_number": MASK} | edit)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == details
    _assert_untouched(server, review_id, before)
    # Within the schema, the same reviewer's edit is taken.
    done = _modify(server, review_id, {"amount": 500, "currency": "EUR", "card_number": MASK})
    assert done.state == R.REVIEW_STATE_MODIFIED


@pytest.mark.parametrize(
    ("amount", "refusal"),
    [
        (25000, "the policy would deny the edited action (rule {payouts/payout-over-limit})"),
        (6000, "needs review by group 'treasury' (rule {payouts/treasury-payout}), not 'finance'"),
        (3000, "needs 2 approvals (rule {payouts/large-payout}), this review 1"),
    ],
    ids=["deny", "another-group", "more-approvals"],
)
def test_an_edit_beyond_the_reviewers_reach_is_refused_and_nothing_changes(
    payouts, amount, refusal
):
    server = payouts()
    review_id = _open(server, "payout.send", {"amount": 750, "currency": "EUR"})
    message = _refused(server, review_id, {"amount": amount, "currency": "EUR"})
    rule = refusal[refusal.index("{") + 1 : refusal.index("}")]
    assert refusal.replace(f"{{{rule}}}", _where(server, rule)) in message
    if amount != 25000:
        assert "cannot settle it alone: reject the review and let the agent ask again" in message
    # The reviewer can still act on the review as it stands.
    assert _modify(server, review_id, {"amount": 600, "currency": "EUR"}).state == (
        R.REVIEW_STATE_MODIFIED
    )


def test_an_edit_is_checked_by_the_bundle_in_force_not_the_one_that_opened_the_review(payouts):
    server = payouts()
    review_id = _open(server, "payout.send", {"amount": 750, "currency": "EUR"})
    opened = server.running.app.bundle.version
    policy = Path(server.running.app.policies) / "payouts.yaml"
    policy.write_text(policy.read_text().replace("vars.amount > 10000", "vars.amount > 700"))
    loaded, errors = server.call(server.running.app.reload())
    assert (loaded, errors) == (True, [])
    assert server.running.app.bundle.version != opened
    message = _refused(server, review_id, {"amount": 720, "currency": "EUR"})
    assert f"(rule {_where(server, 'payouts/payout-over-limit')})" in message
    _modify(server, review_id, {"amount": 650, "currency": "EUR"})
    recorded = _modified_entry(server, review_id).payload["edit_evaluation"]
    assert recorded["policy_version"] == server.running.app.bundle.version


@pytest.mark.parametrize(
    ("amount", "outcome", "rule", "group", "approvals"),
    [
        (600, "REQUIRE_REVIEW", "refunds/large-refund", "finance", 1),
        (400, "AUTO_ALLOW", "refunds/small-refund", "", 0),
    ],
)
def test_a_good_edit_is_accepted_with_the_reevaluation_audited(
    server, amount, outcome, rule, group, approvals
):
    review_id = _open(
        server, "refund.issue", {"amount": 750, "currency": "EUR", "card_number": CARD}
    )
    edited = {"amount": amount, "currency": "EUR", "card_number": MASK}
    assert _modify(server, review_id, edited).state == R.REVIEW_STATE_MODIFIED
    entry = _modified_entry(server, review_id)
    assert entry.payload["edit_evaluation"] == {
        "outcome": outcome,
        "rule": _where(server, rule),
        "reviewer_group": group,
        "approvals_required": approvals,
        "policy_version": server.running.app.bundle.version,
    }
    # The receipt is for the edited action, with the real card the agent restores.
    with Client(server.target, token="bot") as bot:
        review = bot.get_review(review_id)
    assert review.state is ReviewState.MODIFIED
    key = audit_pb2_grpc.AuditServiceStub(server.channel()).GetCheckpoints(
        pb.audit.GetCheckpointsRequest(), metadata=_md("ann")
    )
    action = {
        "action": "refund.issue",
        "params": {**edited, "card_number": CARD},
        "principal": "bot",
        "resource": {"kind": "account", "id": "acct_9"},
    }
    verified = receipts.verify(review, key.public_key_pem, action)
    assert (verified.outcome, verified.approvers) == ("MODIFIED", ("alice",))


@pytest.mark.parametrize(
    ("decision", "on_error", "refusal"),
    [
        ("deny", "deny", "the policy would deny the edited action (rule {rule} failed to evaluate"),
        ("deny", "review", "needs review by group 'default' (rule {rule} failed to evaluate"),
    ],
)
def test_an_edit_a_rule_cannot_check_on_the_mask_is_refused_by_its_on_error(
    payouts, decision, on_error, refusal
):
    server = payouts(decision, on_error)
    # With the real account number the checksum passes: a finance review.
    review_id = _open(server, "payout.send", {"amount": 750, "currency": "EUR", "account": ACCOUNT})
    assert _get(server, review_id).request.action.params["account"] == MASK
    message = _refused(server, review_id, {"amount": 600, "currency": "EUR", "account": MASK})
    assert refusal.format(rule=_where(server, "payouts/account-checksum")) in message
    assert f"(action.params.account) masked as '{MASK}'" in message


@pytest.mark.parametrize(
    ("decision", "on_error", "deciding"),
    [("review", "review", "payouts/account-checksum"), ("deny", "ignore", "payouts/payout")],
)
def test_an_edit_a_rule_cannot_check_on_the_mask_is_accepted_when_its_on_error_allows(
    payouts, decision, on_error, deciding
):
    # on_error review by the review's own group: this reviewer is the check the author asked
    # for. on_error ignore: the author let the rule be skipped (docs/policies.md: the limit).
    server = payouts(decision, on_error)
    review_id = _open(server, "payout.send", {"amount": 750, "currency": "EUR", "account": ACCOUNT})
    edited = {"amount": 600, "currency": "EUR", "account": MASK}
    assert _modify(server, review_id, edited).state == R.REVIEW_STATE_MODIFIED
    recorded = _modified_entry(server, review_id).payload["edit_evaluation"]
    assert recorded["outcome"] == "REQUIRE_REVIEW"
    assert recorded["rule"] == _where(server, deciding)
    assert recorded["failed_rules"] == [_where(server, "payouts/account-checksum")]


def test_the_console_api_refuses_the_same_edit(server):
    review_id = _open(server, "refund.issue", {"amount": 750, "currency": "EUR"})
    before = _audit(server)
    body = {
        "reviewId": review_id,
        "verdict": "VERDICT_MODIFY",
        "expectedVersion": 1,
        "params": {"amount": 25000, "currency": "EUR"},
    }
    resp = httpx.post(
        f"{server.http_url}/signoff.v1.ReviewService/SubmitReview",
        json=body,
        headers={
            "Content-Type": "application/json",
            "Connect-Protocol-Version": "1",
            "Authorization": "Bearer alice",
        },
        timeout=30,
    )
    assert (resp.status_code, resp.json()["code"]) == (400, "failed_precondition")
    assert f"(rule {_where(server, 'refunds/refund-over-hard-limit')})" in resp.json()["message"]
    _assert_untouched(server, review_id, before)


async def test_the_cli_refuses_the_same_edit(server):
    review_id = _open(server, "refund.issue", {"amount": 750, "currency": "EUR"})
    before = _audit(server)
    edited = json.dumps({"amount": 25000, "currency": "EUR"})
    code, out, err = await _cli(server, "modify", review_id, "--params", edited)
    assert (code, out.count("now MODIFIED")) == (1, 0)
    assert err.startswith("signoff: edit refused: the policy would deny the edited action")
    assert _where(server, "refunds/refund-over-hard-limit") in err
    _assert_untouched(server, review_id, before)


def test_a_desk_without_a_bundle_to_check_edits_refuses_them(server):
    # ReviewDesk fails closed: built without the application's re-evaluation, no edit passes.
    server.running.app.reviews.evaluate_edit = None
    review_id = _open(server, "refund.issue", {"amount": 750, "currency": "EUR"})
    message = _refused(server, review_id, {"amount": 600, "currency": "EUR"})
    assert message == "edits are refused: no policy bundle to check them against"
