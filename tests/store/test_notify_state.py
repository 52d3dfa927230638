"""The shared state of the Slack and e-mail approvals (store/notify_state.py), on every backend:
which Slack message shows which review, and single-use keys -- also across stores on one
database (workers, replicas) and across a reopen (a restart)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from signoff.store import Store

from .conftest import T0, MakeStore, StepClock
from .reviews import change_audit, changed, open_review

LATER = T0 + dt.timedelta(minutes=10)
LINK = ("email.link", "n-1")


async def test_a_noted_message_is_read_back_by_another_store_and_after_a_reopen(
    make_store: MakeStore,
) -> None:
    a, b = await make_store(), await make_store()
    await a.add_slack_message("rev-1", "CFIN", "1700.000001", T0)
    await a.add_slack_message("rev-1", "CLEADS", "1700.000002", T0 + dt.timedelta(seconds=1))
    assert await b.slack_messages("rev-1") == {"CFIN": "1700.000001", "CLEADS": "1700.000002"}
    assert await b.slack_messages("rev-2") == {}
    await a.close()
    await b.close()
    c = await make_store()
    assert await c.slack_messages("rev-1") == {"CFIN": "1700.000001", "CLEADS": "1700.000002"}


async def test_the_first_message_noted_for_a_channel_stays(store: Store) -> None:
    await store.add_slack_message("rev-1", "CFIN", "1700.000001", T0)
    # A button pressed on the same message, or a second post racing the first, changes nothing.
    await store.add_slack_message("rev-1", "CFIN", "1700.000009", T0)
    assert await store.slack_messages("rev-1") == {"CFIN": "1700.000001"}


async def test_forgetting_a_review_drops_its_messages_only(store: Store) -> None:
    await store.add_slack_message("rev-1", "CFIN", "1", T0)
    await store.add_slack_message("rev-2", "CFIN", "2", T0)
    await store.forget_slack_messages("rev-1")
    await store.forget_slack_messages("rev-unknown")  # nothing to drop is no error
    assert await store.slack_messages("rev-1") == {}
    assert await store.slack_messages("rev-2") == {"CFIN": "2"}


@pytest.mark.parametrize(
    ("review_id", "channel", "ts", "what"),
    [("", "C", "1", "review_id"), ("r", "C" * 129, "1", "channel"), ("r", "C", "", "ts")],
)
async def test_an_empty_or_oversized_message_key_is_refused_before_the_database(
    store: Store, review_id: str, channel: str, ts: str, what: str
) -> None:
    with pytest.raises(ValueError, match=what):
        await store.add_slack_message(review_id, channel, ts, T0)
    await store.add_slack_message("r", "C" * 128, "1", T0)  # the bound itself is fine
    assert await store.slack_messages("r") == {"C" * 128: "1"}


async def test_a_key_is_used_once_until_it_expires(store: Store) -> None:
    assert await store.use_nonces([LINK], LATER, T0) is True
    assert await store.use_nonces([LINK], LATER, T0 + dt.timedelta(minutes=9)) is False
    # Another kind is another key.
    assert await store.use_nonces([("slack.trigger", "n-1")], LATER, T0) is True
    # Expired (not yet swept): usable again, and then in use until its new expiry.
    assert await store.use_nonces([LINK], LATER + dt.timedelta(hours=1), LATER) is True
    assert await store.use_nonces([LINK], LATER + dt.timedelta(hours=1), LATER) is False


async def test_one_used_key_makes_the_call_a_replay_and_its_new_keys_are_kept(
    store: Store,
) -> None:
    sig, trigger = ("slack.signature", "s-1"), ("slack.trigger", "t-1")
    assert await store.use_nonces([sig], LATER, T0) is True
    assert await store.use_nonces([sig, trigger], LATER, T0) is False
    # The trigger id of the replayed request is remembered too: a re-signed copy is refused.
    assert await store.use_nonces([("slack.signature", "s-2"), trigger], LATER, T0) is False
    # A key given twice in one call counts once.
    assert await store.use_nonces([("email.link", "x"), ("email.link", "x")], LATER, T0) is True


@pytest.mark.parametrize(
    ("keys", "match"),
    [
        ([], "1 to 8 keys"),
        ([("email.link", f"n{i}") for i in range(9)], "1 to 8 keys"),
        ([("", "n")], "nonce kind"),
        ([("email.link", "")], "nonce"),
        ([("email.link", "n" * 129)], "nonce"),
    ],
)
async def test_bad_keys_are_refused_before_the_database(
    store: Store, keys: list[tuple[str, str]], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        await store.use_nonces(keys, LATER, T0)
    assert await store.use_nonces([("email.link", "n" * 128)], LATER, T0) is True


async def test_stores_on_one_database_racing_with_one_key_have_exactly_one_winner(
    make_store: MakeStore,
) -> None:
    stores = [await make_store() for _ in range(3)]
    for round_ in range(5):
        key = ("email.link", f"race-{round_}")
        results = await asyncio.gather(
            *(s.use_nonces([key], LATER, T0) for s in stores for _ in range(4))
        )
        assert results.count(True) == 1, (round_, results)


async def test_a_used_key_survives_a_reopen(make_store: MakeStore) -> None:
    first = await make_store()
    assert await first.use_nonces([LINK], LATER, T0) is True
    await first.close()
    again = await make_store()
    assert await again.use_nonces([LINK], LATER, T0) is False


async def test_the_sweep_drops_expired_keys_and_the_messages_of_settled_reviews(
    store: Store, clock: StepClock
) -> None:
    await store.use_nonces([("email.link", "old")], T0 + dt.timedelta(minutes=1), T0)
    await store.use_nonces([("email.link", "live")], LATER, T0)
    settled = await open_review(store, 1)
    pending = await open_review(store, 2)
    new = changed(settled)
    await store.update_review(new, settled.version, [change_audit(new)])
    for rid in (settled.review_id, pending.review_id, "rev-never-stored"):
        await store.add_slack_message(rid, "CFIN", "1", T0)
    await store.add_slack_message(settled.review_id, "CLATE", "2", LATER)

    gone = await store.sweep_notify_state(T0 + dt.timedelta(minutes=5), settled_before=LATER)

    # The expired key, and the settled and the unknown review's messages noted before the bound.
    assert gone == 3
    assert await store.use_nonces([("email.link", "old")], LATER, LATER) is True
    assert await store.use_nonces([("email.link", "live")], LATER, T0) is False
    assert await store.slack_messages(settled.review_id) == {"CLATE": "2"}
    assert await store.slack_messages(pending.review_id) == {"CFIN": "1"}
    assert await store.slack_messages("rev-never-stored") == {}
    assert await store.sweep_notify_state(T0, settled_before=T0) == 0


async def test_naive_times_are_refused(store: Store) -> None:
    naive = dt.datetime(2026, 1, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.use_nonces([LINK], naive, T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.add_slack_message("r", "C", "1", naive)
