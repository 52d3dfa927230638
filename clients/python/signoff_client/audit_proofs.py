"""Check the audit log's proofs offline: signed tree heads, inclusion, consistency.

Nothing here trusts the server. A version 2 checkpoint (GetCheckpoints) signs the head of
the log's Merkle tree, (tree_size, root_hash), with the server's Ed25519 key; given that
key, `verify_checkpoint` checks the signature over the documented bytes (see
service/signoff/core/checkpoints.py). `verify_inclusion` then checks that a
GetInclusionProof answer puts its entry in the log that checkpoint signed, and
`verify_consistency` that the log one checkpoint signed is a prefix of the log a later one
signed -- the check a witness makes before it co-signs. `verify_cosignatures` counts the
witnesses whose co-signatures of a checkpoint's tree head verify with their own keys. Only
the wire and, for signatures, the `cryptography` package (the `receipts` extra) are needed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from signoff_client import merkle
from signoff_client._gen import audit_pb2
from signoff_client.canonical import canonical_json
from signoff_client.merkle import BadPath
from signoff_client.receipts import _load_key, key_id

CHECKPOINT_TYPE = "signoff.checkpoint"
COSIGNATURE_VERSION = 1
COSIGNATURE_TYPE = "signoff.witness.cosignature"
_HASH = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[0-9a-f]{16}")


class ProofError(ValueError):
    """A checkpoint, an inclusion or a consistency proof does not verify; says why."""


def _time_text(t: dt.datetime) -> str:
    """RFC 3339 UTC with six fractional digits and "Z", as every signed document writes it."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError("time must be timezone-aware")
    return t.astimezone(dt.UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def checkpoint_bytes(cp: audit_pb2.Checkpoint) -> bytes:
    """The bytes a checkpoint's signature covers: version 2 if it carries a root hash."""
    time = _time_text(cp.time.ToDatetime(tzinfo=dt.UTC))
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


def cosignature_bytes(
    log_key_id: str, tree_size: int, root_hash: str, time: dt.datetime, witness_key_id: str
) -> bytes:
    """The bytes a witness's co-signature covers: the RFC 8785 canonical JSON of {"v": 1,
    "type": "signoff.witness.cosignature", "log_key_id", "tree_size", "root_hash", "time",
    "key_id"} (`key_id` names the witness's key); ValueError if a field is malformed."""
    for what, kid in (("log_key_id", log_key_id), ("key_id", witness_key_id)):
        if not isinstance(kid, str) or not _KEY_ID.fullmatch(kid):
            raise ValueError(f"{what} {kid!r} is not 16 lowercase hex characters")
    if type(tree_size) is not int or tree_size < 0:
        raise ValueError(f"tree_size {tree_size!r} is not a non-negative integer")
    if not isinstance(root_hash, str) or not _HASH.fullmatch(root_hash):
        raise ValueError(f"root_hash {root_hash!r} is not 64 lowercase hex characters")
    doc = {
        "v": COSIGNATURE_VERSION,
        "type": COSIGNATURE_TYPE,
        "log_key_id": log_key_id,
        "tree_size": tree_size,
        "root_hash": root_hash,
        "time": _time_text(time),
        "key_id": witness_key_id,
    }
    return canonical_json(doc).encode("utf-8")


def verify_cosignatures(
    cp: audit_pb2.Checkpoint, witness_keys: Iterable[Any], quorum: int
) -> list[str]:
    """The key ids of the witnesses (of `witness_keys`: PEM, 32 raw bytes or
    Ed25519PublicKey) whose co-signatures of `cp`'s tree head verify; ProofError if fewer
    than `quorum`. Verify `cp` itself first, with `verify_checkpoint`."""
    from cryptography.exceptions import InvalidSignature

    keys = {key_id(k): k for k in map(_load_key, witness_keys)}
    valid: set[str] = set()
    for cs in cp.cosignatures:
        key = keys.get(cs.key_id)
        if key is None or cs.key_id in valid:
            continue
        if (cs.log_key_id, cs.tree_size, cs.root_hash) != (cp.key_id, cp.tree_size, cp.root_hash):
            continue  # a co-signature of another head proves nothing about this one
        try:
            data = cosignature_bytes(
                cs.log_key_id,
                cs.tree_size,
                cs.root_hash,
                cs.time.ToDatetime(tzinfo=dt.UTC),
                cs.key_id,
            )
            key.verify(base64.b64decode(cs.signature, validate=True), data)
        except (InvalidSignature, ValueError):
            continue
        valid.add(cs.key_id)
    if len(valid) < quorum:
        raise ProofError(
            f"the checkpoint at seq {cp.seq} carries {len(valid)} valid co-signature(s) of the "
            f"given witnesses ({len(cp.cosignatures)} in all), {quorum} needed"
        )
    return sorted(valid)


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
    fields = verify_leaf(resp.leaf, resp.leaf_index, list(resp.proof), checkpoint)
    if resp.entry.ByteSize() and fields["hash"] != resp.entry.hash:
        raise ProofError(f"the leaf is not the entry whose hash is {resp.entry.hash[:12]}...")
    return fields


def verify_leaf(
    leaf: bytes, leaf_index: int, proof: list[bytes], checkpoint: audit_pb2.Checkpoint
) -> dict[str, Any]:
    """Check that `leaf` (an entry's canonical bytes) is leaf `leaf_index` of the tree
    `checkpoint` signs, by the audit path `proof`; return the entry's fields and its chain
    hash (as "hash"), read from the proven bytes."""
    try:
        fields = json.loads(leaf)
    except ValueError:
        raise ProofError("the leaf is not JSON") from None
    if not isinstance(fields, dict) or fields.get("seq") != leaf_index + 1:
        raise ProofError(f"the leaf is not the entry at seq {leaf_index + 1}")
    prev = fields.get("prev_hash", "")
    if not isinstance(prev, str) or not prev.isascii():
        raise ProofError("the leaf's prev_hash is not a hash")
    try:
        merkle.verify_inclusion(
            merkle.leaf_hash(leaf), leaf_index, checkpoint.tree_size, proof, _root(checkpoint)
        )
    except BadPath as exc:
        raise ProofError(f"entry seq {leaf_index + 1}: {exc}") from None
    return {**fields, "hash": hashlib.sha256(prev.encode("ascii") + leaf).hexdigest()}


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
