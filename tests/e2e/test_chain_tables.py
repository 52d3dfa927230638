"""Rows that decide are checked against the audit chain, on both backends: a reviews row
flipped in the database is never reported resolved (no receipt), a flipped decision is not
replayed, and `VerifyAudit` names the first row of reviews, decisions or audit_rules that
disagrees with the chain (grants: test_chain_grants.py).

The tampering is SQL on the database itself, under the triggers (dropped on SQLite,
disabled on PostgreSQL), as somebody holding the database file or its credentials would.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import grpc
import psycopg
import pytest

from signoff import pb
from signoff_client import Client, Verdict
from signoff_client._gen import audit_pb2_grpc, decision_pb2_grpc, review_pb2_grpc
from signoff_client.errors import SignoffError

from .conftest import ServerHandle
from .test_cli_audit import _cli

A, R = pb.audit, pb.review
ALLOW, REVIEW = pb.common.OUTCOME_AUTO_ALLOW, pb.common.OUTCOME_REQUIRE_REVIEW


def _tamper(server: ServerHandle, table: str, statement: str, *args: Any) -> None:
    """Run `statement` (placeholders %s) on the database with `table`'s triggers out of the way."""
    if server.backend == "sqlite":
        conn = sqlite3.connect(server.db_path)
        try:
            triggers = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (table,)
            ).fetchall()
            for (name,) in triggers:
                conn.execute(f"DROP TRIGGER {name}")
            conn.execute(statement.replace("%s", "?"), args)
            conn.commit()
        finally:
            conn.close()
    else:
        with psycopg.connect(server.db, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            conn.execute(statement, args)


def _verify(server: ServerHandle) -> A.VerifyAuditResponse:
    stub = audit_pb2_grpc.AuditServiceStub(server.channel())
    return stub.VerifyAudit(A.VerifyAuditRequest(), metadata=(("authorization", "Bearer ann"),))


def _refused(fn: Any, *args: Any, **kw: Any) -> tuple[grpc.StatusCode, str]:
    def run() -> None:
        result = fn(*args, **kw)
        if hasattr(result, "__next__"):
            list(result)  # a stream fails when read

    with pytest.raises(grpc.RpcError) as err:
        run()
    return err.value.code(), err.value.details()


def _stored(server: ServerHandle, review_id: str) -> R.Review:
    rec = server.call(server.running.app.store.get_review(review_id))
    return R.Review.FromString(rec.review)


def _forge_approval(server: ServerHandle, review_id: str, column_state: str) -> None:
    """Rewrite the review as an approval that would earn a receipt, without an audit entry."""
    r = _stored(server, review_id)
    r.state, r.outcome = R.REVIEW_STATE_APPROVED, ALLOW
    r.final_digest = r.action_digest
    if r.acts:
        r.acts[-1].verdict = R.VERDICT_APPROVE
    else:
        r.acts.add(reviewer="mallory", verdict=R.VERDICT_APPROVE)
    r.resolved_at.FromSeconds(r.created_at.ToSeconds() + 60)
    _tamper(
        server,
        "reviews",
        "UPDATE reviews SET state = %s, review = %s WHERE review_id = %s",
        column_state,
        r.SerializeToString(),
        review_id,
    )


# -- reviews ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["resolved row flipped", "pending row's message flipped"])
def test_a_flipped_review_row_is_never_reported_approved(server, case, caplog):
    with Client(server.target, token="bot") as bot:
        d = bot.evaluate(
            action="refund.issue", params={"amount": 750, "currency": "EUR"}, principal="bot"
        )
    assert d.review_id
    if case == "resolved row flipped":
        with Client(server.target, token="alice") as alice:
            alice.submit_review(d.review_id, Verdict.REJECT, expected_version=1, comment="no")
        _forge_approval(server, d.review_id, "APPROVED")
        field, listed = "state", R.REVIEW_STATE_APPROVED
    else:
        _forge_approval(server, d.review_id, "PENDING")  # the column still says pending
        field, listed = "review.state", R.REVIEW_STATE_PENDING

    caplog.set_level(logging.ERROR, logger="signoff.chain")
    stub = review_pb2_grpc.ReviewServiceStub(server.channel())
    md = (("authorization", "Bearer bot"),)
    for call, req in [
        (stub.GetReview, R.GetReviewRequest(review_id=d.review_id)),
        (stub.WatchReview, R.WatchReviewRequest(review_id=d.review_id)),
        (stub.ListReviews, R.ListReviewsRequest(states=[listed])),
    ]:
        code, details = _refused(call, req, metadata=md)
        assert code == grpc.StatusCode.DATA_LOSS, (call, details)
        assert f"review {d.review_id}: the stored review disagrees with the audit log" in details
    events = [r for r in caplog.records if r.getMessage() == "chain.mismatch"]
    assert events
    assert (events[0].table, events[0].key) == ("reviews", d.review_id)

    v = _verify(server)
    assert not v.ok
    assert v.problem.startswith(f"table mismatch: reviews row {d.review_id}: {field} is ")
    assert "the row was changed outside signoff" in v.problem


def test_the_agent_gets_no_approval_from_a_flipped_row(server):
    action = {"action": "refund.issue", "params": {"amount": 750, "currency": "EUR"}}
    with Client(server.target, token="bot") as bot:
        d = bot.evaluate(**action, principal="bot", request_id="r-9")
    with Client(server.target, token="alice") as alice:
        alice.submit_review(d.review_id, Verdict.REJECT, expected_version=1, comment="no")
    _forge_approval(server, d.review_id, "APPROVED")
    with Client(server.target, token="bot") as bot, pytest.raises(SignoffError) as err:
        bot.require(**action, principal="bot", request_id="r-9", timeout=10)
    assert err.value.code == grpc.StatusCode.DATA_LOSS
    assert d.review_id in err.value.message


def test_an_act_on_a_tampered_pending_review_is_refused(server):
    with Client(server.target, token="bot") as bot:
        d = bot.evaluate(
            action="refund.issue", params={"amount": 750, "currency": "EUR"}, principal="bot"
        )
    r = _stored(server, d.review_id)
    r.approvals_required = 1
    r.request.action.params["amount"] = 75  # what the reviewer would be shown and approve
    _tamper(
        server,
        "reviews",
        "UPDATE reviews SET review = %s WHERE review_id = %s",
        r.SerializeToString(),
        d.review_id,
    )
    stub = review_pb2_grpc.ReviewServiceStub(server.channel())
    req = R.SubmitReviewRequest(
        review_id=d.review_id, verdict=R.VERDICT_APPROVE, expected_version=1
    )
    code, details = _refused(stub.SubmitReview, req, metadata=(("authorization", "Bearer alice"),))
    assert code == grpc.StatusCode.DATA_LOSS
    assert f"review {d.review_id}" in details
    assert _stored(server, d.review_id).state == R.REVIEW_STATE_PENDING  # nothing was written


def test_a_changed_approver_in_an_approved_review_is_refused(server):
    # State, version and digests as recorded; only who approved differs (the receipt's
    # approvers): the digest of the whole stored review tells.
    with Client(server.target, token="bot") as bot:
        d = bot.evaluate(
            action="refund.issue", params={"amount": 750, "currency": "EUR"}, principal="bot"
        )
    with Client(server.target, token="alice") as alice:
        alice.submit_review(d.review_id, Verdict.APPROVE, expected_version=1)
        assert alice.get_review(d.review_id).receipt is not None
    r = _stored(server, d.review_id)
    r.acts[-1].reviewer = "bob"
    _tamper(
        server,
        "reviews",
        "UPDATE reviews SET review = %s WHERE review_id = %s",
        r.SerializeToString(),
        d.review_id,
    )
    stub = review_pb2_grpc.ReviewServiceStub(server.channel())
    req = R.GetReviewRequest(review_id=d.review_id)
    code, _ = _refused(stub.GetReview, req, metadata=(("authorization", "Bearer bot"),))
    assert code == grpc.StatusCode.DATA_LOSS
    v = _verify(server)
    assert v.problem.startswith(f"table mismatch: reviews row {d.review_id}: review (sha256) is ")


def test_a_resolved_review_rolled_back_to_pending_cannot_be_decided_again(server):
    with Client(server.target, token="bot") as bot:
        d = bot.evaluate(
            action="refund.issue", params={"amount": 750, "currency": "EUR"}, principal="bot"
        )
    pending = server.call(server.running.app.store.get_review(d.review_id))
    with Client(server.target, token="alice") as alice:
        alice.submit_review(d.review_id, Verdict.REJECT, expected_version=1, comment="no")
    # The row as it was before the rejection: pending at version 1, an act away from approval.
    _tamper(
        server,
        "reviews",
        "UPDATE reviews SET state = 'PENDING', version = 1, review = %s WHERE review_id = %s",
        pending.review,
        d.review_id,
    )
    stub = review_pb2_grpc.ReviewServiceStub(server.channel())
    req = R.SubmitReviewRequest(
        review_id=d.review_id, verdict=R.VERDICT_APPROVE, expected_version=1
    )
    code, details = _refused(stub.SubmitReview, req, metadata=(("authorization", "Bearer bob"),))
    assert code == grpc.StatusCode.DATA_LOSS, details
    v = _verify(server)
    assert v.problem.startswith(f"table mismatch: reviews row {d.review_id}: state is 'PENDING'")


# -- the rule index and decisions ----------------------------------------------------------------


def _entry_with_rules(server: ServerHandle) -> Any:
    entries = server.call(server.running.app.store.read_audit(1, 10_000))
    return next(e for e in entries if e.type == "decision" and e.rules)


def test_a_deleted_rule_index_row_is_named_by_verify(server):
    with Client(server.target, token="bot") as bot:
        bot.evaluate(action="refund.issue", params={"amount": 750}, principal="bot")
    e = _entry_with_rules(server)
    _tamper(
        server,
        "audit_rules",
        "DELETE FROM audit_rules WHERE seq = %s AND rule = %s",
        e.seq,
        e.rules[0],
    )
    v = _verify(server)
    assert not v.ok
    assert v.first_bad_seq == e.seq
    assert v.problem == (
        f"table mismatch: audit_rules row (rule {e.rules[0]!r}, seq {e.seq}): row is absent "
        f"in the row but a match in the audit log (seq {e.seq}): the row was changed outside "
        "signoff"
    )


def test_an_added_rule_index_row_is_named_by_verify(server):
    with Client(server.target, token="bot") as bot:
        bot.evaluate(action="refund.issue", params={"amount": 750}, principal="bot")
    e = _entry_with_rules(server)
    _tamper(
        server, "audit_rules", "INSERT INTO audit_rules (rule, seq) VALUES (%s, %s)", "zz", e.seq
    )
    v = _verify(server)
    assert not v.ok
    assert v.problem.startswith(
        f"table mismatch: audit_rules row (rule 'zz', seq {e.seq}): row is present"
    )


def test_a_flipped_decision_row_is_not_replayed_and_is_named_by_verify(server):
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    req = pb.common.ActionRequest(request_id="r-1")
    req.action.name = "refund.issue"
    req.action.params.update({"amount": 25_000})
    req.principal.id = "bot"
    md = (("authorization", "Bearer bot"),)
    d = stub.Evaluate(req, metadata=md)
    assert d.outcome == pb.common.OUTCOME_DENY
    flipped = pb.common.Decision()
    flipped.CopyFrom(d)
    flipped.outcome = ALLOW
    _tamper(
        server,
        "decisions",
        "UPDATE decisions SET outcome = 'OUTCOME_AUTO_ALLOW', decision = %s WHERE decision_id = %s",
        flipped.SerializeToString(),
        d.decision_id,
    )
    # The agent's retry would get the stored decision: it is refused instead.
    code, details = _refused(stub.Evaluate, req, metadata=md)
    assert code == grpc.StatusCode.DATA_LOSS
    assert f"decision {d.decision_id}: the stored decision disagrees with the audit log" in details
    v = _verify(server)
    assert not v.ok
    assert v.problem.startswith(
        f"table mismatch: decisions row {d.decision_id}: outcome is 'AUTO_ALLOW' in the row "
        "but 'DENY' in the audit log"
    )


# -- the command line --------------------------------------------------------------------------


async def test_the_cli_names_the_row_in_batches_and_exits_1(server):
    with Client(server.target, token="bot") as bot:
        d = bot.evaluate(
            action="refund.issue", params={"amount": 750, "currency": "EUR"}, principal="bot"
        )
    with Client(server.target, token="alice") as alice:
        alice.submit_review(d.review_id, Verdict.REJECT, expected_version=1, comment="no")
    for _ in range(3):  # a log longer than one batch: the rows are checked with the last one
        with Client(server.target, token="bot") as bot:
            bot.evaluate(action="refund.issue", params={"amount": 20}, principal="bot")
    code, out, _ = await _cli(server, "verify", "--batch", "2")
    assert (code, out.startswith("ok: ")) == (0, True), out
    _forge_approval(server, d.review_id, "APPROVED")
    code, out, _ = await _cli(server, "verify", "--batch", "2")
    assert code == 1
    assert out.startswith(
        f"NOT OK at seq 4: table mismatch: reviews row {d.review_id}: state is 'APPROVED' in "
        "the row but 'REJECTED' in the audit log (seq 4)"
    ), out
