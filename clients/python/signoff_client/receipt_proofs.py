"""Check offline that a receipt's allow is in the audit log its witnesses co-signed.

    from signoff_client import receipt_proofs

    logged = receipt_proofs.verify(proof, server_key_pem,
                                   witness_keys=[alice_pem, bob_pem], quorum=2)
    logged.seq, logged.witnesses   # the entry that recorded the allow, who vouched

`proof` is a `ReceiptProof` (GetReceiptProof, `signoff audit receipt`): the receipt,
the audit entry that recorded its allow, that entry's inclusion path and a version 2
checkpoint with its witnesses' co-signatures. `verify` checks, with no call to the server:

1. the receipt is signed by the server's key (`receipts.read`; and, given `action`, that it
   allows exactly that action -- its expiry does not matter here, only what it says);
2. the checkpoint is signed by the server's key and signs a tree head, and at least
   `quorum` of the given witnesses co-signed that head;
3. the entry is leaf seq - 1 of that tree (RFC 9162 inclusion proof);
4. the entry is the receipt's allow: its decision ("decision", AUTO_ALLOW, the same
   decision_id), or its review's approving act (the same review and decision, the review's
   state the receipt's outcome, and the entry's `final_digest` the receipt's action digest).

A server that later removed or changed that entry would have to show the witnesses a log
that is not an extension of the one they co-signed, which they refuse (and raise the
alarm). Needs the `cryptography` package: the `receipts` extra.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from signoff_client import audit_proofs, receipts
from signoff_client._gen import audit_pb2
from signoff_client.audit_proofs import ProofError
from signoff_client.models import Request
from signoff_client.receipts import VerifiedReceipt

__all__ = ["LoggedReceipt", "ProofError", "verify"]

APPROVING = {"APPROVED": "review.approved", "MODIFIED": "review.modified"}


@dataclass(frozen=True, slots=True)
class LoggedReceipt:
    """A receipt shown to be in the witnessed log, and where."""

    receipt: VerifiedReceipt
    seq: int  # the audit entry that recorded the allow
    entry: Mapping[str, Any]  # that entry's fields, read from the proven leaf
    tree_size: int  # of the checkpoint the entry was proven into
    root_hash: str
    witnesses: tuple[str, ...]  # key ids of the witnesses whose co-signatures verified


def verify(
    proof: audit_pb2.ReceiptProof | bytes,
    public_key: Any,
    *,
    witness_keys: Iterable[Any] = (),
    quorum: int = 1,
    action: Request | Mapping[str, Any] | None = None,
    checkpoint_key: Any = None,
) -> LoggedReceipt:
    """Return where the receipt of `proof` sits in the witnessed log; raise ProofError (the
    log side) or a `receipts.ReceiptError` (the receipt itself) if any check fails.

    `public_key` is the server's Ed25519 key (PEM, 32 raw bytes or an Ed25519PublicKey);
    `checkpoint_key`, if the key was rotated between the receipt and the checkpoint, the
    key that signed the checkpoint. `quorum` co-signatures by `witness_keys` are required:
    0 accepts a checkpoint no witness co-signed (then only the server's key vouches)."""
    if isinstance(proof, bytes | bytearray):
        try:
            proof = audit_pb2.ReceiptProof.FromString(bytes(proof))
        except DecodeError:
            raise ProofError("the bytes are not a serialized ReceiptProof") from None
    if quorum < 0:
        raise ValueError(f"quorum must be 0 or more, not {quorum}")
    stated = receipts.read(proof.receipt, public_key)
    if action is not None:
        receipts.check_action(stated, action)
    cp = proof.checkpoint
    audit_proofs.verify_checkpoint(cp, public_key if checkpoint_key is None else checkpoint_key)
    witnesses = audit_proofs.verify_cosignatures(cp, witness_keys, quorum)
    fields = audit_proofs.verify_leaf(proof.leaf, proof.leaf_index, list(proof.proof), cp)
    _bind(fields, stated)
    return LoggedReceipt(
        receipt=stated,
        seq=proof.leaf_index + 1,
        entry=fields,
        tree_size=cp.tree_size,
        root_hash=cp.root_hash,
        witnesses=tuple(witnesses),
    )


def _bind(entry: Mapping[str, Any], stated: VerifiedReceipt) -> None:
    """ProofError unless `entry` is the log's record of the allow `stated` describes."""
    seq = entry.get("seq")

    def mismatch(what: str, want: object, got: object) -> ProofError:
        return ProofError(
            f"entry seq {seq} is not this receipt's allow: {what} is {got!r}, "
            f"the receipt says {want!r}"
        )

    if entry.get("decision_id") != stated.decision_id:
        raise mismatch("decision_id", stated.decision_id, entry.get("decision_id"))
    if not stated.review_id:
        checks = {"type": "decision", "outcome": "AUTO_ALLOW", "review_id": ""}
    elif stated.outcome in APPROVING:
        payload = entry.get("payload")
        final = payload.get("final_digest") if isinstance(payload, dict) else None
        if final != stated.action_digest:
            raise mismatch("payload.final_digest", stated.action_digest, final)
        checks = {
            "type": APPROVING[stated.outcome],
            "review_id": stated.review_id,
            "review_state": stated.outcome,
        }
    else:
        raise ProofError(f"the receipt's outcome {stated.outcome!r} allows nothing")
    for name, want in checks.items():
        if entry.get(name) != want:
            raise mismatch(name, want, entry.get(name))
