"""A checkpoint counts only if a trusted key signed it: VerifyAudit through the real server,
on SQLite and PostgreSQL, against someone who can write the database (a rewritten chain with
a checkpoint of their own), and key rotation with `audit.trusted_keys`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff import pb
from signoff.core.audit import entry_hash
from signoff.core.checkpoints import key_id, load_or_create_key, public_pem, sign
from signoff.store.base import Checkpoint
from signoff_client._gen import audit_pb2_grpc, decision_pb2_grpc

from .conftest import MakeServer, ServerHandle

A = pb.audit
MADE_UP = "0123456789abcdef"
JUNK = "AAAA" * 21 + "AA=="  # base64 of 64 zero bytes: well formed, signs nothing


def _md(who: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {who}"),)


def _traffic(server: ServerHandle) -> None:
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    for i, amount in enumerate((100, 20_000, 30)):  # allow, deny, allow
        req = pb.common.ActionRequest(request_id=f"keys-{i}-{amount}")
        req.action.name = "refund.issue"
        req.action.params.update({"amount": amount, "currency": "EUR"})
        req.principal.id = "bot"
        stub.Evaluate(req, metadata=_md("bot"))


def _verify(server: ServerHandle, **kw: Any) -> A.VerifyAuditResponse:
    stub = audit_pb2_grpc.AuditServiceStub(server.channel())
    return stub.VerifyAudit(A.VerifyAuditRequest(**kw), metadata=_md("ann"))


def _checkpoint(server: ServerHandle) -> Checkpoint:
    cp = server.call(server.running.audit.checkpoint_if_due(1, dt.timedelta(0)))
    assert cp is not None
    return cp


def _head(server: ServerHandle) -> tuple[int, str]:
    return server.call(server.running.app.store.audit_head())


def _plant(server: ServerHandle, cp: Checkpoint) -> None:
    """Store a checkpoint as someone with write access to the database could."""
    server.call(server.running.app.store.add_checkpoint(cp))


def _forged(seq: int, head_hash: str, kid: str = MADE_UP, signature: str = JUNK) -> Checkpoint:
    when = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    return Checkpoint(seq=seq, head_hash=head_hash, time=when, key_id=kid, signature=signature)


def _execute(server: ServerHandle, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Run SQL on the server's database with its append-only guards off."""
    if server.backend == "sqlite":
        with sqlite3.connect(server.db_path) as conn:
            for trigger in ("audit_no_update", "audit_no_delete", "audit_chain_insert"):
                conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
            for sql, params in statements:
                conn.execute(sql, params)
        return
    import psycopg

    with psycopg.connect(server.db, autocommit=True) as conn:
        conn.execute("ALTER TABLE audit DISABLE TRIGGER ALL")  # the guards and the FKs
        for sql, params in statements:
            conn.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]


def _rewrite_deny_as_allow(server: ServerHandle) -> int:
    """Turn the DENY decision into AUTO_ALLOW and recompute every hash from it on: the chain
    is consistent again. Returns the rewritten seq."""
    entries = server.call(server.running.app.store.read_audit(1, 10_000))
    at = next(e.seq for e in entries if e.outcome == "DENY")
    prev = entries[at - 2].hash
    statements = []
    for e in entries[at - 1 :]:
        forged = dataclasses.replace(e, outcome="AUTO_ALLOW") if e.seq == at else e
        h = entry_hash(forged, seq=e.seq, prev_hash=prev)
        statements.append(
            (
                "UPDATE audit SET outcome = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (forged.outcome, prev, h, e.seq),
            )
        )
        prev = h
    # The decisions row too, as a thorough forger would: the tables are checked against the
    # chain (docs/audit-integrity.md), so only the checkpoint is left to tell.
    denied = entries[at - 1].decision_id
    d = pb.common.Decision.FromString(_decision_blob(server, denied))
    d.outcome = pb.common.OUTCOME_AUTO_ALLOW
    statements.append(
        (
            "UPDATE decisions SET outcome = ?, decision = ? WHERE decision_id = ?",
            ("OUTCOME_AUTO_ALLOW", d.SerializeToString(), denied),
        )
    )
    _execute(server, statements)
    assert _verify(server).ok  # without a checkpoint, a consistent rewrite goes unnoticed
    return at


