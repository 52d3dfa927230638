"""GetInclusionProof and GetConsistencyProof through the real server, checked by the Python
client alone (signoff_client.audit_proofs): version 2 checkpoints, proofs that verify against
them, bad sizes refused with the field named, auditors only."""

from __future__ import annotations

import datetime as dt
import sqlite3

import grpc
import pytest

from signoff import pb
from signoff.core.audit import AuditRecord, format_time
from signoff_client import audit_proofs
from signoff_client._gen import audit_pb2_grpc

from .conftest import ServerHandle, write_tokens
from .test_audit import _md, _traffic

A = pb.audit


def _audit(server: ServerHandle) -> audit_pb2_grpc.AuditServiceStub:
    return audit_pb2_grpc.AuditServiceStub(server.channel())


def _checkpoint(server: ServerHandle, auditor: str = "ann") -> A.Checkpoint:
    server.call(server.running.audit.checkpoint_if_due(1, dt.timedelta(0)))
    resp = _audit(server).GetCheckpoints(A.GetCheckpointsRequest(), metadata=_md(auditor))
    return resp.checkpoints[-1]


def _key(server: ServerHandle) -> str:
    resp = _audit(server).GetCheckpoints(A.GetCheckpointsRequest(), metadata=_md("ann"))
    return resp.public_key_pem


def test_proofs_verify_against_signed_tree_heads_with_the_client_alone(server):
    _traffic(server, 4)
    older = _checkpoint(server)
    _traffic(server, 7)
    newer = _checkpoint(server)
    key = _key(server)
    for cp in (older, newer):
        assert cp.tree_size == cp.seq
        assert len(cp.root_hash) == 64
        audit_proofs.verify_checkpoint(cp, key)
    stub = _audit(server)
    for seq in (1, older.seq, newer.seq):
        resp = stub.GetInclusionProof(
            A.GetInclusionProofRequest(seq=seq, tree_size=newer.tree_size), metadata=_md("ann")
        )
        fields = audit_proofs.verify_inclusion(resp, newer)
        assert fields["seq"] == seq
        assert fields["hash"] == resp.entry.hash
        assert resp.root_hash == newer.root_hash
    resp = stub.GetConsistencyProof(
        A.GetConsistencyProofRequest(first=older.tree_size, second=newer.tree_size),
        metadata=_md("ann"),
    )
    audit_proofs.verify_consistency(resp, older, newer)
    same = stub.GetConsistencyProof(
        A.GetConsistencyProofRequest(first=newer.tree_size, second=newer.tree_size),
        metadata=_md("ann"),
    )
    assert list(same.proof) == []
    audit_proofs.verify_consistency(same, newer, newer)


def test_a_forged_checkpoint_or_proof_fails_in_the_client(server):
    _traffic(server, 6)
    cp = _checkpoint(server)
    key = _key(server)
    forged = A.Checkpoint()
    forged.CopyFrom(cp)
    forged.root_hash = "ab" * 32
    with pytest.raises(audit_proofs.ProofError, match="signature does not verify"):
        audit_proofs.verify_checkpoint(forged, key)
    resp = _audit(server).GetInclusionProof(
        A.GetInclusionProofRequest(seq=2, tree_size=cp.tree_size), metadata=_md("ann")
    )
    with pytest.raises(audit_proofs.ProofError, match="entry seq 2"):
        audit_proofs.verify_inclusion(resp, forged)
    bad = A.GetInclusionProofResponse()
    bad.CopyFrom(resp)
    bad.leaf = resp.leaf.replace(b'"seq":2', b'"seq":2 ')
    with pytest.raises(audit_proofs.ProofError):
        audit_proofs.verify_inclusion(bad, cp)
    bad.CopyFrom(resp)
    bad.proof[0] = bytes(32)
    with pytest.raises(audit_proofs.ProofError, match="another root"):
        audit_proofs.verify_inclusion(bad, cp)


