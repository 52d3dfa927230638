"""The limiter on its own: token buckets on an injected clock, overrides, memory, settings."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from signoff.auth import Identity
from signoff.errors import ResourceExhausted
from signoff.limits import Limiter, LimitSettings, RateSettings
from signoff.limits import limiter as limiter_mod
from signoff.settings.model import ConfigError, load_settings


class Clock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def agent(name: str = "bot", *roles: str) -> Identity:
    return Identity(name, frozenset(roles or ("agent",)))


def limiter(clock: Clock, **settings: object) -> Limiter:
    return Limiter(LimitSettings.model_validate(settings), clock=clock)


def calls_admitted(lim: Limiter, who: Identity, tries: int) -> int:
    admitted = 0
    for _ in range(tries):
        try:
            lim.enter(who)
        except ResourceExhausted:
            continue
        lim.leave(who)
        admitted += 1
    return admitted


def test_a_bucket_allows_its_burst_then_refills_at_its_rate():
    clock = Clock()
    lim = limiter(clock, rate={"rate": 10, "burst": 5})
    bot = agent()
    assert calls_admitted(lim, bot, 8) == 5
    with pytest.raises(ResourceExhausted) as err:
        lim.enter(bot)
    # Empty: one token comes back every 1/10 s.
    assert err.value.retry_after == pytest.approx(0.1)
    assert "retry in 0.1 s" in err.value.message
    assert "10 calls/s (burst 5) for bot" in err.value.message
    clock.t += 0.05
    with pytest.raises(ResourceExhausted) as err:
        lim.enter(bot)
    assert err.value.retry_after == pytest.approx(0.05)  # half a token is there already
    clock.t += 0.05
    assert calls_admitted(lim, bot, 3) == 1
    clock.t += 100  # a long quiet spell refills to the burst, not beyond
    assert calls_admitted(lim, bot, 10) == 5


def test_burst_defaults_to_one_second_of_calls():
    clock = Clock()
    assert calls_admitted(limiter(clock, rate={"rate": 2.5}), agent(), 10) == 3
    assert calls_admitted(limiter(clock, rate={"rate": 0.2}), agent(), 10) == 1


def test_identities_have_separate_buckets():
    clock = Clock()
    lim = limiter(clock, rate={"rate": 1, "burst": 2})
    assert calls_admitted(lim, agent("flood"), 50) == 2
    assert calls_admitted(lim, agent("quiet"), 2) == 2


def test_unlimited_by_default_and_with_zero():
    clock = Clock()
    lim = limiter(clock)
    assert calls_admitted(lim, agent(), 10_000) == 10_000
    assert not lim.buckets  # nothing is even counted
    lim = limiter(clock, rate={"rate": 0}, max_concurrent=0)
    assert calls_admitted(lim, agent(), 10_000) == 10_000


def test_overrides_identity_first_then_the_most_generous_role():
    clock = Clock()
    lim = limiter(
        clock,
        rate={"rate": 1},
        roles={"agent": {"rate": 5}, "reviewer:*": {"rate": 50}, "auditor": {"rate": 0}},
        identities={"ci-bot": {"rate": 2, "burst": 3}},
    )
    assert lim.rate_for(agent("x")).rate == 5
    assert lim.rate_for(agent("x", "agent", "reviewer:*")).rate == 50
    assert lim.rate_for(agent("x", "agent", "auditor")).unlimited
    assert lim.rate_for(agent("x", "admin")).rate == 1
    assert lim.rate_for(agent("ci-bot", "reviewer:*")) == RateSettings(rate=2, burst=3)
    assert calls_admitted(lim, agent("ci-bot"), 10) == 3
    assert calls_admitted(lim, agent("someone", "auditor"), 100) == 100


def test_new_roles_choose_the_rate_again():
    clock = Clock()
    lim = limiter(clock, roles={"agent": {"rate": 1}})
    assert calls_admitted(lim, agent("x", "agent"), 5) == 1
    assert calls_admitted(lim, agent("x", "admin"), 5) == 5  # e.g. a reloaded tokens file


def test_max_concurrent_refuses_at_once_and_frees_on_leave():
    lim = limiter(Clock(), max_concurrent=2)
    lim.enter(agent("a"))
    lim.enter(agent("b"))
    with pytest.raises(ResourceExhausted) as err:
        lim.enter(agent("other"))
    assert err.value.retry_after == limiter_mod.BUSY_RETRY_S
    assert "server is at its limit of 2 concurrent calls (limits.max_concurrent)" in (
        err.value.message
    )
    lim.leave(agent("a"))
    lim.enter(agent("other"))
    assert lim.in_flight == 2
    assert lim.refused == 1


def test_a_call_refused_for_a_slot_keeps_its_token():
    lim = limiter(Clock(), max_concurrent=1, rate={"rate": 1, "burst": 1})
    lim.enter(agent("a"))
    with pytest.raises(ResourceExhausted, match="concurrent"):
        lim.enter(agent("b"))
    lim.leave(agent("a"))
    lim.enter(agent("b"))  # b's one token was not spent on the refusal


def test_max_streams_counts_streams_apart_from_calls():
    lim = limiter(Clock(), max_concurrent=1, max_streams=1)
    lim.open_stream(agent())
    lim.enter(agent())  # a stream does not hold a call's slot
    with pytest.raises(ResourceExhausted, match=r"limit of 1 open streams \(limits.max_streams\)"):
        lim.open_stream(agent("other"))
    lim.close_stream(agent())
    lim.open_stream(agent("other"))


def test_idle_buckets_are_forgotten_so_memory_follows_active_identities():
    clock = Clock()
    lim = limiter(clock, rate={"rate": 10, "burst": 10})
    for i in range(limiter_mod.SWEEP_AT):
        lim.enter(agent(f"a{i}"))
        lim.leave(agent(f"a{i}"))
    assert len(lim.buckets) == limiter_mod.SWEEP_AT
    clock.t += 0.05  # not yet refilled: nothing can be forgotten
    lim.enter(agent("late"))
    assert len(lim.buckets) == limiter_mod.SWEEP_AT + 1
    clock.t += 1  # now every bucket is full again
    for i in range(limiter_mod.SWEEP_AT):
        lim.enter(agent(f"b{i}"))
        lim.leave(agent(f"b{i}"))
    assert len(lim.buckets) <= limiter_mod.SWEEP_AT + 1
    assert "a0" not in lim.buckets


def test_a_flood_logs_at_most_once_per_second(caplog: pytest.LogCaptureFixture):
    clock = Clock()
    lim = limiter(clock, rate={"rate": 0.001, "burst": 1})  # empty for the whole test
    caplog.set_level(logging.WARNING, "signoff.limits")
    lim.enter(agent("flood"))
    for _ in range(3):
        for _ in range(100):
            with pytest.raises(ResourceExhausted):
                lim.enter(agent("flood"))
        clock.t += 0.5
    lines = [r for r in caplog.records if r.getMessage() == "rpc.rate_limited"]
    assert len(lines) == 2
    assert [r.__dict__["refused"] for r in lines] == [1, 200]
    assert lines[0].__dict__["who"] == "flood"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"SIGNOFF_LIMITS__RATE__RATE": "-1"},
            "limits.rate.rate (SIGNOFF_LIMITS__RATE__RATE): Input should be greater than or "
            "equal to 0",
        ),
        (
            {"SIGNOFF_LIMITS__MAX_CONCURRENT": "-5"},
            "limits.max_concurrent (SIGNOFF_LIMITS__MAX_CONCURRENT): Input should be greater",
        ),
        (
            {"SIGNOFF_LIMITS__RATE__BURST": "0", "SIGNOFF_LIMITS__RATE__RATE": "5"},
            "limits.rate.burst (SIGNOFF_LIMITS__RATE__BURST): Input should be greater than or "
            "equal to 1",
        ),
        (
            {"SIGNOFF_LIMITS__RATE__BURST": "10"},
            "limits.rate (SIGNOFF_LIMITS__RATE): burst is set but rate is 0",
        ),
        (
            {"SIGNOFF_LIMITS__RATE__RATE": "nan"},
            "limits.rate.rate (SIGNOFF_LIMITS__RATE__RATE): Input should be a finite number",
        ),
        ({"SIGNOFF_LIMITS__RATES": "{}"}, "limits.rates: unknown setting"),
    ],
)
def test_bad_limits_settings_name_the_key(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_limits_from_a_config_file(tmp_path: Path):
    config = tmp_path / "signoff.yaml"
    config.write_text(
        "limits:\n"
        "  max_concurrent: 64\n"
        "  roles:\n"
        "    agent: {rate: 200, burst: 400}\n"
        "    reviewer:payments: {rate: 20}\n"
        "  identities:\n"
        "    nightly-batch: {rate: 5}\n"
    )
    limits = load_settings(config_file=config).limits
    assert limits.max_concurrent == 64
    assert limits.roles["agent"] == RateSettings(rate=200, burst=400)
    assert limits.roles["reviewer:payments"].capacity == 20
    assert limits.identities["nightly-batch"].rate == 5
    config.write_text("limits:\n  roles:\n    agnet: {rate: 1}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(config_file=config)
    assert str(err.value) == (
        f"config file {config}: limits.roles (SIGNOFF_LIMITS__ROLES): unknown role 'agnet': "
        "use agent, reviewer:<group>, auditor, admin or witness"
    )
