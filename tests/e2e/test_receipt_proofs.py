"""GetReceiptProof through the real server, checked offline by the Python client alone
(signoff_client.receipt_proofs): a decision's and an approved review's receipts upgraded with
the proof that the log records their allow, up to a checkpoint two witnesses co-signed;
each way a proof can lie caught; who may ask; what an unwitnessed log answers."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff import pb
from signoff.app.audit.witness import cosignature_proto
from signoff.core import checkpoints as core_checkpoints
from signoff.core import witness as core_witness
from signoff.core.wire import timestamp
from signoff_client import receipt_proofs, receipts
from signoff_client._gen import decision_pb2_grpc, review_pb2_grpc
from signoff_client.audit_proofs import ProofError

from .conftest import ServerHandle, write_tokens
from .test_audit import _md, _traffic
from .test_audit_proofs import _audit, _checkpoint, _key

A = pb.audit
FRESH = itertools.count()
WITNESSES = [Ed25519PrivateKey.generate() for _ in range(2)]
WITNESS_PEMS = [core_checkpoints.public_pem(k).decode() for k in WITNESSES]


def _cosign(server: ServerHandle, cp: A.Checkpoint, keys=WITNESSES, token: str = "wit") -> None:
    core_cp = core_checkpoints.make_checkpoint(
        seq=cp.seq, head_hash=cp.head_hash, time=timestamp(cp.time, "time"), key_id=cp.key_id,
        signature=cp.signature, tree_size=cp.tree_size, root_hash=cp.root_hash,
    )  # fmt: skip
    for key in keys:
        cs = core_witness.cosign(key, core_cp, dt.datetime.now(dt.UTC))
        req = A.AddCosignatureRequest(
            seq=cp.seq,
            cosignature=cosignature_proto(cs),
            public_key_pem=core_checkpoints.public_pem(key).decode(),
        )
        _audit(server).AddCosignature(req, metadata=_md(token))


def _receipts(server: ServerHandle) -> tuple[pb.common.Decision, pb.review.Review]:
    """An AUTO_ALLOW decision and an approved review, each with its receipt."""
    decisions = _traffic(server, 6)
    allowed = next(d for d in decisions if d.outcome == pb.common.OUTCOME_AUTO_ALLOW)
    review_id = next(d.review_id for d in decisions if d.review_id)
    review = review_pb2_grpc.ReviewServiceStub(server.channel()).GetReview(
        pb.review.GetReviewRequest(review_id=review_id), metadata=_md("alice")
    )
    assert allowed.receipt.payload
    assert review.receipt.payload
    return allowed, review


def _more(server: ServerHandle, n: int) -> None:
    """`n` more entries (_traffic's request ids again would be replays, logging nothing)."""
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    for _ in range(n):
        req = pb.common.ActionRequest(request_id=f"more-{next(FRESH)}")
        req.action.name = "email.send"
        stub.Evaluate(req, metadata=_md("bot-0"))


def _proof(server: ServerHandle, receipt, token: str = "ann", **fields) -> A.ReceiptProof:
    req = A.GetReceiptProofRequest(receipt=receipt, **fields)
    return _audit(server).GetReceiptProof(req, metadata=_md(token))


def _error(server: ServerHandle, receipt, token: str = "ann", **fields) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        _proof(server, receipt, token, **fields)
    return info.value


def test_receipts_upgraded_with_proofs_verify_offline_against_two_witnesses(server):
    allowed, review = _receipts(server)
    cp = _checkpoint(server)
    _cosign(server, cp)
    key = _key(server)
    for receipt, entry_type in ((allowed.receipt, "decision"), (review.receipt, "review.approved")):
        proof = _proof(server, receipt)
        assert proof.checkpoint.tree_size == cp.tree_size
        assert len(proof.checkpoint.cosignatures) == 2
        logged = receipt_proofs.verify(
            proof.SerializeToString(), key, witness_keys=WITNESS_PEMS, quorum=2
        )
        assert logged.entry["type"] == entry_type
        assert logged.receipt.decision_id == logged.entry["decision_id"]
        assert logged.tree_size == cp.tree_size
        assert set(logged.witnesses) == {core_checkpoints.key_id(k) for k in WITNESSES}
        # the entry proven is the one the log holds at that seq
        entries = (
            _audit(server)
            .QueryAudit(
                A.QueryAuditRequest(filter=A.AuditFilter(decision_id=logged.entry["decision_id"])),
                metadata=_md("ann"),
            )
            .entries
        )
        assert logged.seq in [e.seq for e in entries if e.type == entry_type]
    # Given the action, the receipt must allow exactly it.
    decided = next(d for d in _traffic_requests() if d["request_id"] == allowed.request_id)
    receipt_proofs.verify(
        _proof(server, allowed.receipt), key, witness_keys=WITNESS_PEMS, quorum=2,
        action=decided["action"],
    )  # fmt: skip
    other = dict(decided["action"], params={"amount": 1})
    with pytest.raises(receipts.WrongAction):
        receipt_proofs.verify(
            _proof(server, allowed.receipt), key, witness_keys=WITNESS_PEMS, quorum=2,
            action=other,
        )  # fmt: skip


def _traffic_requests() -> list[dict]:
    """The requests `_traffic` sends, as `receipts.verify` takes them."""
    from .test_audit import CARD

    out = []
    for i in range(6):
        name = ("refund.issue", "email.send")[i % 2]
        params: dict = {"amount": (100, 750, 20_000)[i % 3]}
        if name == "refund.issue":
            params["card_number"] = CARD
        action = {"action": name, "params": params, "principal": f"bot-{i % 2}"}
        out.append({"request_id": f"req-{i}", "action": action})
    return out


def test_each_lie_in_a_proof_is_caught_offline(server):
    allowed, review = _receipts(server)
    cp = _checkpoint(server)
    _cosign(server, cp)
    key = _key(server)
    good = _proof(server, allowed.receipt)

    def check(proof, quorum=2, witness_keys=WITNESS_PEMS):
        return receipt_proofs.verify(proof, key, witness_keys=witness_keys, quorum=quorum)

    def altered(**change) -> A.ReceiptProof:
        out = A.ReceiptProof()
        out.CopyFrom(good)
        for name, value in change.items():
            if name == "proof":
                del out.proof[:]
                out.proof.extend(value)
            elif name == "receipt":
                out.receipt.CopyFrom(value)
            else:
                setattr(out, name, value)
        return out

    with pytest.raises(ProofError, match="3 needed"):
        check(good, quorum=3)
    with pytest.raises(ProofError, match="0 valid co-signature"):
        check(good, witness_keys=[core_checkpoints.public_pem(Ed25519PrivateKey.generate())])
    with pytest.raises(ProofError, match="another root"):
        check(altered(proof=[bytes(32), *good.proof[1:]]))
    with pytest.raises(ProofError):
        check(altered(leaf_index=good.leaf_index + 1))
    with pytest.raises(ProofError):
        check(altered(leaf=good.leaf.replace(b"AUTO_ALLOW", b"DENY")))
    # The proof of the review's entry does not carry the decision's receipt: the entry is
    # genuine and in the log, but it is not this receipt's allow.
    review_proof = _proof(server, review.receipt)
    with pytest.raises(ProofError, match="not this receipt's allow"):
        check(altered(leaf=review_proof.leaf, leaf_index=review_proof.leaf_index,
                      proof=list(review_proof.proof)))  # fmt: skip
    forged_cp = altered()
    forged_cp.checkpoint.root_hash = "ab" * 32
    with pytest.raises(ProofError, match="signature does not verify"):
        check(forged_cp)
    forged_receipt = pb.common.Receipt()
    forged_receipt.CopyFrom(good.receipt)
    forged_receipt.payload = good.receipt.payload.replace(b"AUTO_ALLOW", b"APPROVED")
    with pytest.raises(receipts.ReceiptError):
        check(altered(receipt=forged_receipt))
    with pytest.raises(ProofError, match="not a serialized"):
        check(b"\xff\xff not a proof")
    assert check(good).seq == good.leaf_index + 1  # and the untouched one still verifies


def test_a_log_no_witness_co_signed_answers_later_or_on_the_server_key_alone(server):
    allowed, _ = _receipts(server)
    _checkpoint(server)
    err = _error(server, allowed.receipt)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "co-signature" in err.details()
    assert "ask again later" in err.details()
    proof = _proof(server, allowed.receipt, unwitnessed=True)
    assert not proof.checkpoint.cosignatures
    first_size = proof.checkpoint.tree_size
    with pytest.raises(ProofError, match="1 needed"):
        receipt_proofs.verify(proof, _key(server))  # a quorum of 1 by default
    assert receipt_proofs.verify(proof, _key(server), quorum=0).witnesses == ()
    # One witness co-signs a newer checkpoint: the upgrade goes there.
    _more(server, 2)
    newer = _checkpoint(server)
    assert newer.tree_size > proof.checkpoint.tree_size
    _cosign(server, newer, WITNESSES[:1])
    proof = _proof(server, allowed.receipt)
    assert proof.checkpoint.tree_size == newer.tree_size
    assert _error(server, allowed.receipt, min_cosignatures=2).code() == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    # Named by its tree size, the older (unwitnessed) checkpoint serves too.
    first = _proof(server, allowed.receipt, unwitnessed=True, tree_size=first_size)
    assert first.checkpoint.tree_size == first_size


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"min_cosignatures": -1}, "min_cosignatures", "0 or more"),
        ({"tree_size": 99_999}, "tree_size", "beyond the newest"),
        ({"tree_size": 1}, "tree_size", "before the receipt's entry"),
    ],
)
def test_bad_requests_name_the_field(server, fields, field, words):
    allowed, _ = _receipts(server)
    _checkpoint(server)
    err = _error(server, allowed.receipt, **fields)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(f"{field}:"), err.details()
    assert words in err.details()


