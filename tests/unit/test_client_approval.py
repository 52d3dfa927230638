"""require()'s verdict without a network: masking, restoring, digests, typed refusals.

Reviews are built by the server's own pure state machine (`signoff.core.reviews`), so the
digests the client checks here are the ones a real server computes; tampered copies of
them must be refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import grpc
import pytest

from signoff import pb
from signoff.core import reviews as server_reviews
from signoff.core.redact import redact
from signoff.core.validate import Limits
from signoff_client import Approval, Decision, Outcome, Review, ReviewState, errors
from signoff_client._approval import _echoed, from_decision, from_review
from signoff_client._masking import MASK, mask, remask, unmask
from signoff_client._request import to_proto
from signoff_client._retry import Reconnects, RetryPolicy
from signoff_client._struct import from_struct, to_struct
from signoff_client.canonical import digest_document, legacy_canonical_json
from signoff_client.models import Request

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
CARD_PATH = "action.params.card_number"
PARAMS = {"amount": 750, "currency": "EUR", "card_number": "4111"}
ALICE = server_reviews.Actor("alice", frozenset({"reviewer:*"}))


def _request(params: dict[str, Any]) -> pb.common.ActionRequest:
    return to_proto(
        Request(
            "refund.issue",
            params,
            principal={"id": "bot", "kind": "agent", "tags": ["eu"]},
            resource={"kind": "account", "id": "acct_9", "attributes": {"tier": "gold"}},
        )
    )


def _decision(outcome: int, review_id: str = "") -> Decision:
    return Decision.from_proto(
        pb.common.Decision(decision_id="d1", outcome=outcome, reason="why", review_id=review_id)
    )


def _open(params: dict[str, Any], paths: tuple[str, ...] = (CARD_PATH,), **kw: Any):
    decision = _decision(pb.common.OUTCOME_REQUIRE_REVIEW, "r1").raw
    return server_reviews.open_review(
        review_id="r1",
        decision=decision,
        shown=redact(_request(params), paths),
        redacted_paths=paths,
        approvals=1,
        timeout=dt.timedelta(hours=1),
        on_timeout=kw.get("on_timeout", "deny"),
        now=NOW,
    )


def _act(raw, verdict: int, params: dict[str, Any] | None = None, comment: str = ""):
    struct = None if params is None else to_struct(params, "params")
    change = server_reviews.submit(raw, ALICE, verdict, struct, comment, raw.version, NOW, Limits())
    return change.review


def _settle(raw, params: dict[str, Any] = PARAMS) -> Approval:
    decision = _decision(pb.common.OUTCOME_REQUIRE_REVIEW, raw.review_id)
    return from_review("refund.issue", params, decision, Review.from_proto(raw))


# --- masking: the same as the server's ---------------------------------------------------

MASK_CASES = [
    ({"card_number": "4111", "amount": 1}, [CARD_PATH]),
    ({"card": {"number": "4111", "cvv": 123}}, ["action.params.card"]),
    ({"card": {"number": "4111", "cvv": 123}}, ["action.params.card.cvv"]),
    ({"cards": [{"n": "1"}, {"n": "2"}, "x"]}, ["action.params.cards.n"]),
    ({"cards": [{"n": "1"}, {"n": "2"}]}, ["action.params.cards.1.n"]),
    ({"cards": ["1", "2"]}, ["action.params.cards.5"]),
    ({"amount": 1}, ["action.params.missing", "principal.id", "context.ticket"]),
    ({"amount": 1}, ["action.params"]),
    ({}, ["action.params"]),
]


@pytest.mark.parametrize(("params", "paths"), MASK_CASES)
def test_client_masks_params_exactly_as_the_server(params, paths):
    server = redact(_request(params), paths)
    assert mask(params, paths) == from_struct(server.action.params)


def test_masking_copies_and_leaves_the_callers_params_alone():
    params = {"card": {"number": "4111"}}
    masked = mask(params, ["action.params.card.number"])
    assert masked == {"card": {"number": MASK}}
    assert params == {"card": {"number": "4111"}}


@pytest.mark.parametrize(
    ("edited", "expected"),
    [
        ({"amount": 500, "card_number": MASK}, {"amount": 500, "card_number": "4111"}),
        ({"amount": 500, "card_number": "5555"}, {"amount": 500, "card_number": "5555"}),
        ({"amount": 500}, {"amount": 500}),  # a reviewer may drop a field
    ],
)
def test_unmask_restores_only_values_still_masked(edited, expected):
    original = {"amount": 750, "card_number": "4111"}
    restored = unmask(edited, original, [CARD_PATH])
    assert restored == expected
    assert remask(restored, edited, [CARD_PATH]) == edited


def test_unmask_walks_lists_by_position_and_whole_params():
    original = {"cards": [{"n": "1"}, {"n": "2"}]}
    edited = {"cards": [{"n": MASK}, {"n": "9"}]}
    assert unmask(edited, original, ["action.params.cards.n"]) == {
        "cards": [{"n": "1"}, {"n": "9"}]
    }
    whole = unmask({"redacted": MASK}, {"amount": 1}, ["action.params"])
    assert whole == {"amount": 1}
    assert remask(whole, {"redacted": MASK}, ["action.params"]) == {"redacted": MASK}


# --- decisions and resolved reviews -------------------------------------------------------


def test_auto_allow_returns_the_params_as_given_and_deny_raises():
    allowed = from_decision(_decision(pb.common.OUTCOME_AUTO_ALLOW), PARAMS)
    assert allowed == Approval(PARAMS, allowed.decision, None)
    with pytest.raises(errors.Denied) as err:
        from_decision(_decision(pb.common.OUTCOME_DENY), PARAMS)
    assert err.value.decision.reason == "why"
    assert from_decision(_decision(pb.common.OUTCOME_REQUIRE_REVIEW, "r1"), PARAMS) is None


def test_approved_review_gives_the_agents_own_params():
    approval = _settle(_act(_open(PARAMS), pb.review.VERDICT_APPROVE))
    assert approval.params == PARAMS
    assert approval.review.state is ReviewState.APPROVED
    assert approval.approvers == ("alice",)


def test_modified_review_gives_the_edits_with_the_real_card_number():
    edited = {"amount": 500, "currency": "EUR", "card_number": MASK}
    approval = _settle(_act(_open(PARAMS), pb.review.VERDICT_MODIFY, edited))
    assert approval.params == {"amount": 500, "currency": "EUR", "card_number": "4111"}


def test_a_value_the_reviewer_typed_at_a_redacted_path_is_executed_as_approved():
    edited = {"amount": 750, "currency": "EUR", "card_number": "5555"}
    approval = _settle(_act(_open(PARAMS), pb.review.VERDICT_MODIFY, edited))
    assert approval.params["card_number"] == "5555"


def test_expired_with_allow_is_an_approval_and_with_deny_is_expired():
    later = NOW + dt.timedelta(hours=2)
    allowed = server_reviews.expire(_open(PARAMS, on_timeout="allow"), later).review
    assert _settle(allowed).params == PARAMS
    denied = server_reviews.expire(_open(PARAMS), later).review
    with pytest.raises(errors.Expired, match="on_timeout deny"):
        _settle(denied)


def test_rejected_and_cancelled_raise_their_exceptions():
    rejected = _act(_open(PARAMS), pb.review.VERDICT_REJECT, comment="duplicate")
    with pytest.raises(errors.Rejected) as err:
        _settle(rejected)
    assert err.value.comment == "duplicate"
    bot = server_reviews.Actor("bot", frozenset({"agent"}))
    cancelled = server_reviews.cancel(_open(PARAMS), bot, "not needed", NOW).review
    with pytest.raises(errors.Cancelled, match="not needed"):
        _settle(cancelled)


def test_a_pending_review_is_never_an_approval():
    with pytest.raises(errors.NotApproved, match="PENDING"):
        _settle(_open(PARAMS))


# --- digest mismatches: nothing is returned -----------------------------------------------


def _tampered(raw, change) -> pb.review.Review:
    copy = pb.review.Review()
    copy.CopyFrom(raw)
    change(copy)
    return copy


def test_tampered_final_params_raise_digest_mismatch():
    edited = {"amount": 500, "currency": "EUR", "card_number": MASK}
    raw = _act(_open(PARAMS), pb.review.VERDICT_MODIFY, edited)
    tampered = _tampered(raw, lambda r: r.final_params.update({"amount": 5000}))
    with pytest.raises(errors.DigestMismatch) as err:
        _settle(tampered)
    assert err.value.field == "final_digest"
    assert err.value.expected == raw.final_digest
    assert isinstance(err.value, errors.NotApproved)


def test_approval_of_other_params_than_the_agents_raises_digest_mismatch():
    raw = _act(_open(PARAMS), pb.review.VERDICT_APPROVE)
    with pytest.raises(errors.DigestMismatch) as err:
        _settle(raw, {**PARAMS, "amount": 7500})
    assert err.value.field == "action_digest"


@pytest.mark.parametrize(
    "change",
    [
        lambda r: setattr(r, "final_digest", ""),
        lambda r: setattr(r, "final_digest", "0" * 64),
        lambda r: r.request.resource.attributes.update({"tier": "vip"}),
        lambda r: r.request.principal.tags.append("vip"),
        lambda r: r.redacted_paths.append("action.params.amount"),
    ],
    ids=["no-final-digest", "wrong-final-digest", "resource", "principal", "redaction"],
)
def test_any_tampered_field_of_an_approved_review_is_refused(change):
    raw = _act(_open(PARAMS), pb.review.VERDICT_APPROVE)
    with pytest.raises(errors.DigestMismatch):
        _settle(_tampered(raw, change))


def test_unknown_review_state_fails_closed():
    raw = _tampered(_open(PARAMS), lambda r: setattr(r, "state", 42))
    with pytest.raises(errors.SignoffError, match="unknown to this client"):
        Review.from_proto(raw)


def test_review_model_mirrors_the_message():
    review = Review.from_proto(_act(_open(PARAMS), pb.review.VERDICT_APPROVE, comment="ok"))
    assert review.outcome is Outcome.AUTO_ALLOW
    assert review.params["card_number"] == MASK
    assert review.final_params is None
    assert review.comment == "ok"
    assert review.version == 2
    assert review.resolved_at == NOW
    assert review.expires_at == NOW + dt.timedelta(hours=1)
    assert review.timeout == dt.timedelta(hours=1)
    assert review.redacted_paths == (CARD_PATH,)
    assert review.acts[0].roles == ("reviewer:*",)
    assert review.acts[0].channel == ""


def test_an_acts_channel_reaches_the_client_model():
    raw = _open(PARAMS)
    change = server_reviews.submit(
        raw, ALICE, pb.review.VERDICT_APPROVE, None, "", raw.version, NOW, Limits(), channel="slack"
    )
    assert Review.from_proto(change.review).acts[0].channel == "slack"


# --- reconnecting a watch -----------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_reconnects_back_off_until_the_deadline_and_start_over_after_a_message():
    clock = _Clock()
    r = Reconnects(RetryPolicy(base=0.1, cap=2.0), 10.0, clock=clock, rand=lambda: 1.0)
    unavailable = grpc.StatusCode.UNAVAILABLE
    assert [r.retry_after(unavailable) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    r.received()
    assert r.retry_after(None) == 0.1  # a stream that ended cleanly but unresolved
    clock.t = 9.95
    assert r.retry_after(unavailable) == pytest.approx(0.05)  # never sleeps past the deadline
    clock.t = 10.0
    assert r.retry_after(unavailable) is None
    assert r.retry_after(grpc.StatusCode.DEADLINE_EXCEEDED) is None


def test_reconnects_never_retry_a_refusal_and_wait_forever_without_a_deadline():
    r = Reconnects(RetryPolicy(), None, clock=_Clock(), rand=lambda: 0.0)
    assert r.retry_after(grpc.StatusCode.NOT_FOUND) is None
    assert r.retry_after(grpc.StatusCode.PERMISSION_DENIED) is None
    assert r.remaining() is None
    assert all(r.retry_after(grpc.StatusCode.UNAVAILABLE) for _ in range(100))


def test_a_review_digested_by_a_pre_0_2_server_still_settles():
    # Before 0.2.0 the server digested 2.0**60 as 1152921504606846976: a review it opened
    # carries that digest, and settles for exactly that action, not another.
    params = {**PARAMS, "amount": 2.0**60}
    raw = _act(_open(params), pb.review.VERDICT_APPROVE)
    principal, resource = _echoed(raw.request)
    masked = mask(params, raw.redacted_paths)
    old_text = legacy_canonical_json(digest_document("refund.issue", masked, principal, resource))
    assert old_text is not None
    assert '"amount":1152921504606846976' in old_text
    old_digest = hashlib.sha256(old_text.encode()).hexdigest()
    assert old_digest != raw.action_digest

    def as_written_then(r: pb.review.Review) -> None:
        r.action_digest = r.final_digest = old_digest

    old = _tampered(raw, as_written_then)
    assert _settle(old, params).params == params
    with pytest.raises(errors.DigestMismatch):
        _settle(old, {**params, "amount": 2.0**61})
