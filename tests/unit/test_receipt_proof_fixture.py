"""A receipt proof built by the server's own code, as a fixture for the TypeScript client.

tests/unit/data/receipt_proof_fixture.json holds two ReceiptProofs (GetReceiptProof's
answer, serialized): an AUTO_ALLOW decision's version 2 receipt and an approved review's
version 1 receipt, each with its allow's audit entry, the entry's inclusion path and a
version 2 checkpoint two witnesses co-signed. The log goes on with entries a lying server
could log to pass off as a receipt's allow (each off in one field `_bind` checks): the
fixture's `binding_lies` put them, with their inclusion paths, under the receipts, and
both verifiers must refuse each for that field. Everything is made from fixed Ed25519
seeds and fixed times (Ed25519 is deterministic), so the file is the same every run: this
test keeps it fresh and checks `signoff_client.receipt_proofs.verify` on it;
clients/typescript/test/receipt-proofs.test.ts checks `verifyReceiptProof` the same way.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from signoff import pb
from signoff.app.audit.checkpoints import checkpoint_proto
from signoff.app.audit.witness import attach
from signoff.app.receipts import ReceiptIssuer
from signoff.core import checkpoints, log_tree
from signoff.core.audit import GENESIS, AuditEntry, AuditRecord, seal
from signoff.core.merkle import leaf_hash
from signoff.core.witness import cosign
from signoff_client import audit_proofs, receipt_proofs
from signoff_client.audit_proofs import ProofError, cosignature_bytes
from signoff_client.canonical import action_digest

FIXTURE = Path(__file__).parent / "data" / "receipt_proof_fixture.json"
REWRITE = (
    "SIGNOFF_WRITE_FIXTURES=1 .venv/bin/python -m pytest -q -p no:cacheprovider "
    "tests/unit/test_receipt_proof_fixture.py"
)
LOG_SEED = bytes(range(32))
WITNESS_SEEDS = (bytes(range(32, 64)), bytes(range(64, 96)))
T0 = dt.datetime(2026, 4, 1, 10, 0, 0, 250000, tzinfo=dt.UTC)
DECISION_ACTION = {"action": "refund.issue", "params": {"amount": 120}, "principal": "bot-1"}
REVIEW_ACTION = {"action": "refund.issue", "params": {"amount": 7500}, "principal": "bot-1"}


def _at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def _digest(action: dict[str, Any]) -> str:
    return action_digest(action["action"], action["params"], {"id": action["principal"]})


def _records() -> list[AuditRecord]:
    """A small log: a policy load, an AUTO_ALLOW decision, a decision sent to review, the
    review opened and approved, a denial."""
    common = {"action_name": "refund.issue", "principal": "bot-1", "actor": "bot-1"}
    review = {"decision_id": "dec-2", "review_id": "rev-2", "request_id": "req-2"}
    return [
        AuditRecord(
            type="policy.loaded",
            time=_at(0),
            actor="signoff",
            policy_version="v7",
            payload={"rules": 3},
        ),
        AuditRecord(
            type="decision",
            time=_at(1),
            request_id="req-1",
            decision_id="dec-1",
            outcome="AUTO_ALLOW",
            rules=("small-refunds",),
            policy_version="v7",
            payload={"action_digest": _digest(DECISION_ACTION)},
            **common,
        ),
        AuditRecord(
            type="decision",
            time=_at(2),
            outcome="REQUIRE_REVIEW",
            rules=("large-refunds",),
            policy_version="v7",
            payload={"action_digest": _digest(REVIEW_ACTION)},
            **review,
            **common,
        ),
        AuditRecord(
            type="review.opened",
            time=_at(2),
            reviewer_group="finance",
            review_state="PENDING",
            payload={"state": "PENDING", "action_digest": _digest(REVIEW_ACTION)},
            **review,
            action_name="refund.issue",
            principal="bot-1",
            actor="bot-1",
        ),
        AuditRecord(
            type="review.approved",
            time=_at(30),
            reviewer="alice",
            reviewer_group="finance",
            review_state="APPROVED",
            payload={
                "state": "APPROVED",
                "action_digest": _digest(REVIEW_ACTION),
                "final_digest": _digest(REVIEW_ACTION),
                "act": {"reviewer": "alice", "verdict": "APPROVE", "comment": "ok"},
            },
            **review,
            action_name="refund.issue",
            principal="bot-1",
            actor="alice",
        ),
        AuditRecord(
            type="decision",
            time=_at(31),
            request_id="req-3",
            decision_id="dec-3",
            outcome="DENY",
            rules=("no-crypto",),
            policy_version="v7",
            payload={"action_digest": "0" * 64},
            action_name="crypto.buy",
            principal="bot-2",
            actor="bot-2",
        ),
    ]


def _lying_records() -> list[AuditRecord]:
    """Entries at seq 7.. a lying server could show as a receipt's allow, each off in one
    field (`BINDING_LIES` names it)."""
    digest = _digest(REVIEW_ACTION)
    approved = {"state": "APPROVED", "action_digest": digest, "final_digest": digest}
    review = {"decision_id": "dec-2", "review_id": "rev-2", "actor": "alice"}
    return [
        AuditRecord(type="review.opened", time=_at(40), decision_id="dec-1", outcome="AUTO_ALLOW"),
        AuditRecord(type="decision", time=_at(41), decision_id="dec-1", outcome="DENY"),
        AuditRecord(
            type="decision",
            time=_at(42),
            decision_id="dec-1",
            review_id="rev-9",
            outcome="AUTO_ALLOW",
        ),
        AuditRecord(
            type="review.modified",
            time=_at(43),
            review_state="APPROVED",
            payload=approved,
            **review,
        ),
        AuditRecord(
            type="review.approved",
            time=_at(44),
            review_state="PENDING",
            payload=approved,
            **review,
        ),
        AuditRecord(
            type="review.approved",
            time=_at(45),
            decision_id="dec-2",
            review_id="rev-3",
            review_state="APPROVED",
            payload=approved,
        ),
        AuditRecord(
            type="review.approved",
            time=_at(46),
            review_state="APPROVED",
            payload={**approved, "final_digest": "e" * 64},
            **review,
        ),
    ]


# (receipt, seq of the entry put under it, the field that gives it away; None: the
# receipt's outcome allows nothing at all)
BINDING_LIES: list[tuple[str, int, str | None]] = [
    ("decision", 5, "decision_id"),  # the review's genuine allow, another decision's
    ("review", 2, "decision_id"),  # the decision's genuine allow, another decision's
    ("review", 3, "payload.final_digest"),  # the review's decision: no final digest
    ("review", 4, "payload.final_digest"),  # the review opened: not approved yet
    ("decision", 7, "type"),
    ("decision", 8, "outcome"),
    ("decision", 9, "review_id"),
    ("review", 10, "type"),
    ("review", 11, "review_state"),
    ("review", 12, "review_id"),
    ("review", 13, "payload.final_digest"),
    ("rejected", 5, None),
]


def lie_pattern(seq: int, field: str | None) -> str:
    """The start of the ProofError message both verifiers give for a binding lie."""
    if field is None:
        return "^the receipt's outcome .REJECTED. allows nothing$"
    return f"^entry seq {seq} is not this receipt's allow: {re.escape(field)} is "


def _receipts(issuer: ReceiptIssuer) -> dict[str, pb.common.Receipt]:
    """The decision's version 2 receipt (sealed in a batch of two), the review's version 1
    receipt, and a receipt the server never issues: the review's, with outcome REJECTED."""
    leaves = [
        issuer.document(
            version=2,
            decision_id=decision_id,
            review_id="",
            digest=digest,
            redacted_paths=[],
            outcome="AUTO_ALLOW",
            approvers=[],
            issued_at=_at(1),
        )
        for decision_id, digest in (("dec-0", "f" * 64), ("dec-1", _digest(DECISION_ACTION)))
    ]
    decision = pb.common.Decision.FromString(issuer.seal(leaves)[1]).receipt
    review = {
        "decision_id": "dec-2",
        "review_id": "rev-2",
        "digest": _digest(REVIEW_ACTION),
        "redacted_paths": [],
        "approvers": ["alice"],
        "issued_at": _at(30),
    }
    return {
        "decision": decision,
        "review": issuer.sign(outcome="APPROVED", **review),
        "rejected": issuer.sign(outcome="REJECTED", **review),
    }


