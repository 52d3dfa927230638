"""The review state machine, without a server."""

from __future__ import annotations

import datetime as dt

import pytest
from google.protobuf import struct_pb2

from signoff import pb
from signoff.core.reviews import Actor, cancel, digest, expire, open_review, state_name, submit
from signoff.core.validate import Limits
from signoff.errors import FailedPrecondition, InvalidArgument, PermissionDenied

S = pb.review
T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
FINANCE = Actor("alice", frozenset({"reviewer:finance"}))
FINANCE2 = Actor("carol", frozenset({"reviewer:finance"}))
OTHER = Actor("dave", frozenset({"reviewer:comms"}))


def _review(approvals: int = 1, on_timeout: str = "deny") -> S.Review:
    req = pb.common.ActionRequest()
    req.action.name = "refund.issue"
    req.action.params.update({"amount": 750.0, "currency": "EUR"})
    req.principal.id = "bot"
    req.principal.on_behalf_of = "bob"
    d = pb.common.Decision(
        decision_id="d1",
        outcome=pb.common.OUTCOME_REQUIRE_REVIEW,
        reviewer_group="finance",
        reason="big",
        policy_version="sha256:x",
    )
    return open_review(
        review_id="r1",
        decision=d,
        shown=req,
        redacted_paths=[],
        approvals=approvals,
        timeout=dt.timedelta(hours=2),
        on_timeout=on_timeout,
        now=T0,
    )


def _params(**kv: object) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(kv)
    return s


def _submit(r, actor=FINANCE, verdict=S.VERDICT_APPROVE, params=None, version=None):
    return submit(r, actor, verdict, params, "", version or r.version, T0, Limits())


def test_open_review_is_pending_with_a_digest_and_deadline():
    r = _review()
    assert r.state == S.REVIEW_STATE_PENDING
    assert r.version == 1
    assert r.outcome == pb.common.OUTCOME_REQUIRE_REVIEW
    assert len(r.action_digest) == 64
    assert r.expires_at.ToDatetime(tzinfo=dt.UTC) == T0 + dt.timedelta(hours=2)


def test_approve_resolves_and_binds_the_original_action():
    ch = _submit(_review())
    assert ch.event == "review.approved"
    assert ch.review.state == S.REVIEW_STATE_APPROVED
    assert ch.review.outcome == pb.common.OUTCOME_AUTO_ALLOW
    assert ch.review.final_digest == ch.review.action_digest
    assert ch.review.version == 2
    assert ch.review.acts[0].reviewer == "alice"
    assert list(ch.review.acts[0].roles) == ["reviewer:finance"]


def test_modify_resolves_with_the_edited_params_and_their_digest():
    r = _review()
    ch = _submit(r, verdict=S.VERDICT_MODIFY, params=_params(amount=500, currency="EUR"))
    assert ch.review.state == S.REVIEW_STATE_MODIFIED
    assert ch.review.final_params["amount"] == 500
    assert ch.review.final_digest == digest(r.request, _params(amount=500, currency="EUR"))
    assert ch.review.final_digest != r.action_digest


def test_reject_denies():
    ch = _submit(_review(), verdict=S.VERDICT_REJECT)
    assert ch.review.state == S.REVIEW_STATE_REJECTED
    assert ch.review.outcome == pb.common.OUTCOME_DENY
    assert ch.review.final_digest == ""


def test_two_approvals_need_two_distinct_reviewers():
    r = _submit(_review(approvals=2)).review
    assert r.state == S.REVIEW_STATE_PENDING
    with pytest.raises(FailedPrecondition, match="alice already approved"):
        _submit(r)
    done = _submit(r, actor=FINANCE2).review
    assert done.state == S.REVIEW_STATE_APPROVED


def test_an_edit_restarts_the_count_of_approvals():
    r = _submit(_review(approvals=2)).review  # alice approves the original
    r = _submit(r, actor=FINANCE2, verdict=S.VERDICT_MODIFY, params=_params(amount=1)).review
    assert r.state == S.REVIEW_STATE_PENDING  # only carol approved the edited params
    r = _submit(r, actor=FINANCE).review
    assert r.state == S.REVIEW_STATE_MODIFIED


