"""Check the audit log's proofs offline: signed tree heads, inclusion, consistency.

Nothing here trusts the server. A version 2 checkpoint (GetCheckpoints) signs the head of
the log's Merkle tree, (tree_size, root_hash), with the server's Ed25519 key; given that
key, `verify_checkpoint` checks the signature over the documented bytes (see
service/signoff/core/checkpoints.py). `verify_inclusion` then checks that a
GetInclusionProof answer puts its entry in the log that checkpoint signed, and
`verify_consistency` that the log one checkpoint signed is a prefix of the log a later one
signed -- the check a witness makes before it co-signs. Only the wire and, for signatures,
the `cryptography` package (the `receipts` extra) are needed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from typing import Any

from signoff_client import merkle
from signoff_client._gen import audit_pb2
from signoff_client.canonical import canonical_json
from signoff_client.merkle import BadPath
from signoff_client.receipts import _load_key, key_id

CHECKPOINT_TYPE = "signoff.checkpoint"


class ProofError(ValueError):
    """A checkpoint, an inclusion or a consistency proof does not verify; says why."""


def checkpoint_bytes(cp: audit_pb2.Checkpoint) -> bytes:
    """The bytes a checkpoint's signature covers: version 2 if it carries a root hash."""
    time = cp.time.ToDatetime(tzinfo=dt.UTC).isoformat(timespec="microseconds")[:-6] + "Z"
    doc: dict[str, Any] = {
        "v": 1,
        "type": CHECKPOINT_TYPE,
        "seq": cp.seq,
        "head_hash": cp.head_hash,
        "time": time,
        "key_id": cp.key_id,
    }
    if cp.root_hash:
        doc.update(v=2, tree_size=cp.tree_size, root_hash=cp.root_hash)
    return canonical_json(doc).encode("utf-8")


def verify_checkpoint(cp: audit_pb2.Checkpoint, public_key: Any, *, tree: bool = True) -> None:
    """Raise ProofError unless `public_key` (PEM, 32 raw bytes or an Ed25519PublicKey)
    signed `cp` -- and, if `tree`, unless `cp` signs a tree head (version 2)."""
    key = _load_key(public_key)
    from cryptography.exceptions import InvalidSignature

    if cp.key_id != key_id(key):
        raise ProofError(f"checkpoint at seq {cp.seq} is signed by key {cp.key_id!r}, not this key")
    if tree and not cp.root_hash:
        raise ProofError(f"checkpoint at seq {cp.seq} signs no tree head (version 1)")
    if cp.root_hash and cp.tree_size != cp.seq:
        raise ProofError(f"checkpoint at seq {cp.seq} signs a tree of {cp.tree_size} entries")
    try:
        key.verify(base64.b64decode(cp.signature, validate=True), checkpoint_bytes(cp))
    except (InvalidSignature, ValueError):
        raise ProofError(f"checkpoint at seq {cp.seq}: the signature does not verify") from None


def _root(cp: audit_pb2.Checkpoint) -> bytes:
    try:
        root = bytes.fromhex(cp.root_hash)
    except ValueError:
        root = b""
    if len(root) != 32:
        raise ProofError(f"checkpoint at seq {cp.seq} has no 32-byte root_hash")
    return root


def verify_inclusion(
    resp: audit_pb2.GetInclusionProofResponse, checkpoint: audit_pb2.Checkpoint
) -> dict[str, Any]:
    """Check that the entry of `resp` is in the log `checkpoint` signs (verify the checkpoint
    first, with `verify_checkpoint`); return the entry's fields, read from the proven leaf."""
    if resp.tree_size != checkpoint.tree_size:
        raise ProofError(
            f"the proof is for a log of {resp.tree_size} entries, the checkpoint signs "
            f"{checkpoint.tree_size}"
        )
    try:
        fields = json.loads(resp.leaf)
    except ValueError:
        raise ProofError("the leaf is not JSON") from None
    if not isinstance(fields, dict) or fields.get("seq") != resp.leaf_index + 1:
        raise ProofError(f"the leaf is not the entry at seq {resp.leaf_index + 1}")
    prev = fields.get("prev_hash", "")
    if not isinstance(prev, str) or not prev.isascii():
        raise ProofError("the leaf's prev_hash is not a hash")
    digest = hashlib.sha256(prev.encode("ascii") + resp.leaf).hexdigest()
    if resp.entry.ByteSize() and digest != resp.entry.hash:
        raise ProofError(f"the leaf is not the entry whose hash is {resp.entry.hash[:12]}...")
    try:
        merkle.verify_inclusion(
            merkle.leaf_hash(resp.leaf),
            resp.leaf_index,
            resp.tree_size,
            list(resp.proof),
            _root(checkpoint),
        )
    except BadPath as exc:
        raise ProofError(f"entry seq {resp.leaf_index + 1}: {exc}") from None
    return {**fields, "hash": digest}


def verify_consistency(
    resp: audit_pb2.GetConsistencyProofResponse,
    older: audit_pb2.Checkpoint,
    newer: audit_pb2.Checkpoint,
) -> None:
    """Check that the log `older` signs is a prefix of the log `newer` signs, by `resp`
    (verify both checkpoints first, with `verify_checkpoint`)."""
    if (resp.first, resp.second) != (older.tree_size, newer.tree_size):
        raise ProofError(
            f"the proof is for sizes {resp.first}, {resp.second}; the checkpoints sign "
            f"{older.tree_size}, {newer.tree_size}"
        )
    try:
        merkle.verify_consistency(
            resp.first, resp.second, list(resp.proof), _root(older), _root(newer)
        )
    except BadPath as exc:
        raise ProofError(
            f"the log of {resp.first} entries is not shown to be a prefix of the log of "
            f"{resp.second}: {exc}"
        ) from None
