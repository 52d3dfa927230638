"""AuditService through the real server: query, export, verify, checkpoints, tampering."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3

import grpc
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from signoff import pb
from signoff.core.audit import entry_hash, parse_time
from signoff.export import verify_export
from signoff_client._gen import audit_pb2_grpc, decision_pb2_grpc, review_pb2_grpc

from .conftest import ServerHandle

A = pb.audit
CARD = "4111111111111111"


def _md(who: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {who}"),)


def _traffic(server: ServerHandle, n: int = 6) -> list[pb.common.Decision]:
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    out = []
    for i in range(n):
        req = pb.common.ActionRequest(request_id=f"req-{i}")
        req.action.name = ("refund.issue", "email.send")[i % 2]
        req.action.params.update({"amount": (100, 750, 20_000)[i % 3]})
        if req.action.name == "refund.issue":  # the refunds policy redacts card_number
            req.action.params["card_number"] = CARD
        req.principal.id = f"bot-{i % 2}"
        out.append(stub.Evaluate(req, metadata=_md(req.principal.id)))
    review_id = next((d.review_id for d in out if d.review_id), "")
    if not review_id:
        return out
    review_pb2_grpc.ReviewServiceStub(server.channel()).SubmitReview(
        pb.review.SubmitReviewRequest(
            review_id=review_id, verdict=pb.review.VERDICT_APPROVE, expected_version=1
        ),
        metadata=_md("alice"),
    )
    return out


def _audit(server: ServerHandle) -> audit_pb2_grpc.AuditServiceStub:
    return audit_pb2_grpc.AuditServiceStub(server.channel())


def _query(server: ServerHandle, **kw) -> list[A.AuditEntry]:
    page_size = kw.pop("page_size", 100)
    descending = kw.pop("descending", False)
    req = A.QueryAuditRequest(
        filter=A.AuditFilter(**kw), page_size=page_size, descending=descending
    )
    return list(_audit(server).QueryAudit(req, metadata=_md("ann")).entries)


def _error(fn, *args, **kw) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        fn(*args, **kw)
    return err.value


@pytest.mark.parametrize(
    ("filters", "check"),
    [
        ({"types": ["decision"]}, lambda e: e.type == "decision"),
        ({"action": "refund.*"}, lambda e: e.action_name == "refund.issue"),
        ({"outcomes": [pb.common.OUTCOME_DENY]}, lambda e: e.outcome == pb.common.OUTCOME_DENY),
        ({"principal": "bot-1"}, lambda e: json.loads(e.payload_json)),
        ({"reviewer": "alice"}, lambda e: e.type == "review.approved"),
        ({"reviewer_group": "finance"}, lambda e: "finance" in e.payload_json),
        ({"rule": "large-refund"}, lambda e: "large-refund" in e.payload_json),
        ({"review_state": "APPROVED"}, lambda e: e.type == "review.approved"),
        ({"request_id": "req-1"}, lambda e: e.request_id == "req-1"),
    ],
)
def test_each_filter_selects_only_matching_entries(server, filters, check):
    _traffic(server)
    entries = _query(server, **filters)
    assert entries
    assert all(check(e) for e in entries)
    assert len(entries) < len(_query(server))


def test_decision_and_review_ids_and_policy_version_filter(server):
    d = next(d for d in _traffic(server) if d.review_id)
    by_decision = _query(server, decision_id=d.decision_id)
    assert [e.type for e in by_decision] == ["decision", "review.opened", "review.approved"]
    by_review = _query(server, review_id=d.review_id)
    assert [e.type for e in by_review] == ["review.opened", "review.approved"]
    assert _query(server, policy_version=d.policy_version)


def test_descending_and_cursor_pages_stay_correct_while_appending(server):
    _traffic(server)
    stub, seen, token = _audit(server), [], ""
    while True:
        req = A.QueryAuditRequest(page_size=3, page_token=token)
        page = stub.QueryAudit(req, metadata=_md("ann"))
        seen += [e.seq for e in page.entries]
        _traffic(server, 1) if len(seen) == 3 else None  # appended between pages
        token = page.next_page_token
        if not token:
            break
    assert seen == list(range(1, len(seen) + 1))
    newest = _query(server, descending=True, page_size=2)
    assert newest[0].seq > newest[1].seq


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (A.QueryAuditRequest(page_token="garbage"), "page_token"),
        (A.QueryAuditRequest(filter=A.AuditFilter(types=["nope"])), "filter.types"),
        (A.QueryAuditRequest(filter=A.AuditFilter(review_state="MAYBE")), "filter.review_state"),
        (A.QueryAuditRequest(page_size=100_000), "page_size"),
        (
            A.QueryAuditRequest(
                filter=A.AuditFilter(since={"seconds": 2_000}, until={"seconds": 1_000})
            ),
            "filter.until",
        ),
    ],
)
def test_bad_queries_name_the_field(server, request_, field):
    err = _error(_audit(server).QueryAudit, request_, metadata=_md("ann"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(f"{field}:")


def test_a_filter_on_an_unknown_field_is_refused(server):
    # Field 99 of AuditFilter, as a newer or confused client would send it.
    raw_filter = bytes([0x9A, 0x06, 0x01, 0x78])  # tag (99 << 3 | 2), length 1, "x"
    raw = bytes([0x0A, len(raw_filter)]) + raw_filter
    call = server.channel().unary_unary("/signoff.v1.AuditService/QueryAudit")
    err = _error(call, raw, metadata=_md("ann"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown field" in err.details()


def test_a_cursor_from_another_filter_is_refused(server):
    _traffic(server)
    page = _audit(server).QueryAudit(A.QueryAuditRequest(page_size=2), metadata=_md("ann"))
    other = A.QueryAuditRequest(
        filter=A.AuditFilter(types=["decision"]), page_token=page.next_page_token
    )
    err = _error(_audit(server).QueryAudit, other, metadata=_md("ann"))
    assert "another filter" in err.details()


def _export(server: ServerHandle, **kw) -> bytes:
    req = A.ExportAuditRequest(**kw)
    return b"".join(c.data for c in _audit(server).ExportAudit(req, metadata=_md("ann")))


def _public_key(server: ServerHandle):
    resp = _audit(server).GetCheckpoints(A.GetCheckpointsRequest(), metadata=_md("ann"))
    return load_pem_public_key(resp.public_key_pem.encode())


def test_export_verifies_offline_with_the_public_key(server):
    _traffic(server)
    server.call(server.running.audit.checkpoint_if_due(1, dt.timedelta(0)))
    data = _export(server)
    report = verify_export(data.splitlines(keepends=True), _public_key(server))
    assert report.ok, report
    assert report.checkpoints_verified >= 1
    lines = data.splitlines()
    assert b'"end"' in lines[-1]
    csv = _export(server, format=A.EXPORT_FORMAT_CSV).decode()
    assert csv.splitlines()[0].startswith("seq,")


def test_truncated_export_is_detected(server):
    _traffic(server)
    lines = _export(server).splitlines(keepends=True)
    report = verify_export(lines[:-3], _public_key(server))
    assert not report.ok
    assert report.problem == "truncated"


def test_secrets_in_redacted_paths_never_reach_the_database(server):
    _traffic(server)
    data = _export(server) + _export(server, format=A.EXPORT_FORMAT_CSV)
    server.call(server.running.stop(0))
    raw = b"".join(p.read_bytes() for p in server.db_path.parent.glob("signoff.db*"))
    assert CARD.encode() not in raw
    assert CARD.encode() not in data


def _tamper(server: ServerHandle, *sql: str) -> None:
    with sqlite3.connect(server.db_path) as conn:
        for trigger in ("audit_no_update", "audit_no_delete", "audit_chain_insert"):
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        for statement in sql:
            conn.execute(statement)


def test_an_export_missing_rows_is_data_loss_naming_them(server):
    _traffic(server)
    assert _export(server).count(b"\n") > 6  # intact: the whole log exports
    _tamper(server, "DELETE FROM audit WHERE seq = 3")
    err = _error(_export, server)
    assert err.code() == grpc.StatusCode.DATA_LOSS
    assert err.details() == (
        "the audit log is missing seq 3 (seq 4 follows 2); entries were deleted from the "
        "database: run `signoff audit verify`"
    )
    _tamper(server, "DELETE FROM audit WHERE seq IN (4, 5)")
    err = _error(_export, server)
    assert (err.code(), err.details()[:46]) == (
        grpc.StatusCode.DATA_LOSS,
        "the audit log is missing seq 3 to 5 (seq 6 fol",
    )
    # A filtered export selects entries with gaps between them by design.
    assert _export(server, filter=A.AuditFilter(types=["decision"]))


def _verify(server: ServerHandle, **kw) -> A.VerifyAuditResponse:
    return _audit(server).VerifyAudit(A.VerifyAuditRequest(**kw), metadata=_md("ann"))


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        (
            ["UPDATE audit SET payload = replace(payload, 'rule', 'Rule') WHERE seq = 3"],
            "changed",
        ),
        (["DELETE FROM audit WHERE seq = 4"], "missing"),
        (
            [
                "UPDATE audit SET seq = 1000000 WHERE seq = 3",
                "UPDATE audit SET seq = 3 WHERE seq = 4",
                "UPDATE audit SET seq = 4 WHERE seq = 1000000",
            ],
            "",  # a swap breaks the links: reported as changed or reordered
        ),
    ],
)
def test_verify_finds_the_first_bad_entry(server, sql, problem):
    _traffic(server)
    assert _verify(server).ok
    _tamper(server, *sql)
    result = _verify(server)
    assert not result.ok
    assert result.first_bad_seq in (3, 4)
    assert result.problem.startswith(problem)


def test_truncated_tail_is_caught_by_a_checkpoint(server):
    _traffic(server)
    server.call(server.running.audit.checkpoint_if_due(1, dt.timedelta(0)))
    head = _verify(server).head_seq
    _tamper(server, f"DELETE FROM audit WHERE seq > {head - 2}")
    result = _verify(server)
    assert not result.ok
    assert result.problem.startswith("truncated")


def test_a_rewritten_chain_with_recomputed_hashes_is_caught_by_checkpoints(server):
    _traffic(server)
    server.call(server.running.audit.checkpoint_if_due(1, dt.timedelta(0)))
    entries = server.call(server.running.app.store.read_audit(1, 10_000))
    # The attacker edits entry 2 and recomputes every hash after it: the chain is consistent.
    prev = entries[0].hash
    rewrites = []
    for e in entries[1:]:
        payload = e.payload_json.replace("refund", "refunX") if e.seq == 2 else e.payload_json
        forged = dataclasses.replace(e, payload=json.loads(payload))
        h = entry_hash(forged, seq=e.seq, prev_hash=prev)
        quoted = forged.payload_json.replace("'", "''")
        rewrites.append(
            f"UPDATE audit SET payload = '{quoted}', prev_hash = '{prev}', hash = '{h}' "
            f"WHERE seq = {e.seq}"
        )
        prev = h
    _tamper(server, *rewrites)
    result = _verify(server)
    assert not result.ok
    assert result.problem.startswith("checkpoint mismatch")


def test_verify_from_the_last_checkpoint(server):
    _traffic(server)
    server.call(server.running.audit.checkpoint_if_due(1, dt.timedelta(0)))
    _traffic(server, 2)
    result = _verify(server, from_last_checkpoint=True)
    assert result.ok
    assert result.from_seq > 1
    assert result.entries_checked < result.head_seq


def test_export_interrupted_halfway_is_an_error_not_a_short_file(server):
    _traffic(server, 600)
    # Without BDP probing the HTTP/2 window stays at 64 KiB, so most of the export is still
    # on the server (waiting on flow control) when it dies.
    channel = grpc.insecure_channel(server.target, options=[("grpc.http2.bdp_probe", 0)])
    stream = audit_pb2_grpc.AuditServiceStub(channel).ExportAudit(
        A.ExportAuditRequest(), metadata=_md("ann")
    )
    first = next(stream)
    assert first.data
    server.call(server.running.stop(0))
    with pytest.raises(grpc.RpcError):
        for _ in stream:
            pass


def test_checkpoint_times_are_stored(server):
    _traffic(server)
    cp = server.call(server.running.audit.checkpoint_if_due(1, dt.timedelta(0)))
    resp = _audit(server).GetCheckpoints(A.GetCheckpointsRequest(), metadata=_md("ann"))
    assert resp.checkpoints[-1].seq == cp.seq
    assert parse_time(cp.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")) == cp.time