@pytest.mark.parametrize(
    ("actor", "error", "text"),
    [
        (OTHER, PermissionDenied, "reviewer:finance"),
        (Actor("bot", frozenset({"reviewer:finance"})), PermissionDenied, "separation"),
        (Actor("bob", frozenset({"reviewer:*"})), PermissionDenied, "separation"),
    ],
)
def test_who_may_not_review(actor, error, text):
    with pytest.raises(error, match=text):
        _submit(_review(), actor=actor)


def test_stale_version_is_refused_with_the_current_state():
    r = _submit(_review(approvals=2)).review
    with pytest.raises(FailedPrecondition, match="changed since you saw it") as err:
        _submit(r, actor=FINANCE2, version=1)
    assert err.value.current_state == "PENDING"


def test_missing_version_is_invalid():
    with pytest.raises(InvalidArgument) as err:
        submit(_review(), FINANCE, S.VERDICT_APPROVE, None, "", 0, T0, Limits())
    assert err.value.field == "expected_version"


@pytest.mark.parametrize(
    ("verdict", "params", "field"),
    [
        (S.VERDICT_MODIFY, None, "params"),
        (S.VERDICT_APPROVE, _params(amount=1), "params"),
        (S.VERDICT_UNSPECIFIED, None, "verdict"),
        (S.VERDICT_MODIFY, _params(blob="x" * 300_000), "params"),
    ],
)
def test_bad_submissions_name_the_field(verdict, params, field):
    with pytest.raises(InvalidArgument) as err:
        _submit(_review(), verdict=verdict, params=params)
    assert err.value.field == field


def test_resolved_reviews_are_immutable():
    done = _submit(_review()).review
    with pytest.raises(FailedPrecondition, match="is APPROVED") as err:
        _submit(done, actor=FINANCE2)
    assert err.value.current_state == "APPROVED"
    with pytest.raises(FailedPrecondition):
        cancel(done, Actor("bot", frozenset({"agent"})), "", T0)


def test_only_the_requester_or_an_admin_cancels():
    r = _review()
    with pytest.raises(PermissionDenied):
        cancel(r, FINANCE, "", T0)
    ch = cancel(r, Actor("bot", frozenset({"agent"})), "no longer needed", T0)
    assert ch.review.state == S.REVIEW_STATE_CANCELLED
    assert ch.review.outcome == pb.common.OUTCOME_DENY
    assert ch.event == "review.cancelled"


@pytest.mark.parametrize(
    ("on_timeout", "state", "outcome"),
    [
        ("deny", S.REVIEW_STATE_EXPIRED, pb.common.OUTCOME_DENY),
        ("allow", S.REVIEW_STATE_EXPIRED, pb.common.OUTCOME_AUTO_ALLOW),
    ],
)
def test_expiry_resolves_by_on_timeout(on_timeout, state, outcome):
    later = T0 + dt.timedelta(hours=2)
    ch = expire(_review(on_timeout=on_timeout), later)
    assert (ch.event, ch.review.state, ch.review.outcome) == ("review.expired", state, outcome)


def test_escalation_moves_the_review_with_a_new_deadline_once():
    later = T0 + dt.timedelta(hours=2)
    ch = expire(_review(on_timeout="escalate:finance-leads"), later)
    r = ch.review
    assert ch.event == "review.escalated"
    assert (state_name(r.state), r.reviewer_group) == ("PENDING", "finance-leads")
    assert list(r.escalated_from) == ["finance"]
    assert r.expires_at.ToDatetime(tzinfo=dt.UTC) == later + dt.timedelta(hours=2)
    final = expire(r, later + dt.timedelta(hours=2))
    assert final.review.state == S.REVIEW_STATE_EXPIRED


def test_expiry_before_the_deadline_is_refused():
    with pytest.raises(FailedPrecondition, match="not due"):
        expire(_review(), T0 + dt.timedelta(minutes=5))
