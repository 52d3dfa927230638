"""Receipts signed by `signoff.app.receipts` and checked by `signoff_client.receipts.verify`."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff import pb
from signoff.app.receipts import ReceiptIssuer
from signoff.core.jsonify import request_view
from signoff_client import receipts
from signoff_client.canonical import (
    action_digest,
    canonical_json,
    digest_document,
    legacy_canonical_json,
)

T0 = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
ACTION = {"action": "db.migrate", "params": {"version": 42}, "principal": "bot"}
PRINCIPAL = {"id": "bot"}
DIGEST = action_digest("db.migrate", {"version": 42}, PRINCIPAL)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _receipt(key: Ed25519PrivateKey, **kw: object) -> pb.common.Receipt:
    args: dict = {
        "decision_id": "d1",
        "review_id": "",
        "digest": DIGEST,
        "redacted_paths": [],
        "outcome": "AUTO_ALLOW",
        "approvers": [],
        "issued_at": T0,
    }
    return ReceiptIssuer(key, dt.timedelta(minutes=15)).sign(**{**args, **kw})


def _resigned(key: Ed25519PrivateKey, receipt: pb.common.Receipt, **changes: object):
    """The receipt with payload members changed, validly signed again."""
    doc = {**json.loads(receipt.payload), **changes}
    payload = canonical_json(doc).encode()
    return pb.common.Receipt(payload=payload, signature=key.sign(payload), key_id=receipt.key_id)


def test_payload_is_canonical_json_with_every_member(key):
    r = _receipt(key)
    doc = json.loads(r.payload)
    assert r.payload == canonical_json(doc).encode()
    assert doc["v"] == 1
    assert doc["type"] == "signoff.receipt"
    assert doc["issued_at"] == "2026-05-01T12:00:00.000000Z"
    assert doc["expires_at"] == "2026-05-01T12:15:00.000000Z"
    assert doc["key_id"] == r.key_id
    assert len(r.signature) == 64


@pytest.mark.parametrize(
    "public",
    [
        lambda k: k.public_key(),
        lambda k: k.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        ),
        lambda k: (
            k.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        ),
    ],
    ids=["object", "raw", "pem"],
)
def test_verifies_with_every_key_form(key, public):
    v = receipts.verify(_receipt(key), public(key), ACTION, now=T0)
    assert (v.decision_id, v.action_digest, v.expires_at) == (
        "d1",
        DIGEST,
        T0 + dt.timedelta(minutes=15),
    )


def test_a_public_key_of_another_kind_is_a_type_error(key):
    with pytest.raises(TypeError, match="public_key"):
        receipts.verify(_receipt(key), b"not a key", ACTION, now=T0)


def test_time_window_with_leeway(key):
    r, pub = _receipt(key), key.public_key()
    end = T0 + dt.timedelta(minutes=15)
    receipts.verify(r, pub, ACTION, now=end + receipts.DEFAULT_LEEWAY)
    with pytest.raises(receipts.ReceiptExpired):
        receipts.verify(
            r, pub, ACTION, now=end + receipts.DEFAULT_LEEWAY + dt.timedelta(microseconds=1)
        )
    with pytest.raises(receipts.ReceiptExpired):
        receipts.verify(r, pub, ACTION, now=end + dt.timedelta(seconds=1), leeway=dt.timedelta(0))
    with pytest.raises(receipts.ReceiptNotYetValid):
        receipts.verify(r, pub, ACTION, now=T0 - dt.timedelta(minutes=1))
    with pytest.raises(ValueError, match="timezone"):
        receipts.verify(r, pub, ACTION, now=T0.replace(tzinfo=None))


def test_another_action_is_refused_naming_both_digests(key):
    with pytest.raises(receipts.WrongAction) as err:
        receipts.verify(
            _receipt(key), key.public_key(), {**ACTION, "params": {"version": 43}}, now=T0
        )
    assert err.value.expected == DIGEST
    assert DIGEST in str(err.value)


def test_redacted_params_are_masked_before_digesting(key):
    masked = action_digest("db.migrate", {"version": 42, "dsn": "[REDACTED]"}, PRINCIPAL)
    r = _receipt(key, digest=masked, redacted_paths=["action.params.dsn"])
    action = {**ACTION, "params": {"version": 42, "dsn": "postgres://secret"}}
    assert receipts.verify(r, key.public_key(), action, now=T0).redacted_paths == (
        "action.params.dsn",
    )


def test_another_key_is_refused(key):
    with pytest.raises(receipts.UnknownKey):
        receipts.verify(_receipt(key), Ed25519PrivateKey.generate().public_key(), ACTION, now=T0)


def test_a_signature_by_another_key_under_this_key_id_is_refused(key):
    forged = _resigned(Ed25519PrivateKey.generate(), _receipt(key))
    with pytest.raises(receipts.BadSignature):
        receipts.verify(forged, key.public_key(), ACTION, now=T0)


@pytest.mark.parametrize(
    "changes",
    [{"v": 2}, {"type": "signoff.checkpoint"}, {"issued_at": "yesterday"}, {"key_id": "0" * 16}],
    ids=["version", "type", "time", "inner-key-id"],
)
def test_unknown_version_type_or_malformed_member_is_refused(key, changes):
    bad = _resigned(key, _receipt(key), **changes)
    with pytest.raises((receipts.MalformedReceipt, receipts.UnknownKey)):
        receipts.verify(bad, key.public_key(), ACTION, now=T0)


def test_no_receipt_is_refused(key):
    with pytest.raises(receipts.MalformedReceipt, match="no receipt"):
        receipts.verify(pb.common.Receipt(), key.public_key(), ACTION, now=T0)
    with pytest.raises(receipts.MalformedReceipt):
        receipts.verify(None, key.public_key(), ACTION, now=T0)


def test_only_auto_allow_decisions_get_one(key):
    issuer = ReceiptIssuer(key, dt.timedelta(minutes=1))
    view = request_view(pb.common.ActionRequest(action=pb.common.Action(name="x")), ())
    for outcome in (pb.common.OUTCOME_DENY, pb.common.OUTCOME_REQUIRE_REVIEW):
        assert issuer.decision_leaf(view, pb.common.Decision(outcome=outcome)) == b""
    allowed = pb.common.Decision(outcome=pb.common.OUTCOME_AUTO_ALLOW, decision_id="d")
    assert json.loads(issuer.decision_leaf(view, allowed))["v"] == 2


def test_only_approved_or_modified_reviews_get_one(key):
    issuer = ReceiptIssuer(key, dt.timedelta(minutes=1))
    S = pb.review
    for state in (S.REVIEW_STATE_PENDING, S.REVIEW_STATE_REJECTED, S.REVIEW_STATE_EXPIRED):
        r = S.Review(state=state, outcome=pb.common.OUTCOME_AUTO_ALLOW, final_digest=DIGEST)
        assert not issuer.for_review(r).HasField("receipt")
    approved = S.Review(
        state=S.REVIEW_STATE_APPROVED, outcome=pb.common.OUTCOME_AUTO_ALLOW, final_digest=DIGEST
    )
    assert issuer.for_review(approved).HasField("receipt")
    assert not approved.HasField("receipt")  # the caller's message is left alone


def test_a_receipt_signed_by_a_pre_0_2_server_still_verifies(key):
    # Before 0.2.0 the server wrote 2.0**60 as 1152921504606846976 in the digested document;
    # a receipt it signed carries that digest, and stays good for exactly that action.
    big = {"version": 2.0**60}
    old_text = legacy_canonical_json(digest_document("db.migrate", big, PRINCIPAL))
    assert old_text is not None
    assert '"version":1152921504606846976' in old_text
    old_digest = hashlib.sha256(old_text.encode()).hexdigest()
    assert old_digest != action_digest("db.migrate", big, PRINCIPAL)
    receipt = _receipt(key, digest=old_digest)
    action = {**ACTION, "params": big}
    assert receipts.verify(receipt, key.public_key(), action, now=T0).action_digest == old_digest
    for other in ({"version": 2.0**61}, {"version": 42}):
        with pytest.raises(receipts.WrongAction):
            receipts.verify(receipt, key.public_key(), {**ACTION, "params": other}, now=T0)
