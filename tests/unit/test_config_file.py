"""A YAML config file: good values load; bad ones fail with one line naming file and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from signoff.settings.model import ConfigError, load_settings


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "signoff.yaml"
    path.write_text(text)
    return path


def test_a_good_file_sets_top_level_and_nested_keys(tmp_path):
    path = _file(
        tmp_path,
        "listen: 127.0.0.1:6000\naudit:\n  checkpoint_every: 5\n"
        "notify:\n  webhooks:\n    '*':\n      - url: https://example.com/hook\n",
    )
    s = load_settings(None, path)
    assert s.listen == "127.0.0.1:6000"
    assert s.audit.checkpoint_every == 5
    assert str(s.notify.webhooks["*"][0].url) == "https://example.com/hook"


def test_flags_and_environment_outrank_the_file(tmp_path, monkeypatch):
    path = _file(tmp_path, "listen: 127.0.0.1:6000\nmax_batch: 5\n")
    monkeypatch.setenv("SIGNOFF_MAX_BATCH", "9")
    s = load_settings({"listen": "127.0.0.1:7000"}, path)
    assert (s.listen, s.max_batch) == ("127.0.0.1:7000", 9)


def test_an_empty_file_is_the_defaults(tmp_path):
    assert load_settings(None, _file(tmp_path, "")).max_batch == 100


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus: 1\n", "config file {f}: bogus: unknown setting"),
        ("audit:\n  every: 5\n", "config file {f}: audit.every: unknown setting"),
        ("auth:\n  jwt:\n    issuer: x\n    aud: y\n", "config file {f}: auth.jwt.aud: unknown"),
        (
            "max_batch: lots\n",
            "config file {f}: max_batch (SIGNOFF_MAX_BATCH): Input should be a valid integer",
        ),
        (
            "audit:\n  checkpoint_every: 0\n",
            "config file {f}: audit.checkpoint_every (SIGNOFF_AUDIT__CHECKPOINT_EVERY): "
            "Input should be greater than 0",
        ),
        (
            "notify:\n  webhooks:\n    ops:\n      - url: ftp://x\n",
            "config file {f}: notify.webhooks.ops.0.url",
        ),
        ("listen: [\n", "config file {f}:2:1: not valid YAML: expected the node content"),
        ("- listen\n", "config file {f}: must be a mapping of settings, got a list"),
    ],
    ids=[
        "unknown key",
        "unknown nested key",
        "unknown key two deep",
        "bad value",
        "bad nested value",
        "bad value in a list in a map",
        "malformed YAML",
        "not a mapping",
    ],
)
def test_a_bad_file_fails_with_one_line_naming_file_and_key(tmp_path, text, message):
    path = _file(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(None, path)
    assert message.format(f=path) in str(info.value)
    assert "\n" not in str(info.value)


def test_a_bad_value_from_the_environment_is_not_blamed_on_the_file(tmp_path, monkeypatch):
    path = _file(tmp_path, "max_batch: lots\n")
    monkeypatch.setenv("SIGNOFF_MAX_BATCH", "also-bad")
    with pytest.raises(ConfigError, match=re.escape("max_batch (SIGNOFF_MAX_BATCH)")) as info:
        load_settings(None, path)
    assert "config file" not in str(info.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(f"config file {tmp_path / 'no.yaml'}: not")):
        load_settings(None, tmp_path / "no.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"), [("3600", 3600), ("0.5", 0.5), ("PT2M", 120), ("P1D", 86400)]
)
def test_durations_from_the_environment_take_seconds_or_iso_8601(monkeypatch, text, seconds):
    # The environment gives strings only; the configuration reference promises both forms.
    monkeypatch.setenv("SIGNOFF_GRANTS__MAX_TTL", text)
    assert load_settings(None, None).grants.max_ttl.total_seconds() == seconds


@pytest.mark.parametrize("text", ["soon", "inf", "-5"])
def test_a_bad_duration_from_the_environment_names_the_key(monkeypatch, text):
    monkeypatch.setenv("SIGNOFF_GRANTS__MAX_TTL", text)
    with pytest.raises(ConfigError, match=re.escape("grants.max_ttl (SIGNOFF_GRANTS__MAX_TTL)")):
        load_settings(None, None)
