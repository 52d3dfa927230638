"""Verify a signed receipt offline: exactly this action was allowed, and not too long ago.

    from signoff_client import receipts

    verified = receipts.verify(receipt, public_key_pem, {"action": "refund.issue",
        "params": {"amount": 750}, "principal": "support-bot-7"})

The service that finally executes an action checks the receipt the agent passes along,
with the server's public key (`GetCheckpoints`, `signoff audit checkpoints`), without
calling the server. Version 1 receipts are signed one by one; version 2 receipts are
leaves of a Merkle tree whose root the server signed once for a write batch: the receipt
carries its inclusion path, and verifying it is as offline as version 1 (the root is
recomputed from the path, RFC 9162 2.1.3.2, and the signature checked over the batch's root
document). The contract is in the server's `signoff.app.receipts`. Needs the
`cryptography` package: the `receipts` extra,
``pip install './clients/python[receipts]'`` from a checkout.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.protobuf.message import DecodeError

from signoff_client import _masking, _struct, merkle
from signoff_client._approval import _echoed
from signoff_client._extras import install_hint
from signoff_client._gen import common_pb2
from signoff_client._request import as_request, to_proto
from signoff_client.canonical import action_digests, canonical_json
from signoff_client.models import Request

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "BadSignature",
    "MalformedReceipt",
    "ReceiptError",
    "ReceiptExpired",
    "ReceiptNotYetValid",
    "UnknownKey",
    "VerifiedReceipt",
    "WrongAction",
    "check_action",
    "read",
    "verify",
]

RECEIPT_VERSION = 1
BATCH_VERSION = 2  # a leaf of a batch's Merkle tree, the root signed
RECEIPT_TYPE = "signoff.receipt"
BATCH_TYPE = "signoff.receipt.batch"
DEFAULT_LEEWAY = dt.timedelta(seconds=30)


class ReceiptError(Exception):
    """The receipt does not prove that this action may execute now; never execute it."""


class MalformedReceipt(ReceiptError):
    """Missing, not a receipt, or of a version this client does not know."""


class UnknownKey(ReceiptError):
    """Signed (so it says) by another key than the one given."""


class BadSignature(ReceiptError):
    """The signature does not match the payload: altered, or not from this server."""


class WrongAction(ReceiptError):
    """The receipt is for another action (its digest differs from this action's)."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"receipt is for action digest {expected}, this action is {actual}")
        self.expected = expected
        self.actual = actual


class ReceiptExpired(ReceiptError):
    """The receipt's `expires_at` (plus leeway) has passed."""


class ReceiptNotYetValid(ReceiptError):
    """The receipt's `issued_at` is in the future (beyond leeway): a clock is wrong."""


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    """What a valid receipt states."""

    decision_id: str
    review_id: str  # "" for an AUTO_ALLOW decision
    action_digest: str
    redacted_paths: tuple[str, ...]  # masked in the digested action (the policy's redact)
    outcome: str  # "AUTO_ALLOW", "APPROVED" or "MODIFIED"
    approvers: tuple[str, ...]
    issued_at: dt.datetime
    expires_at: dt.datetime
    key_id: str


def verify(
    receipt: common_pb2.Receipt | Any,
    public_key: Ed25519PublicKey | bytes | str,
    action: Request | Mapping[str, Any],
    *,
    now: dt.datetime | None = None,
    leeway: dt.timedelta = DEFAULT_LEEWAY,
) -> VerifiedReceipt:
    """Return what `receipt` states if it is valid for `action` now; raise ReceiptError if not.

    `receipt` is a `Receipt` message, its serialized bytes, or anything with one in
    `.receipt` (a Decision, a Review, an Approval). `public_key` is the server's Ed25519
    key: PEM (str or bytes), the 32 raw bytes, or an `Ed25519PublicKey`. `action` is what
    is about to execute, as `evaluate` takes it: a `Request` or a mapping with "action",
    "params", "principal", "resource" (the principal and resource as the agent sent them).
    """
    verified = read(receipt, public_key)
    check_action(verified, action)
    at = now or dt.datetime.now(dt.UTC)
    if at.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if at < verified.issued_at - leeway:
        raise ReceiptNotYetValid(f"receipt issued at {verified.issued_at}, it is now {at}")
    if at > verified.expires_at + leeway:
        raise ReceiptExpired(f"receipt expired at {verified.expires_at}, it is now {at}")
    return verified


def read(receipt: common_pb2.Receipt | Any, public_key: Any) -> VerifiedReceipt:
    """Return what `receipt` states if `public_key` signed it, whatever the action and the
    time (`verify` checks those too); raise ReceiptError if not."""
    raw = _receipt_of(receipt)
    key = _load_key(public_key)
    kid = key_id(key)
    if raw.key_id != kid:
        raise UnknownKey(f"receipt key_id {raw.key_id!r} is not the given key's {kid!r}")
    from cryptography.exceptions import InvalidSignature

    # The version is read from the message's tree fields, then required of the payload
    # (`_parse`): a payload signed alone is never taken for a leaf, nor a leaf for one.
    version = BATCH_VERSION if raw.tree_size else RECEIPT_VERSION
    try:
        key.verify(raw.signature, _signed_bytes(raw, kid))
    except InvalidSignature:
        raise BadSignature("receipt signature does not match its payload") from None
    return _parse(raw.payload, kid, version)


def check_action(verified: VerifiedReceipt, action: Request | Mapping[str, Any]) -> None:
    """Raise WrongAction unless `verified` allows exactly `action` (as `verify` takes it)."""
    digests = _digests_of(action, verified.redacted_paths)
    # The second digest, if any, is the pre-0.2.0 number form a receipt signed then carries.
    if verified.action_digest not in digests:
        raise WrongAction(verified.action_digest, digests[0])


def key_id(key: Ed25519PublicKey) -> str:
    """First 16 hex characters of SHA-256 of the raw public key (names the key)."""
    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _signed_bytes(raw: common_pb2.Receipt, kid: str) -> bytes:
    """What the signature must cover: the payload (version 1), or the root document of the
    batch the payload's path leads to (version 2)."""
    if not raw.tree_size:
        if raw.path or raw.leaf_index:
            raise MalformedReceipt("receipt has a path but no tree size")
        return bytes(raw.payload)
    try:
        root = merkle.root_from_path(raw.payload, raw.leaf_index, raw.tree_size, raw.path)
    except merkle.BadPath as exc:
        raise BadSignature(f"receipt inclusion path: {exc}") from None
    doc = {
        "v": BATCH_VERSION,
        "type": BATCH_TYPE,
        "tree_size": raw.tree_size,
        "root": root.hex(),
        "key_id": kid,
    }
    return canonical_json(doc).encode("utf-8")


def _receipt_of(value: Any) -> common_pb2.Receipt:
    if isinstance(value, bytes | bytearray):
        try:
            value = common_pb2.Receipt.FromString(bytes(value))
        except DecodeError:
            raise MalformedReceipt("receipt bytes are not a serialized Receipt") from None
    if not isinstance(value, common_pb2.Receipt):
        value = getattr(value, "receipt", None)
    if not isinstance(value, common_pb2.Receipt) or not value.payload:
        raise MalformedReceipt("no receipt: only AUTO_ALLOW and approved reviews carry one")
    return value


def _load_key(value: Any) -> Ed25519PublicKey:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        raise ImportError(
            "verifying receipts needs the cryptography package: "
            + install_hint("signoff-client", "receipts")
        ) from None
    if isinstance(value, Ed25519PublicKey):
        return value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes) and len(value) == 32:
        return Ed25519PublicKey.from_public_bytes(value)
    if isinstance(value, bytes) and value.lstrip().startswith(b"-----BEGIN"):
        key = serialization.load_pem_public_key(value)
        if isinstance(key, Ed25519PublicKey):
            return key
    raise TypeError("public_key: expected an Ed25519 public key (PEM, 32 raw bytes or object)")


