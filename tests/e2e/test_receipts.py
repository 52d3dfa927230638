"""Signed receipts against a real server: who gets one, and that it verifies offline.

Dev-mode identities (the token names the caller, with every role): the agent is "bot",
the reviewer "alice". The example policies allow refunds up to 500, send larger ones to
review (with `card_number` redacted) and deny above 10,000.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import pytest

from signoff import pb
from signoff_client import Client, Outcome, ReviewState, Verdict, receipts
from signoff_client._gen import audit_pb2_grpc

from .conftest import ServerHandle

CARD = "4111 1111 1111 1111"
RESOURCE = {"kind": "account", "id": "acct_9"}


def _action(amount: float, **params: Any) -> dict[str, Any]:
    return {
        "action": "refund.issue",
        "params": {"amount": amount, "currency": "EUR", "card_number": CARD, **params},
        "principal": "bot",
        "resource": RESOURCE,
    }


def _public_key(server: ServerHandle) -> str:
    stub = audit_pb2_grpc.AuditServiceStub(server.channel())
    resp = stub.GetCheckpoints(
        pb.audit.GetCheckpointsRequest(), metadata=(("authorization", "Bearer ann"),)
    )
    return resp.public_key_pem


def _evaluate(server: ServerHandle, amount: float) -> Any:
    with Client(server.target, token="bot") as bot:
        return bot.evaluate(**_action(amount))


def _resolve(server: ServerHandle, verdict: Verdict, **params: Any) -> Any:
    """Open a review for a 750 refund and have alice act on it; return (action, review)."""
    decision = _evaluate(server, 750)
    assert decision.outcome is Outcome.REQUIRE_REVIEW
    assert decision.receipt is None
    with Client(server.target, token="alice") as alice:
        review = alice.get_review(decision.review_id)
        assert review.receipt is None  # pending
        edited = {**review.params, **params} if params else None
        after = alice.submit_review(
            decision.review_id, verdict, expected_version=review.version, params=edited
        )
        return after, alice.get_review(decision.review_id)


def test_auto_allow_carries_a_receipt_that_verifies_with_the_checkpoint_key(server):
    decision = _evaluate(server, 120)
    assert decision.allowed
    v = receipts.verify(decision.receipt, _public_key(server), _action(120))
    assert v.decision_id == decision.decision_id
    assert (v.outcome, v.review_id, v.approvers) == ("AUTO_ALLOW", "", ())
    assert v.issued_at == decision.evaluated_at
    assert v.expires_at - v.issued_at == dt.timedelta(minutes=15)
    assert v.key_id == decision.receipt.key_id == server.running.app.receipts.key_id


def test_a_receipt_for_another_action_is_refused(server):
    decision = _evaluate(server, 120)
    key = _public_key(server)
    with pytest.raises(receipts.WrongAction):
        receipts.verify(decision.receipt, key, _action(130))
    with pytest.raises(receipts.WrongAction):
        receipts.verify(decision.receipt, key, {**_action(120), "principal": "other-bot"})


def test_flipped_bytes_in_payload_or_signature_are_refused(server):
    receipt = _evaluate(server, 120).receipt
    key = _public_key(server)
    for field in ("payload", "signature"):
        tampered = pb.common.Receipt()
        tampered.CopyFrom(receipt)
        data = bytearray(getattr(receipt, field))
        data[len(data) // 2] ^= 0x01
        setattr(tampered, field, bytes(data))
        with pytest.raises(receipts.BadSignature):
            receipts.verify(tampered, key, _action(120))


def test_an_expired_receipt_is_refused(server):
    decision = _evaluate(server, 120)
    key = _public_key(server)
    v = receipts.verify(decision.receipt, key, _action(120))
    late = v.expires_at + receipts.DEFAULT_LEEWAY + dt.timedelta(seconds=1)
    with pytest.raises(receipts.ReceiptExpired):
        receipts.verify(decision.receipt, key, _action(120), now=late)
    early = v.issued_at - dt.timedelta(minutes=5)
    with pytest.raises(receipts.ReceiptNotYetValid):
        receipts.verify(decision.receipt, key, _action(120), now=early)


def test_a_replayed_decision_returns_the_same_receipt(server):
    with Client(server.target, token="bot") as bot:
        first = bot.evaluate(**_action(120), request_id="r-1")
        again = bot.evaluate(**_action(120), request_id="r-1")
    assert again.replayed
    assert again.receipt == first.receipt


def test_an_auto_allow_receipt_is_version_2_and_its_replay_keeps_it(server):
    with Client(server.target, token="bot") as bot:
        first = bot.evaluate(**_action(121), request_id="r-v2")
        again = bot.evaluate(**_action(121), request_id="r-v2")
    assert json.loads(first.receipt.payload)["v"] == 2
    assert first.receipt.tree_size >= 1
    assert again.receipt.SerializeToString() == first.receipt.SerializeToString()
    receipts.verify(again.receipt, _public_key(server), _action(121))


def test_an_evaluate_batch_shares_one_signature_each_receipt_for_its_own_action(server):
    amounts = [101, 102, 103, 104, 105]
    with Client(server.target, token="bot") as bot:
        decisions = bot.evaluate_batch([_action(a) for a in amounts])
    rs = [d.receipt for d in decisions]
    # The batch's decisions all reach the writer before it takes a batch (nothing in
    # `_decide` awaits before the write): one tree, one signature.
    assert len({r.signature for r in rs}) == 1
    assert sorted(r.leaf_index for r in rs) == [0, 1, 2, 3, 4]
    assert {r.tree_size for r in rs} == {5}
    key = _public_key(server)
    for n, (amount, d) in enumerate(zip(amounts, decisions, strict=True)):
        assert receipts.verify(d.receipt, key, _action(amount)).decision_id == d.decision_id
        with pytest.raises(receipts.WrongAction):
            receipts.verify(d.receipt, key, _action(amounts[(n + 1) % 5]))
    # Another leaf's statement on this leaf's path is no receipt.
    swapped = pb.common.Receipt()
    swapped.CopyFrom(rs[0])
    swapped.payload = rs[1].payload
    with pytest.raises(receipts.BadSignature):
        receipts.verify(swapped, key, _action(amounts[1]))


def test_deny_has_no_receipt(server):
    decision = _evaluate(server, 25_000)
    assert decision.denied
    assert decision.receipt is None
    with pytest.raises(receipts.MalformedReceipt):
        receipts.verify(decision, _public_key(server), _action(25_000))


def test_an_approved_review_carries_a_receipt_naming_its_approver(server):
    submitted, read = _resolve(server, Verdict.APPROVE)
    assert read.state is ReviewState.APPROVED
    assert submitted.receipt == read.receipt  # signed on read, deterministically
    v = receipts.verify(read, _public_key(server), _action(750))
    assert (v.outcome, v.approvers, v.review_id) == ("APPROVED", ("alice",), read.review_id)
    assert v.action_digest == read.final_digest
    assert v.redacted_paths == ("action.params.card_number",)
    assert v.issued_at == read.resolved_at


def test_a_modified_review_receipt_is_for_the_edited_action_only(server):
    _, read = _resolve(server, Verdict.MODIFY, amount=500)
    assert read.state is ReviewState.MODIFIED
    key = _public_key(server)
    v = receipts.verify(read.receipt, key, _action(500))
    assert v.outcome == "MODIFIED"
    with pytest.raises(receipts.WrongAction):
        receipts.verify(read.receipt, key, _action(750))


def test_rejected_and_cancelled_reviews_have_no_receipt(server):
    _, read = _resolve(server, Verdict.REJECT)
    assert read.state is ReviewState.REJECTED
    assert read.receipt is None
    decision = _evaluate(server, 800)
    with Client(server.target, token="bot") as bot:
        cancelled = bot.cancel_review(decision.review_id, "not needed")
    assert cancelled.receipt is None


def test_a_receipt_does_not_verify_with_another_key(server, make_server, tmp_path):
    receipt = _evaluate(server, 120).receipt
    # The servers of one test share a state directory, so a key: this one gets its own.
    other = make_server(backend="sqlite", state_dir=tmp_path / "other-state")
    with pytest.raises(receipts.UnknownKey):
        receipts.verify(receipt, _public_key(other), _action(120))


def test_receipts_can_be_turned_off(make_server):
    server = make_server(receipts={"enabled": False})
    assert _evaluate(server, 120).receipt is None


def test_the_ttl_setting_sets_the_expiry(make_server):
    server = make_server(receipts={"ttl": "PT2M"})
    v = receipts.verify(_evaluate(server, 120).receipt, _public_key(server), _action(120))
    assert v.expires_at - v.issued_at == dt.timedelta(minutes=2)
    assert dataclasses.asdict(v)["outcome"] == "AUTO_ALLOW"


def test_the_readme_sample_verifies_serialized_bytes_with_the_saved_pem(server, tmp_path):
    """docs/auditors.md's receipts sample: the agent sends the bytes, the executor has the PEM."""
    with Client(server.target, token="bot") as bot:
        approval = bot.require(**_action(120))
    pub = tmp_path / "signoff.pub"
    pub.write_text(_public_key(server))
    sent = approval.receipt.SerializeToString()
    verified = receipts.verify(sent, pub.read_text(), _action(120))
    assert verified.decision_id == approval.decision.decision_id
    with pytest.raises(receipts.MalformedReceipt, match="serialized"):
        receipts.verify(b"\xff" + sent, pub.read_text(), _action(120))


def test_require_exposes_the_review_receipt_once_approved(server):
    with Client(server.target, token="bot") as bot:
        decision = bot.evaluate(**_action(760), request_id="r-760")
    with Client(server.target, token="alice") as alice:
        review = alice.get_review(decision.review_id)
        alice.submit_review(review.review_id, Verdict.APPROVE, expected_version=review.version)
    with Client(server.target, token="bot") as bot:
        approval = bot.require(**_action(760), request_id="r-760")  # resumes the same review
    assert approval.review is not None
    v = receipts.verify(approval, _public_key(server), _action(760))
    assert (v.review_id, v.approvers) == (decision.review_id, ("alice",))


def test_an_auto_allow_receipt_binds_redacted_values_too(server):
    # The executor checks the receipt against what it is about to run: a receipt for one
    # card must not pass for another, although the policy masks card_number in the log.
    decision = _evaluate(server, 120)
    v = receipts.verify(decision.receipt, _public_key(server), _action(120))
    assert v.redacted_paths == ()
    with pytest.raises(receipts.WrongAction):
        receipts.verify(decision.receipt, _public_key(server), _action(120, card_number="5500"))