def _raw(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def receipt_proof_fixture() -> dict[str, Any]:
    """The fixture's content, built deterministically from the server's code."""
    log_key = Ed25519PrivateKey.from_private_bytes(LOG_SEED)
    witnesses = [Ed25519PrivateKey.from_private_bytes(s) for s in WITNESS_SEEDS]
    entries: list[AuditEntry] = []
    prev = GENESIS
    for seq, record in enumerate([*_records(), *_lying_records()], start=1):
        entries.append(seal(record, seq=seq, prev_hash=prev))
        prev = entries[-1].hash
    leaves: list[bytes] = []
    frontier, rows = log_tree.Frontier(), {}
    for e in entries:
        data = log_tree.leaf_bytes(e)
        assert data is not None
        leaves.append(data)
        rows[e.seq] = frontier.append(leaf_hash(data))
    size = len(entries)
    cp = checkpoints.sign(log_key, size, entries[-1].hash, _at(60), root_hash=frontier.root().hex())
    cosigs = [
        cosign(w, cp, _at(61 + i) + dt.timedelta(microseconds=123)) for i, w in enumerate(witnesses)
    ]
    cp_msg = checkpoint_proto(cp)
    attach([cp_msg], {cp.seq: cosigs})

    def path(seq: int) -> list[bytes]:
        ranges = log_tree.inclusion_ranges(seq - 1, size)
        return log_tree.hashes(ranges, log_tree.from_rows(log_tree.needed(ranges), rows))

    receipts = _receipts(ReceiptIssuer(log_key, dt.timedelta(minutes=15)))
    proofs = {}
    for name, seq in (("decision", 2), ("review", 5), ("rejected", 5)):
        out = pb.audit.ReceiptProof(leaf=leaves[seq - 1], leaf_index=seq - 1, proof=path(seq))
        out.receipt.CopyFrom(receipts[name])
        out.checkpoint.CopyFrom(cp_msg)
        proofs[name] = {
            "seq": seq,
            "receipt_proof_b64": base64.b64encode(
                out.SerializeToString(deterministic=True)
            ).decode(),
        }
    lies = [
        {
            "receipt": name,
            "seq": seq,
            "field": field,
            "pattern": lie_pattern(seq, field),
            "leaf_b64": base64.b64encode(leaves[seq - 1]).decode(),
            "proof_b64": [base64.b64encode(h).decode() for h in path(seq)],
        }
        for name, seq, field in BINDING_LIES
    ]
    first = cosigs[0]
    return {
        "log_public_key_raw_b64": _raw(log_key),
        "witness_public_keys_raw_b64": [_raw(w) for w in witnesses],
        "witness_key_ids": sorted(checkpoints.key_id(w) for w in witnesses),
        "decision_action": DECISION_ACTION,
        "review_action": REVIEW_ACTION,
        "proofs": proofs,
        "binding_lies": lies,
        "cosignature_bytes": {
            "log_key_id": first.log_key_id,
            "tree_size": first.tree_size,
            "root_hash": first.root_hash,
            "time_seconds": int(first.time.timestamp()),
            "time_nanos": first.time.microsecond * 1000,
            "key_id": first.key_id,
            "bytes_b64": base64.b64encode(
                cosignature_bytes(
                    first.log_key_id, first.tree_size, first.root_hash, first.time, first.key_id
                )
            ).decode(),
        },
    }


def test_the_typescript_fixture_is_fresh() -> None:
    # clients/typescript/test/receipt-proofs.test.ts verifies this file.
    expected = json.dumps(receipt_proof_fixture(), indent=2) + "\n"
    if os.environ.get("SIGNOFF_WRITE_FIXTURES"):
        FIXTURE.write_text(expected)
    actual = FIXTURE.read_text() if FIXTURE.exists() else ""
    assert actual == expected, f"stale fixture: rewrite it with `{REWRITE}`"


def test_the_python_verifier_accepts_both_proofs_with_two_witnesses() -> None:
    doc = json.loads(FIXTURE.read_text())
    key = base64.b64decode(doc["log_public_key_raw_b64"])
    witness_keys = [base64.b64decode(k) for k in doc["witness_public_keys_raw_b64"]]
    for name, entry_type in (("decision", "decision"), ("review", "review.approved")):
        proof = doc["proofs"][name]
        logged = receipt_proofs.verify(
            base64.b64decode(proof["receipt_proof_b64"]),
            key,
            witness_keys=witness_keys,
            quorum=2,
            action=doc[f"{name}_action"],
        )
        assert logged.seq == proof["seq"]
        assert logged.entry["type"] == entry_type
        assert list(logged.witnesses) == doc["witness_key_ids"]


def _lie(doc: dict[str, Any], lie: dict[str, Any]) -> pb.audit.ReceiptProof:
    """The proof of `lie["receipt"]` with the entry at `lie["seq"]` and its path put in."""
    proof = pb.audit.ReceiptProof.FromString(
        base64.b64decode(doc["proofs"][lie["receipt"]]["receipt_proof_b64"])
    )
    proof.leaf = base64.b64decode(lie["leaf_b64"])
    proof.leaf_index = lie["seq"] - 1
    del proof.proof[:]
    proof.proof.extend(base64.b64decode(h) for h in lie["proof_b64"])
    return proof


@pytest.mark.parametrize(
    ("receipt", "seq", "field"), BINDING_LIES, ids=[f"{r}-{s}-{f}" for r, s, f in BINDING_LIES]
)
def test_an_entry_that_is_not_the_receipts_allow_is_refused_for_its_field(
    receipt: str, seq: int, field: str | None
) -> None:
    doc = json.loads(FIXTURE.read_text())
    lie = next(x for x in doc["binding_lies"] if (x["receipt"], x["seq"]) == (receipt, seq))
    proof = _lie(doc, lie)
    key = base64.b64decode(doc["log_public_key_raw_b64"])
    witness_keys = [base64.b64decode(k) for k in doc["witness_public_keys_raw_b64"]]
    with pytest.raises(ProofError, match=lie["pattern"]):
        receipt_proofs.verify(proof, key, witness_keys=witness_keys, quorum=2)
    # The entry is genuine and proven: only the binding refuses it.
    fields = audit_proofs.verify_leaf(
        proof.leaf, proof.leaf_index, list(proof.proof), proof.checkpoint
    )
    assert fields["seq"] == seq
