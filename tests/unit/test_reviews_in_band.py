"""In-band settling (a rule's `in_band: requester`): who may, which acts, and every other
separation-of-duties path staying shut."""

from __future__ import annotations

import datetime as dt

import pytest
from google.protobuf import struct_pb2

from signoff import pb
from signoff.app.reviews.records import audit_record
from signoff.core.reviews import Actor, in_band_requester, open_review, submit
from signoff.core.validate import Limits
from signoff.errors import FailedPrecondition, PermissionDenied

S = pb.review
T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
BOB = Actor("bob", frozenset({"user"}))  # the person the agent acts for
BOB_REVIEWER = Actor("bob", frozenset({"reviewer:finance"}))  # ... who also reviews
AGENT = Actor("bot", frozenset({"agent"}))
ALICE = Actor("alice", frozenset({"reviewer:finance"}))


def _review(
    in_band: str = "requester",
    approvals: int = 1,
    on_behalf_of: str = "bob",
    claimed: str = "bob",  # the agent's word, kept verbatim beside the vouched fact
) -> S.Review:
    req = pb.common.ActionRequest()
    req.action.name = "refund.issue"
    req.action.params.update({"amount": 750.0})
    req.principal.id = "bot"
    req.principal.on_behalf_of = on_behalf_of
    req.principal.claimed.on_behalf_of = claimed
    d = pb.common.Decision(
        decision_id="d1",
        outcome=pb.common.OUTCOME_REQUIRE_REVIEW,
        reviewer_group="finance",
        reason="big",
    )
    return open_review(
        review_id="r1",
        decision=d,
        shown=req,
        redacted_paths=[],
        approvals=approvals,
        timeout=dt.timedelta(hours=1),
        on_timeout="deny",
        now=T0,
        in_band=in_band,
    )


def _act(r, actor, verdict=S.VERDICT_APPROVE, params=None, in_band_ok=True, comment=""):
    return submit(
        r, actor, verdict, params, comment, r.version, T0, Limits(), in_band_ok=in_band_ok
    )


@pytest.mark.parametrize("actor", [BOB, BOB_REVIEWER])
@pytest.mark.parametrize(
    ("verdict", "state", "event"),
    [
        (S.VERDICT_APPROVE, S.REVIEW_STATE_APPROVED, "review.approved"),
        (S.VERDICT_REJECT, S.REVIEW_STATE_REJECTED, "review.rejected"),
    ],
)
def test_the_requester_settles_in_band_and_it_is_recorded(actor, verdict, state, event):
    change = _act(_review(), actor, verdict, comment="mine")
    assert (change.review.state, change.event) == (state, event)
    act = change.review.acts[-1]
    assert (act.reviewer, act.in_band, act.comment) == ("bob", True, "mine")
    entry = audit_record(change.review, change.event, "bob", T0)
    assert entry.payload["in_band"] == "requester"
    word = "approved" if verdict == S.VERDICT_APPROVE else "rejected"
    assert entry.payload["in_band_note"] == f"{word} by the requester in band"
    assert entry.payload["act"]["in_band"] is True  # type: ignore[index]


def test_a_group_reviewer_on_an_in_band_review_acts_as_usual():
    change = _act(_review(), ALICE)
    assert change.review.state == S.REVIEW_STATE_APPROVED
    assert change.review.acts[-1].in_band is False
    assert "in_band" not in audit_record(change.review, change.event, "alice", T0).payload


def _params() -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update({"amount": 10.0})
    return s


# Every other path stays shut: each case is one way to try to break it.
SHUT = {
    "modify in band": (_review(), BOB, S.VERDICT_MODIFY, True, "not edit it"),
    "a reviewer-requester modifying": (
        _review(),
        BOB_REVIEWER,
        S.VERDICT_MODIFY,
        True,
        "not edit it",
    ),
    "rule without in_band": (_review(in_band=""), BOB, S.VERDICT_APPROVE, True, "may not review"),
    "rule without in_band, requester reviews": (
        _review(in_band=""),
        BOB_REVIEWER,
        S.VERDICT_APPROVE,
        True,
        "separation of duties",
    ),
    "two approvals": (_review(approvals=2), BOB, S.VERDICT_APPROVE, True, "may not review"),
    "two approvals, requester reviews": (
        _review(approvals=2),
        BOB_REVIEWER,
        S.VERDICT_APPROVE,
        True,
        "separation of duties",
    ),
    "claimed on_behalf_of": (
        _review(on_behalf_of="", claimed="bob"),
        BOB,
        S.VERDICT_APPROVE,
        True,
        "may not review",
    ),
    "claimed on_behalf_of, a reviewer": (
        _review(on_behalf_of="", claimed="bob"),
        BOB_REVIEWER,
        S.VERDICT_APPROVE,
        True,
        "separation of duties",
    ),
    "the agent's own token": (_review(), AGENT, S.VERDICT_APPROVE, True, "may not review"),
    "the agent acting for itself": (
        _review(on_behalf_of="bot"),
        AGENT,
        S.VERDICT_APPROVE,
        True,
        "may not review",
    ),
    "another user": (_review(), Actor("eve", frozenset()), S.VERDICT_REJECT, True, "may not"),
    "a batch or a grant (in_band_ok False)": (
        _review(),
        BOB,
        S.VERDICT_APPROVE,
        False,
        "may not review",
    ),
    "a batch by a reviewer-requester": (
        _review(),
        BOB_REVIEWER,
        S.VERDICT_APPROVE,
        False,
        "separation of duties",
    ),
}


@pytest.mark.parametrize(("r", "actor", "verdict", "ok", "text"), SHUT.values(), ids=SHUT.keys())
def test_every_other_path_stays_shut(r, actor, verdict, ok, text):
    params = _params() if verdict == S.VERDICT_MODIFY else None
    with pytest.raises(PermissionDenied, match=text):
        _act(r, actor, verdict, params, in_band_ok=ok)


def test_in_band_needs_the_version_seen_and_a_pending_review():
    r = _review()
    with pytest.raises(FailedPrecondition, match="changed since you saw it"):
        submit(r, BOB, S.VERDICT_APPROVE, None, "", 7, T0, Limits(), in_band_ok=True)
    settled = _act(r, ALICE).review
    with pytest.raises(FailedPrecondition, match="is APPROVED"):
        _act(settled, BOB)


def test_in_band_requester_is_only_the_vouched_on_behalf_of():
    assert in_band_requester(_review(), "bob")
    assert not in_band_requester(_review(), "bot")
    assert not in_band_requester(_review(), "")
    assert not in_band_requester(_review(on_behalf_of=""), "")
    assert not in_band_requester(_review(in_band=""), "bob")
    assert not in_band_requester(_review(approvals=2), "bob")
    # Claimed but not vouched (the server cleared on_behalf_of): the agent's word only.
    assert not in_band_requester(_review(on_behalf_of="", claimed="bob"), "bob")
    assert in_band_requester(_review(claimed=""), "bob")