def test_receipts_the_server_did_not_sign_are_refused(server):
    allowed, _ = _receipts(server)
    _checkpoint(server)
    assert _error(server, pb.common.Receipt()).details().startswith("receipt: is missing")
    forged = pb.common.Receipt()
    forged.CopyFrom(allowed.receipt)
    forged.signature = bytes(64)
    err = _error(server, forged)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("receipt:")
    assert "signature" in err.details()
    forged.CopyFrom(allowed.receipt)
    forged.key_id = "0" * 16
    assert _error(server, forged).details().startswith("receipt.key_id:")


def test_only_auditors_and_the_receipts_own_principal_may_ask(make_server, tmp_path):
    people = {
        "ann": ("ann", ["auditor"]),
        "bot-0": ("bot-0", ["agent"]),
        "bot-1": ("bot-1", ["agent"]),
        "alice": ("alice", ["reviewer:finance", "reviewer:default"]),
        "wit": ("wit", ["witness"]),
    }
    server = make_server(auth={"tokens_file": write_tokens(tmp_path, people)})
    allowed, _ = _receipts(server)
    cp = _checkpoint(server)
    _cosign(server, cp)
    owner = _entry_principal(server, allowed.decision_id)
    stranger = "bot-1" if owner == "bot-0" else "bot-0"
    assert _proof(server, allowed.receipt, owner).leaf
    assert _proof(server, allowed.receipt, "ann").leaf
    for token in (stranger, "alice", "wit"):
        assert _error(server, allowed.receipt, token).code() == grpc.StatusCode.PERMISSION_DENIED


