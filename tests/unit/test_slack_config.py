"""Slack and routing settings: what a valid configuration is, and what each mistake says."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from signoff.auth.identity import Identity
from signoff.ids import SystemClock
from signoff.notify.config import NotifySettings
from signoff.store import SqliteStore

APP = {
    "bot_token": "xoxb-1",
    "signing_secret": "s3cret",
    "console_url": "https://signoff.example.com",
}


def test_existing_webhook_configuration_is_still_valid():
    s = NotifySettings.model_validate({"webhooks": {"finance": [{"url": "https://h.example"}]}})
    assert [str(h.url) for h in s.webhooks_by_group()["finance"]] == ["https://h.example/"]
    assert s.slack is None


def test_routes_add_webhooks_to_those_of_the_same_group():
    s = NotifySettings.model_validate(
        {
            "webhooks": {"finance": [{"url": "https://a.example"}]},
            "routes": {
                "finance": {"webhooks": [{"url": "https://b.example"}]},
                "ops": {"webhooks": []},
            },
        }
    )
    by_group = s.webhooks_by_group()
    assert [str(h.url) for h in by_group["finance"]] == ["https://a.example/", "https://b.example/"]
    assert by_group["ops"] == []


def test_an_email_route_needs_the_email_settings_and_names_the_route():
    route = {"ops": {"email": {"to": [{"address": "ops@example.com", "reviewer": "olga"}]}}}
    with pytest.raises(ValidationError, match=r"routes\.ops\.email: needs notify\.email"):
        NotifySettings.model_validate({"routes": route})
    email = {
        "host": "127.0.0.1",
        "from_address": "signoff@example.com",
        "console_url": "https://signoff.example.com",
        "link_secret": "y" * 32,
    }
    s = NotifySettings.model_validate({"routes": route, "email": email})
    assert [r.reviewer for r in s.email_recipients()["ops"]] == ["olga"]


def test_an_email_route_names_who_each_link_acts_as():
    with pytest.raises(ValidationError, match=r"routes\.ops\.email\.to\.0"):
        NotifySettings.model_validate({"routes": {"ops": {"email": {"to": ["ops@example.com"]}}}})


def test_slack_channels_of_a_group_include_the_catch_all_route():
    s = NotifySettings.model_validate(
        {
            "slack": APP,
            "routes": {
                "finance": {"slack": {"channels": ["CFIN"]}},
                "*": {"slack": {"channels": ["CALL", "CFIN"]}},
            },
        }
    )
    assert s.slack_channels("finance") == ["CFIN", "CALL"]
    assert s.slack_channels("ops") == ["CALL", "CFIN"]


def test_a_slack_route_without_the_app_names_the_key():
    with pytest.raises(ValidationError, match=r"routes.finance.slack: needs notify.slack"):
        NotifySettings.model_validate({"routes": {"finance": {"slack": {"channels": ["C1"]}}}})


@pytest.mark.parametrize(
    ("slack", "message"),
    [
        ({**APP, "users": {"alice": "alice"}}, "is not a Slack id"),
        ({**APP, "users": {"U1": {"identity": "a", "roles": ["boss"]}}}, "unknown role"),
        ({**APP, "signing_secret": " "}, "signing_secret: must not be empty"),
        ({**APP, "max_body_bytes": 10}, "greater than or equal to 1024"),
        ({k: v for k, v in APP.items() if k != "signing_secret"}, "Field required"),
    ],
)
def test_bad_slack_settings_say_what_is_wrong(slack, message):
    with pytest.raises(ValidationError, match=message):
        NotifySettings.model_validate({"slack": slack})


def test_a_user_map_takes_the_short_form():
    s = NotifySettings.model_validate({"slack": {**APP, "users": {"U1": "alice"}}})
    assert s.slack is not None
    assert s.slack.users["U1"].identity == "alice"
    assert s.slack.users["U1"].roles is None


def test_roles_in_the_slack_map_for_an_identity_with_a_token_are_refused():
    pytest.importorskip("slack_sdk")
    from signoff.notify.slack_actions import Directory, check_users

    s = NotifySettings.model_validate(
        {"slack": {**APP, "users": {"U1": {"identity": "alice", "roles": ["reviewer:x"]}}}}
    )
    assert s.slack is not None
    tokens = Directory({"alice": Identity("alice", frozenset({"reviewer:finance"}))}, {})
    with pytest.raises(ValueError, match=r"notify.slack.users.U1.roles: alice has a token"):
        check_users(s.slack, tokens)
    check_users(s.slack, Directory({}, {}))  # an OIDC-only deployment says roles here


async def test_replays_are_remembered_for_the_window_and_then_forgotten(tmp_path):
    pytest.importorskip("slack_sdk")
    from signoff.notify.slack_actions import WINDOW_S, _Seen

    now = [1000.0]
    store = SqliteStore(tmp_path / "signoff.db", SystemClock())
    await store.open()
    try:
        seen = _Seen(store, lambda: now[0])
        assert await seen.first_time("sig-a", "trigger-a")
        assert not await seen.first_time("sig-a", "")  # the same signature
        assert not await seen.first_time("sig-b", "trigger-a")  # the same trigger id, signed anew
        assert await seen.first_time("sig-c", "")
        assert await seen.first_time("", "")  # nothing to remember: nothing to refuse
        # Another process on the database (a worker, a replica, this one restarted) knows them.
        assert not await _Seen(store, lambda: now[0]).first_time("sig-c", "")
        now[0] += 2 * WINDOW_S + 1  # past any timestamp the verifier would still accept
        assert await seen.first_time("sig-a", "trigger-a")
    finally:
        await store.close()


async def test_a_mapped_user_acts_with_the_tokens_roles_or_else_the_maps(tmp_path):
    pytest.importorskip("slack_sdk")
    from signoff.notify.slack_actions import Directory, Refused, SlackActions
    from signoff.notify.slack_app import SlackPoster

    settings = NotifySettings.model_validate(
        {
            "slack": {
                **APP,
                "users": {
                    "UALICE": "alice",
                    "UBOB": {"identity": "bob", "roles": ["reviewer:finance"]},
                    "UEVE": "eve",
                },
            }
        }
    )
    assert settings.slack is not None
    tokens = {"alice": Identity("alice", frozenset({"reviewer:ops"}), act_for_others=True)}

    async def never(*args):
        raise AssertionError("no act in this test")

    store = SqliteStore(tmp_path / "signoff.db", SystemClock())  # never opened: not used
    actions = SlackActions(
        settings.slack, SlackPoster(settings), never, never, Directory(tokens, {}), store
    )
    alice = await actions._identity("UALICE")
    assert (alice.id, alice.roles, alice.source) == ("alice", frozenset({"reviewer:ops"}), "slack")
    assert not alice.act_for_others  # Slack never acts for others, whatever the token may
    bob = await actions._identity("UBOB")
    assert bob.roles == frozenset({"reviewer:finance"})
    eve = await actions._identity("UEVE")  # mapped, but no token and no roles: may do nothing
    assert eve.roles == frozenset()
    with pytest.raises(Refused, match="Slack user UMALLORY is not mapped"):
        await actions._identity("UMALLORY")
