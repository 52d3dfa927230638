"""Per-identity caps on calls and streams: one identity cannot make another's call fail."""

from __future__ import annotations

import pytest

from signoff.auth import Identity
from signoff.errors import ResourceExhausted
from signoff.limits import Limiter, LimitSettings
from signoff.settings.model import ConfigError, load_settings


def agent(name: str) -> Identity:
    return Identity(name, frozenset({"agent"}))


def limiter(**settings: object) -> Limiter:
    return Limiter(LimitSettings.model_validate(settings))


def opened(lim: Limiter, who: Identity, tries: int, *, streams: bool) -> int:
    """Open up to `tries` streams (or calls) of `who`, keeping them open; count the admitted."""
    admitted = 0
    for _ in range(tries):
        try:
            (lim.open_stream if streams else lim.enter)(who)
        except ResourceExhausted:
            continue
        admitted += 1
    return admitted


@pytest.mark.parametrize("streams", [True, False])
def test_one_identity_is_stopped_at_its_own_cap_and_others_are_not(streams: bool):
    kind = "streams" if streams else "concurrent"
    lim = limiter(**{f"max_{kind}": 100, f"max_{kind}_per_identity": 10})
    hog, calm = agent("hog"), agent("calm")
    assert opened(lim, hog, 1000, streams=streams) == 10
    with pytest.raises(ResourceExhausted) as err:
        (lim.open_stream if streams else lim.enter)(hog)
    what = "open streams" if streams else "concurrent calls"
    assert err.value.message.startswith(
        f"hog is at its limit of 10 {what} per identity (limits.max_{kind}_per_identity)"
    )
    assert err.value.retry_after is not None
    assert opened(lim, calm, 10, streams=streams) == 10  # all of calm's places, untouched
    reason = "identity_streams" if streams else "identity_concurrency"
    assert lim.refusals[reason] == 991
    assert lim.refusals["streams" if streams else "concurrency"] == 0
    # Places come back one by one, and an identity with none is forgotten.
    (lim.close_stream if streams else lim.leave)(hog)
    assert opened(lim, hog, 5, streams=streams) == 1
    for _ in range(10):
        (lim.close_stream if streams else lim.leave)(calm)
    assert "calm" not in (lim.streams_of if streams else lim.calls_of)


@pytest.mark.parametrize("most", [2, 3, 5, 10, 19, 20, 99, 1000])
@pytest.mark.parametrize("streams", [True, False])
def test_with_the_default_cap_no_single_identity_can_fill_the_server(most: int, streams: bool):
    kind = "streams" if streams else "concurrent"
    lim = limiter(**{f"max_{kind}": most})
    cap = lim.settings.streams_per_identity if streams else lim.settings.concurrent_per_identity
    opened(lim, agent("hog"), 2 * most, streams=streams)
    # Whatever the hog did, another identity gets every place up to its own cap.
    assert opened(lim, agent("calm"), cap, streams=streams) == cap


def test_per_identity_defaults_follow_the_server_wide_caps():
    assert LimitSettings().streams_per_identity == 100
    assert LimitSettings().concurrent_per_identity == 100
    assert LimitSettings(max_streams=15).streams_per_identity == 1
    assert LimitSettings(max_streams=0).streams_per_identity == 0  # unlimited stays so
    assert LimitSettings(max_concurrent=0, max_concurrent_per_identity=7).concurrent_per_identity
    unlimited = limiter(max_streams=0, max_concurrent=0)
    assert opened(unlimited, agent("a"), 5000, streams=True) == 5000


def test_a_call_refused_at_its_identitys_cap_keeps_its_token():
    lim = limiter(max_concurrent=4, max_concurrent_per_identity=1, rate={"rate": 1, "burst": 2})
    lim.enter(agent("a"))
    with pytest.raises(ResourceExhausted, match="per identity"):
        lim.enter(agent("a"))
    lim.leave(agent("a"))
    lim.enter(agent("a"))  # a's second token was not spent on the refusal


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"SIGNOFF_LIMITS__MAX_STREAMS_PER_IDENTITY": "501"},
            "limits (SIGNOFF_LIMITS): max_streams_per_identity is 501 but must be at most half "
            "of max_streams (1000), so that no single identity can fill the server",
        ),
        (
            {"SIGNOFF_LIMITS__MAX_CONCURRENT_PER_IDENTITY": "0"},
            "max_concurrent_per_identity is unlimited (0) but must be at most half of "
            "max_concurrent (1000)",
        ),
        (
            {"SIGNOFF_LIMITS__MAX_STREAMS_PER_IDENTITY": "-1"},
            "limits.max_streams_per_identity (SIGNOFF_LIMITS__MAX_STREAMS_PER_IDENTITY): Input "
            "should be greater than or equal to 0",
        ),
    ],
)
def test_a_per_identity_cap_that_lets_one_identity_fill_the_server_is_refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert message in str(err.value)


def test_per_identity_caps_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SIGNOFF_LIMITS__MAX_STREAMS", "200")
    monkeypatch.setenv("SIGNOFF_LIMITS__MAX_STREAMS_PER_IDENTITY", "100")
    limits = load_settings().limits
    assert (limits.streams_per_identity, limits.concurrent_per_identity) == (100, 100)