def _entry_principal(server: ServerHandle, decision_id: str) -> str:
    entries = (
        _audit(server)
        .QueryAudit(
            A.QueryAuditRequest(filter=A.AuditFilter(decision_id=decision_id)), metadata=_md("ann")
        )
        .entries
    )
    return entries[0].actor


async def test_the_python_clients_upgrade_a_decisions_receipt(server):
    from signoff_client import AsyncClient, Client
    from signoff_client.errors import FailedPrecondition

    with Client(server.target, token="bot-0") as signoff:
        decision = signoff.evaluate("refund.issue", {"amount": 10}, principal="bot-0")
        assert decision.receipt is not None
        _checkpoint(server)
        with pytest.raises(FailedPrecondition, match="ask again later"):
            signoff.receipt_proof(decision)
        cp = _checkpoint(server)  # nothing new to sign: the same checkpoint
        _cosign(server, cp)
        proof = signoff.receipt_proof(decision)
        with pytest.raises(TypeError, match="receipt"):
            signoff.receipt_proof(object())
    async with AsyncClient(server.target, token="bot-0") as signoff:
        again = await signoff.receipt_proof(decision.receipt, min_cosignatures=2)
    assert again == proof
    logged = receipt_proofs.verify(proof, _key(server), witness_keys=WITNESS_PEMS, quorum=2)
    assert logged.receipt.decision_id == decision.decision_id