@pytest.mark.parametrize(
    ("call", "fields", "field", "words"),
    [
        ("GetInclusionProof", {"seq": 1, "tree_size": 0}, "tree_size", "at least 1"),
        ("GetInclusionProof", {"seq": 1, "tree_size": 999}, "tree_size", "beyond the newest"),
        ("GetInclusionProof", {"seq": 0, "tree_size": 3}, "seq", "not an entry"),
        ("GetInclusionProof", {"seq": 4, "tree_size": 3}, "seq", "not an entry"),
        ("GetConsistencyProof", {"first": 0, "second": 3}, "first", "at least 1"),
        ("GetConsistencyProof", {"first": 3, "second": 2}, "first", "greater than second"),
        ("GetConsistencyProof", {"first": 1, "second": 999}, "second", "beyond the newest"),
        ("GetConsistencyProof", {"first": 1, "second": 0}, "second", "at least 1"),
    ],
)
def test_bad_sizes_are_refused_with_the_field_named(server, call, fields, field, words):
    _traffic(server, 4)
    _checkpoint(server)
    stub = _audit(server)
    message = (
        A.GetInclusionProofRequest if call == "GetInclusionProof" else A.GetConsistencyProofRequest
    )
    with pytest.raises(grpc.RpcError) as info:
        getattr(stub, call)(message(**fields), metadata=_md("ann"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith(f"{field}:")
    assert words in info.value.details()


def test_proofs_are_for_auditors_only(make_server, tmp_path):
    people = {"bot-token": ("bot", ["agent"]), "ann-token": ("ann", ["auditor"])}
    server = make_server(auth={"tokens_file": write_tokens(tmp_path, people)})
    cp = _checkpoint(server, "ann-token")  # the server's own entries (policy.loaded)
    stub = _audit(server)
    for call, req in (
        ("GetInclusionProof", A.GetInclusionProofRequest(seq=1, tree_size=cp.tree_size)),
        ("GetConsistencyProof", A.GetConsistencyProofRequest(first=1, second=cp.tree_size)),
    ):
        with pytest.raises(grpc.RpcError) as info:
            getattr(stub, call)(req, metadata=_md("bot-token"))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "auditor" in info.value.details()
        assert getattr(stub, call)(req, metadata=_md("ann-token")).ByteSize()


def test_a_version_1_checkpoint_still_verifies_after_version_2_ones(server):
    # A checkpoint stored before the tree existed (version 1) sits before version 2 ones:
    # VerifyAudit and an offline export verification accept both.
    _traffic(server, 3)
    store, signer = server.running.audit.store, server.running.audit.signer
    seq, head = server.call(store.audit_head())
    v1 = signer.sign(seq, head, dt.datetime.now(dt.UTC))
    assert v1.version == 1
    server.call(store.add_checkpoint(v1))
    later = AuditRecord(type="policy.loaded", time=dt.datetime.now(dt.UTC), actor="signoff")
    server.call(store.append([later, later]))
    v2 = _checkpoint(server)
    assert v2.root_hash
    resp = _audit(server).VerifyAudit(A.VerifyAuditRequest(), metadata=_md("ann"))
    assert resp.ok, resp
    cps = _audit(server).GetCheckpoints(A.GetCheckpointsRequest(), metadata=_md("ann"))
    versions = [2 if cp.root_hash else 1 for cp in cps.checkpoints]
    assert versions[-2:] == [1, 2]
    assert resp.checkpoints_verified == len(versions)
    from signoff.export import verify_export

    from .test_audit import _export, _public_key

    report = verify_export(_export(server).splitlines(keepends=True), _public_key(server))
    assert report.ok, report
    assert report.checkpoints_verified == len(versions)
    assert report.tree_heads_verified == versions.count(2)


def test_verify_audit_recomputes_the_tree_and_catches_a_signed_root_that_is_not_it(signoff):
    # Whoever holds the key and the database could store a checkpoint whose root is not the
    # log's tree (the store itself refuses to): VerifyAudit from seq 1 recomputes the tree.
    server = signoff
    _traffic(server, 4)
    good = _checkpoint(server)
    later = AuditRecord(type="policy.loaded", time=dt.datetime.now(dt.UTC), actor="signoff")
    server.call(server.running.audit.store.append([later]))
    store, signer = server.running.audit.store, server.running.audit.signer
    seq, head = server.call(store.audit_head())
    forged = signer.sign(seq, head, dt.datetime.now(dt.UTC), "ab" * 32)
    with sqlite3.connect(server.db_path) as conn:
        conn.execute(
            "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
            (seq, head, format_time(forged.time), forged.key_id, forged.signature, seq, "ab" * 32),
        )
    resp = _audit(server).VerifyAudit(A.VerifyAuditRequest(), metadata=_md("ann"))
    assert not resp.ok
    assert resp.first_bad_seq == seq > good.seq
    assert "the tree head does not match the log" in resp.problem
    # A range that does not start at seq 1 cannot show the tree: its signature still counts.
    resp = _audit(server).VerifyAudit(A.VerifyAuditRequest(from_seq=2), metadata=_md("ann"))
    assert resp.ok, resp


def test_a_witness_token_cosigns_over_grpc_and_auditors_see_it(make_server, tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from signoff.app.audit.witness import cosignature_proto
    from signoff.core import checkpoints as core_checkpoints
    from signoff.core import witness as core_witness
    from signoff.core.wire import timestamp

    people = {
        "wit-token": ("wit", ["witness"]),
        "ann-token": ("ann", ["auditor"]),
        "bot-token": ("bot", ["agent"]),
    }
    server = make_server(auth={"tokens_file": write_tokens(tmp_path, people)})
    cp = _checkpoint(server, "wit-token")  # a witness reads checkpoints
    core_cp = core_checkpoints.make_checkpoint(
        seq=cp.seq, head_hash=cp.head_hash, time=timestamp(cp.time, "time"), key_id=cp.key_id,
        signature=cp.signature, tree_size=cp.tree_size, root_hash=cp.root_hash,
    )  # fmt: skip
    key = Ed25519PrivateKey.generate()
    cs = core_witness.cosign(key, core_cp, dt.datetime.now(dt.UTC))
    req = A.AddCosignatureRequest(
        seq=cp.seq,
        cosignature=cosignature_proto(cs),
        public_key_pem=core_checkpoints.public_pem(key).decode(),
    )
    stub = _audit(server)
    for token in ("ann-token", "bot-token"):
        with pytest.raises(grpc.RpcError) as info:
            stub.AddCosignature(req, metadata=_md(token))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert stub.AddCosignature(req, metadata=_md("wit-token")).cosignatures == 1
    missing = A.AddCosignatureRequest()
    missing.CopyFrom(req)
    missing.seq = cp.seq + 100
    with pytest.raises(grpc.RpcError) as info:
        stub.AddCosignature(missing, metadata=_md("wit-token"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    forged = A.AddCosignatureRequest()
    forged.CopyFrom(req)
    forged.cosignature.root_hash = "ab" * 32
    with pytest.raises(grpc.RpcError) as info:
        stub.AddCosignature(forged, metadata=_md("wit-token"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    got = stub.GetCheckpoints(A.GetCheckpointsRequest(), metadata=_md("ann-token"))
    [mine] = [c for c in got.checkpoints if c.seq == cp.seq]
    [back] = mine.cosignatures
    assert back.key_id == core_checkpoints.key_id(key)
    assert back.signature == cs.signature
    with pytest.raises(grpc.RpcError) as info:  # a witness sees no entry content
        stub.QueryAudit(A.QueryAuditRequest(), metadata=_md("wit-token"))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