def _parse(payload: bytes, kid: str, version: int) -> VerifiedReceipt:
    try:
        doc = json.loads(payload)
        if doc.get("v") != version or doc.get("type") != RECEIPT_TYPE:
            raise MalformedReceipt(
                f"receipt version {doc.get('v')!r} type {doc.get('type')!r} is not "
                f"{version} {RECEIPT_TYPE!r}"
            )
        if doc["key_id"] != kid:
            raise UnknownKey(f"receipt payload key_id {doc['key_id']!r} is not {kid!r}")
        return VerifiedReceipt(
            decision_id=str(doc["decision_id"]),
            review_id=str(doc["review_id"]),
            action_digest=str(doc["action_digest"]),
            redacted_paths=tuple(str(p) for p in doc["redacted_paths"]),
            outcome=str(doc["outcome"]),
            approvers=tuple(str(a) for a in doc["approvers"]),
            issued_at=_time(doc["issued_at"]),
            expires_at=_time(doc["expires_at"]),
            key_id=kid,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MalformedReceipt(f"receipt payload: {exc}") from None


def _time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def _digests_of(
    action: Request | Mapping[str, Any], redacted_paths: tuple[str, ...]
) -> tuple[str, ...]:
    """The action digests of `action` as a server computed it (redacted params masked)."""
    req = to_proto(as_request(action, "action"), with_id=False)
    principal, resource = _echoed(req)
    params = _struct.from_struct(req.action.params) if req.action.HasField("params") else None
    return action_digests(
        req.action.name, _masking.mask(params, redacted_paths), principal, resource
    )