async def test_the_cli_upgrades_a_receipt_and_a_third_party_checks_it_offline(server, tmp_path):
    from google.protobuf import json_format

    from .test_cli_audit import _cli

    allowed, review = _receipts(server)
    cp = _checkpoint(server)
    _cosign(server, cp)
    log_pub = tmp_path / "log.pub"
    log_pub.write_text(_key(server))
    wits = []
    for i, pem in enumerate(WITNESS_PEMS):
        wits += ["--witness-key", str(tmp_path / f"w{i}.pub")]
        (tmp_path / f"w{i}.pub").write_text(pem)
    receipt = tmp_path / "receipt.bin"
    receipt.write_bytes(allowed.receipt.SerializeToString())
    proof = tmp_path / "proof.bin"
    code, out, err = await _cli(server, "receipt", str(receipt), "-o", str(proof), *wits)
    assert (code, err) == (0, "")
    assert out.startswith(f"ok: the AUTO_ALLOW of decision {allowed.decision_id} is entry ")
    assert "co-signed by 2 witness(es)" in out
    assert "with the server's own key" in out
    # The third party: no server (an address nothing listens on), the keys it trusts.
    offline = ["--check", str(proof), "--public-key", str(log_pub), *wits, "--json"]
    code, out, err = await _cli(None, "receipt", *offline, target="127.0.0.1:1")
    assert (code, err) == (0, "")
    shown = json.loads(out)
    assert shown["decision_id"] == allowed.decision_id
    assert shown["entry_type"] == "decision"
    assert len(shown["witnesses"]) == 2
    # A review's receipt, given as JSON; the proof must hold a quorum of 3: it does not.
    as_json = tmp_path / "review-receipt.json"
    as_json.write_text(json_format.MessageToJson(review.receipt))
    code, out, err = await _cli(server, "receipt", str(as_json), "-o", str(proof), *wits)
    assert (code, err) == (0, "")
    assert f"APPROVED of review {review.review_id}" in out
    code, out, err = await _cli(
        None, "receipt", *offline[:-1], "--quorum", "3", target="127.0.0.1:1"
    )
    assert code == 1
    assert err.startswith("FAILED: ")
    assert "3 needed" in err
    # Bad input: named, exit 2.
    (tmp_path / "junk").write_bytes(b"\xff\x00junk")
    code, _, err = await _cli(server, "receipt", str(tmp_path / "junk"), "-o", "x")
    assert code == 2
    assert "not a Receipt" in err
    code, _, err = await _cli(server, "receipt", str(receipt))
    assert code == 2
    assert "-o/--output" in err


def test_an_older_witnessed_checkpoint_is_found_within_a_bounded_walk(server, monkeypatch):
    from signoff.app.audit import receipt_proofs as server_side

    allowed, _ = _receipts(server)
    witnessed = _checkpoint(server)
    _cosign(server, witnessed)
    _more(server, 4)
    newest = _checkpoint(server)  # not co-signed yet
    assert newest.tree_size > witnessed.tree_size
    monkeypatch.setattr(server_side, "WINDOW", 2)
    monkeypatch.setattr(server_side, "WINDOWS", 100)
    assert _proof(server, allowed.receipt).checkpoint.tree_size == witnessed.tree_size
    # Fewer windows than the distance back to it: refused, saying how far it looked.
    monkeypatch.setattr(server_side, "WINDOWS", 1)
    err = _error(server, allowed.receipt)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "within the newest 2 entries" in err.details()
    assert f"the newest, seq {newest.seq}, has 0" in err.details()
    # Named by its tree size, it still serves.
    named = _proof(server, allowed.receipt, tree_size=witnessed.tree_size)
    assert named.checkpoint.seq == witnessed.seq
