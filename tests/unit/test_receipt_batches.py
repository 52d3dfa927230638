"""Version 2 receipts: one signature per write batch over a Merkle tree of the receipts,
built by `signoff.app.receipts` (`signoff.core.merkle`), checked by `signoff_client`."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff import pb
from signoff.app.receipts import ReceiptIssuer, batch_document
from signoff.core import merkle
from signoff_client import receipts
from signoff_client.canonical import action_digest, canonical_json
from signoff_client.merkle import BadPath, root_from_path

T0 = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
PRINCIPAL = {"id": "bot"}


def _action(n: int) -> dict:
    return {"action": "db.migrate", "params": {"version": n}, "principal": "bot"}


def _leaf(issuer: ReceiptIssuer, n: int) -> bytes:
    return issuer.document(
        version=2,
        decision_id=f"d{n}",
        review_id="",
        digest=action_digest("db.migrate", {"version": n}, PRINCIPAL),
        redacted_paths=[],
        outcome="AUTO_ALLOW",
        approvers=[],
        issued_at=T0,
    )


def _batch(key: Ed25519PrivateKey, size: int) -> list[pb.common.Receipt]:
    issuer = ReceiptIssuer(key, dt.timedelta(minutes=15))
    sealed = issuer.seal([_leaf(issuer, n) for n in range(size)])
    return [pb.common.Decision.FromString(s).receipt for s in sealed]


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_tree_hashes_as_rfc_9162_spells_them_out():
    a, b, c = b"a", b"b", b"c"
    la, lb, lc = _h(b"\0a"), _h(b"\0b"), _h(b"\0c")
    assert merkle.tree([a]) == (la, [[]])
    assert merkle.tree([a, b]) == (_h(b"\1" + la + lb), [[lb], [la]])
    ab = _h(b"\1" + la + lb)
    # Three leaves: the split is at 2 (the largest power of two below 3), c is promoted.
    assert merkle.tree([a, b, c]) == (_h(b"\1" + ab + lc), [[lb, lc], [la, lc], [ab]])


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 64])
def test_every_path_leads_to_the_root_and_only_from_its_own_index(size):
    payloads = [f"leaf {i}".encode() for i in range(size)]
    root, paths = merkle.tree(payloads)
    for i, (payload, path) in enumerate(zip(payloads, paths, strict=True)):
        assert root_from_path(payload, i, size, path) == root
        for j in range(size):
            if j != i:
                with contextlib.suppress(BadPath):  # a path of another length may not fit
                    assert root_from_path(payload, j, size, path) != root


@pytest.mark.parametrize("size", [1, 2, 3, 8, 64])
def test_each_receipt_of_a_batch_verifies_for_its_own_action_offline(key, size):
    batch = _batch(key, size)
    assert len({bytes(r.signature) for r in batch}) == 1  # signed once
    for n, r in enumerate(batch):
        assert (r.leaf_index, r.tree_size) == (n, size)
        v = receipts.verify(r, key.public_key(), _action(n), now=T0)
        assert (v.decision_id, v.outcome) == (f"d{n}", "AUTO_ALLOW")
        # Through its bytes, as an agent passes it along.
        receipts.verify(r.SerializeToString(), key.public_key(), _action(n), now=T0)
    if size > 1:
        with pytest.raises(receipts.WrongAction):
            receipts.verify(batch[0], key.public_key(), _action(1), now=T0)


def _tampered(r: pb.common.Receipt, **changes: object) -> pb.common.Receipt:
    out = pb.common.Receipt()
    out.CopyFrom(r)
    for name, value in changes.items():
        if name == "path":
            del out.path[:]
            out.path.extend(value)  # type: ignore[arg-type]
        else:
            setattr(out, name, value)
    return out


def test_a_receipt_is_not_valid_for_another_leaf_index_size_or_path(key):
    batch = _batch(key, 5)
    pub = key.public_key()
    r0, r1, r4 = batch[0], batch[1], batch[4]
    swaps = [
        _tampered(r0, payload=r1.payload),  # another leaf's statement on my path
        _tampered(r1, path=list(r0.path)),  # another leaf's path
        _tampered(r0, leaf_index=1),
        _tampered(r0, leaf_index=4),
        _tampered(r4, leaf_index=0),
        _tampered(r0, tree_size=4),  # a path that also fits a tree of 4 or 6
        _tampered(r0, tree_size=6),
        _tampered(r0, tree_size=8),
        _tampered(r0, path=list(r0.path)[:-1]),
        _tampered(r0, path=[*r0.path, r1.path[0]]),
        _tampered(r0, path=[bytes(32), *list(r0.path)[1:]]),
        _tampered(r0, leaf_index=7),  # beyond the size
    ]
    for bad in swaps:
        with pytest.raises(receipts.BadSignature):
            receipts.verify(bad, pub, _action(0), now=T0)
        with pytest.raises((receipts.BadSignature, receipts.WrongAction)):
            receipts.verify(bad, pub, _action(1), now=T0)


def test_versions_cannot_pass_for_each_other(key):
    pub = key.public_key()
    issuer = ReceiptIssuer(key, dt.timedelta(minutes=15))
    leaf = _leaf(issuer, 0)
    # A version 2 statement signed alone (version 1's form) is refused.
    alone = pb.common.Receipt(payload=leaf, signature=key.sign(leaf), key_id=issuer.key_id)
    with pytest.raises(receipts.MalformedReceipt):
        receipts.verify(alone, pub, _action(0), now=T0)
    # A version 1 statement as a leaf of a signed tree is refused.
    v1 = issuer.sign(
        decision_id="d0",
        review_id="",
        digest=action_digest("db.migrate", {"version": 0}, PRINCIPAL),
        redacted_paths=[],
        outcome="AUTO_ALLOW",
        approvers=[],
        issued_at=T0,
    )
    in_tree = pb.common.Decision.FromString(issuer.seal([bytes(v1.payload)])[0]).receipt
    with pytest.raises(receipts.MalformedReceipt):
        receipts.verify(in_tree, pub, _action(0), now=T0)
    # A batch's root document, with its signature, is no receipt: its type is its own.
    r = _batch(key, 1)[0]
    doc = batch_document(1, merkle.leaf_hash(r.payload), issuer.key_id)
    assert json.loads(doc)["type"] == "signoff.receipt.batch"
    assert key.sign(doc) == r.signature  # what the signature covers, exactly
    as_v1 = pb.common.Receipt(payload=doc, signature=r.signature, key_id=issuer.key_id)
    with pytest.raises(receipts.MalformedReceipt):
        receipts.verify(as_v1, pub, _action(0), now=T0)
    # A path without a tree size is malformed, not silently read as version 1.
    with pytest.raises(receipts.MalformedReceipt):
        receipts.verify(_tampered(_batch(key, 2)[0], tree_size=0), pub, _action(0), now=T0)


def test_the_root_document_is_canonical_and_names_size_and_key(key):
    issuer = ReceiptIssuer(key, dt.timedelta(minutes=15))
    doc = batch_document(3, b"\x01" * 32, issuer.key_id)
    parsed = json.loads(doc)
    assert doc == canonical_json(parsed).encode()
    assert parsed == {
        "v": 2,
        "type": "signoff.receipt.batch",
        "tree_size": 3,
        "root": "01" * 32,
        "key_id": issuer.key_id,
    }


def test_a_batch_is_refused_by_a_verifier_with_another_key(key):
    r = _batch(key, 3)[1]
    with pytest.raises(receipts.UnknownKey):
        receipts.verify(r, Ed25519PrivateKey.generate().public_key(), _action(1), now=T0)