def _decision_blob(server: ServerHandle, decision_id: str) -> bytes:
    sql = "SELECT decision FROM decisions WHERE decision_id = ?"
    if server.backend == "sqlite":
        with sqlite3.connect(server.db_path) as conn:
            return bytes(conn.execute(sql, (decision_id,)).fetchone()[0])
    import psycopg

    with psycopg.connect(server.db) as conn:
        row = conn.execute(sql.replace("?", "%s"), (decision_id,)).fetchone()  # type: ignore[arg-type]
        assert row is not None
        return bytes(row[0])


def _untrusted(seq: int, kid: str) -> str:
    return (
        f"bad signature: checkpoint at seq {seq} is signed by key {kid}, which is not a trusted key"
    )


def test_a_rewritten_chain_with_a_made_up_key_id_and_junk_signature_fails(server):
    _traffic(server)
    _rewrite_deny_as_allow(server)
    seq, head = _head(server)
    _plant(server, _forged(seq, head))
    result = _verify(server)
    assert not result.ok
    assert result.first_bad_seq == seq
    assert result.problem.startswith(_untrusted(seq, MADE_UP)), result.problem


def test_a_chain_re_signed_with_a_well_formed_untrusted_key_fails(server):
    _traffic(server)
    _rewrite_deny_as_allow(server)
    seq, head = _head(server)
    other = Ed25519PrivateKey.generate()
    _plant(server, sign(other, seq, head, dt.datetime.now(dt.UTC)))
    result = _verify(server)
    assert (result.ok, result.first_bad_seq) == (False, seq)
    assert result.problem.startswith(_untrusted(seq, key_id(other))), result.problem


def test_a_junk_signature_under_the_trusted_key_id_fails(server):
    _traffic(server)
    seq, head = _head(server)
    kid = server.running.audit.signer.key_id
    _plant(server, _forged(seq, head, kid=kid))
    result = _verify(server)
    assert (result.ok, result.first_bad_seq) == (False, seq)
    assert result.problem == (
        f"bad signature: checkpoint at seq {seq}: the signature does not verify with trusted "
        f"key {kid} (forged or altered)"
    )


def test_a_forged_checkpoint_past_the_end_of_the_log_is_a_bad_signature_not_a_cut(server):
    _traffic(server)
    seq, head = _head(server)
    _plant(server, _forged(seq, head))
    _execute(server, [("DELETE FROM audit WHERE seq >= ?", (seq - 1,))])
    result = _verify(server)
    assert (result.ok, result.first_bad_seq) == (False, seq)
    assert result.problem.startswith(_untrusted(seq, MADE_UP)), result.problem


def test_a_real_checkpoint_verifies(server):
    _traffic(server)
    _checkpoint(server)
    result = _verify(server)
    assert result.ok, result.problem
    assert result.checkpoints_verified >= 1


def _key_files(tmp_path: Path, name: str) -> tuple[Path, Path]:
    private = tmp_path / f"{name}.pem"
    key = load_or_create_key(private, create=True)
    public = tmp_path / f"{name}.pub"
    public.write_bytes(public_pem(key))
    return private, public


def _untrusted_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "audit.untrusted_checkpoint"]


def test_after_a_rotation_old_checkpoints_verify_only_with_the_old_key_trusted(
    make_server: MakeServer, backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    old, old_pub = _key_files(tmp_path, "old")
    new, _ = _key_files(tmp_path, "new")
    first = make_server(backend=backend, audit={"signing_key": old})
    _traffic(first)
    old_cp = _checkpoint(first)
    first.call(first.running.stop(0))

    rotated = make_server(db=first.db, audit={"signing_key": new, "trusted_keys": [old_pub]})
    assert not _untrusted_warnings(caplog)
    _traffic(rotated)
    new_cp = _checkpoint(rotated)
    assert old_cp.key_id != new_cp.key_id
    result = _verify(rotated)
    assert result.ok, result.problem
    assert result.checkpoints_verified >= 2

    forgetful = make_server(db=first.db, audit={"signing_key": new})
    earliest = forgetful.call(forgetful.running.app.store.checkpoints())[0]
    assert earliest.key_id == old_cp.key_id
    result = _verify(forgetful)
    assert (result.ok, result.first_bad_seq) == (False, earliest.seq)
    assert result.problem.startswith(_untrusted(earliest.seq, old_cp.key_id)), result.problem
    # A server with a key of its own (a replica set up wrongly, a lost key) says so at start.
    assert not _untrusted_warnings(caplog)
    make_server(db=first.db, audit={"signing_key": tmp_path / "third.pem", "create_key": True})
    [warning] = _untrusted_warnings(caplog)
    assert warning.key_id == new_cp.key_id  # type: ignore[attr-defined]
