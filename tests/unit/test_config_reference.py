"""The generated configuration reference: complete, described, derived flags, stale check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_origin

import pytest
from pydantic import BaseModel, ConfigDict, Field

from signoff.cli.config_cmd import REFERENCE
from signoff.cli.config_reference import Setting, render_markdown, settings_rows
from signoff.cli.main import main
from signoff.settings.model import Settings

ROOT = Path(__file__).resolve().parents[2]


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every field's dotted key, found independently of the generator (not inside maps or
    lists: their items are rows of their own, `key[].field`, checked for a description)."""
    keys = set()
    for name, info in model.model_fields.items():
        keys.add(prefix + name)
        if get_origin(info.annotation) in (list, dict):
            continue
        for arg in (info.annotation, *getattr(info.annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                keys |= _leaf_keys(arg, f"{prefix}{name}.")
    return keys


def test_every_setting_is_listed_with_a_description():
    rows = settings_rows()
    listed = {r.key for r in rows}
    assert _leaf_keys(Settings) - listed == set()  # groups and their fields, recursively
    undescribed = [r.key for r in rows if not r.description]
    assert undescribed == [], "add description= to these settings"


def test_rows_give_env_flag_type_and_default():
    by_key = {r.key: r for r in settings_rows()}
    listen = by_key["listen"]
    assert (listen.env, listen.flag, listen.default) == (
        "SIGNOFF_LISTEN",
        "--listen",
        "127.0.0.1:50051",
    )
    assert by_key["auth.tokens_file"].env == "SIGNOFF_AUTH__TOKENS_FILE"
    assert by_key["auth.jwt.issuer"].default == "required"
    assert by_key["max_depth"].type == "integer (> 0, <= 30)"
    assert by_key["log_format"].type == "one of text, json"
    assert by_key["http_listen"].flag == "--http-listen"
    assert by_key["shutdown_grace"].flag == ""  # no such serve flag
    # Items of a map of lists are documented under their parent, set through its JSON.
    url = by_key["notify.webhooks.<key>[].url"]
    assert (url.env, url.default, url.group) == ("", "required", "notify.webhooks.<key>[]")
    assert by_key["notify.webhooks"].type == "map of string to list of object"


def test_a_new_settings_group_is_picked_up_without_touching_the_generator(monkeypatch):
    class Extra(BaseModel):
        model_config = ConfigDict(extra="forbid")
        port: int = Field(9464, gt=0, description="Where the new thing listens.")

    fields = dict(Settings.model_fields)
    fields["extra"] = Field(default_factory=Extra, description="A group added later.")
    fields["extra"].annotation = Extra
    monkeypatch.setattr(Settings, "model_fields", fields)
    row = {r.key: r for r in settings_rows({"extra_port": "--extra-port"})}["extra.port"]
    assert row == Setting(
        key="extra.port",
        env="SIGNOFF_EXTRA__PORT",
        flag="--extra-port",
        type="integer (> 0)",
        default="9464",
        description="Where the new thing listens.",
        group="extra",
    )


def test_the_committed_reference_is_fresh():
    committed = (ROOT / REFERENCE).read_text(encoding="utf-8")
    assert committed == render_markdown(settings_rows()), "run `signoff config reference`"


def test_check_fails_naming_a_stale_file_and_write_fixes_it(tmp_path, capsys):
    out = tmp_path / "configuration.md"
    out.write_text("# old\n")
    assert main(["config", "reference", "--out", str(out), "--check"]) == 1
    err = capsys.readouterr().err
    assert f"{out} is stale" in err
    assert out.read_text() == "# old\n"  # --check writes nothing
    assert main(["config", "reference", "--out", str(out)]) == 0
    assert main(["config", "reference", "--out", str(out), "--check"]) == 0
    assert "| `db` | `SIGNOFF_DB` | `--db` |" in out.read_text()


def test_json_lists_the_same_rows(capsys):
    assert main(["config", "reference", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["key"] for d in data] == [r.key for r in settings_rows()]


def test_show_prints_effective_settings_with_secrets_masked(tmp_path, capsys, monkeypatch):
    config = tmp_path / "c.yaml"
    config.write_text(
        "notify:\n  webhooks:\n    finance:\n"
        "      - url: https://hooks.slack.com/services/T0/B0/s3cr3t\n        secret: hmac-key\n"
    )
    monkeypatch.setenv("SIGNOFF_MAX_BATCH", "7")
    db = "postgresql://svc:hunter2@db.example/signoff"
    assert main(["config", "show", "--config", str(config), "--db", db, "--json"]) == 0
    shown = capsys.readouterr().out
    data = json.loads(shown)
    assert data["max_batch"] == 7
    assert data["db"] == "postgresql://svc:********@db.example/signoff"
    hook = data["notify"]["webhooks"]["finance"][0]
    assert hook["url"] == "https://hooks.slack.com/********"
    for secret in ("hunter2", "s3cr3t", "hmac-key"):
        assert secret not in shown


def test_show_refuses_a_bad_config_with_one_line(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("listen: nowhere\n")
    assert main(["config", "show", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"config file {config}: listen (SIGNOFF_LISTEN): must be HOST:PORT" in err


@pytest.mark.parametrize("flag", ["--policies", "--db", "--listen", "--http-listen"])
def test_show_takes_the_serve_flags(flag, capsys):
    value = {"--policies": "/p", "--db": "sqlite:////d/x.db"}.get(flag, "127.0.0.1:1")
    assert main(["config", "show", flag, value, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[flag.removeprefix("--").replace("-", "_")] == value


def test_every_serve_flag_sets_a_documented_setting_and_defaults_to_unset():
    # `doctor` and `config show` take the serve flags by reading the parser: a flag whose
    # name is no setting, or whose default is not None, would be silently wrong there.
    keys = {r.key.replace(".", "_") for r in settings_rows({})}
    from signoff.cli.config_reference import serve_flags, subparser
    from signoff.cli.main import _parser

    assert set(serve_flags()) <= keys
    for action in subparser(_parser(), "serve")._actions:
        if action.option_strings and action.dest != "help":
            assert action.default is None, action.dest
