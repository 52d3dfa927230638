"""Where a review act came from (the API, Slack, an e-mail link) is kept on the act and in
its audit entry, and grants nothing: the same checks run whatever the channel."""

from __future__ import annotations

import pytest

from signoff.app.reviews.records import audit_record
from signoff.core.reviews import Actor, submit
from signoff.core.validate import Limits
from signoff.errors import PermissionDenied
from tests.unit.test_reviews_in_band import ALICE, T0, S, _review

BOB_REVIEWER = Actor("bob", frozenset({"reviewer:finance"}))


@pytest.mark.parametrize("channel", ["slack", "email"])
def test_channel_is_recorded_on_the_act_and_in_the_audit_entry(channel: str) -> None:
    r = _review(in_band="")
    change = submit(
        r, ALICE, S.VERDICT_APPROVE, None, "ok", r.version, T0, Limits(), channel=channel
    )
    assert change.review.acts[-1].channel == channel
    entry = audit_record(change.review, change.event, "alice", T0)
    assert entry.payload["channel"] == channel
    assert entry.payload["act"]["channel"] == channel  # type: ignore[index]


def test_an_api_act_has_no_channel_key() -> None:
    r = _review(in_band="")
    change = submit(r, ALICE, S.VERDICT_REJECT, None, "", r.version, T0, Limits())
    assert change.review.acts[-1].channel == ""
    assert "channel" not in audit_record(change.review, change.event, "alice", T0).payload


def test_a_channel_does_not_lift_separation_of_duties() -> None:
    r = _review(in_band="")  # bob is the person the agent acts for
    with pytest.raises(PermissionDenied, match="separation of duties"):
        submit(
            r, BOB_REVIEWER, S.VERDICT_APPROVE, None, "", r.version, T0, Limits(), channel="slack"
        )
