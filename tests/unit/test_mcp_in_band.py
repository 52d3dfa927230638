"""mcp-proxy in-band approval, without peers: the config, the answer the form allows, the
question shown (the MCP round trips are in tests/e2e/test_mcp_proxy_in_band.py)."""

from __future__ import annotations

from pathlib import Path

import mcp_types as types
import pytest

from signoff.mcp_proxy import serve
from signoff.mcp_proxy.config import McpConfigError, load_config
from signoff.mcp_proxy.in_band import MAX_COMMENT, read_answer
from signoff_client import Verdict

BASE = "principal: {id: bot, on_behalf_of: bob}\nupstreams:\n  - {name: u, command: npx}\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "proxy.yaml"
    path.write_text(text)
    return path


def test_in_band_takes_the_human_token_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGNOFF_HUMAN_TOKEN", "bobs-token")
    path = write(tmp_path, BASE + "in_band: {token: '${SIGNOFF_HUMAN_TOKEN}'}\n")
    config = load_config(path)
    assert config.in_band is not None
    assert config.in_band.token == "bobs-token"
    assert load_config(write(tmp_path, BASE)).in_band is None  # off unless configured


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("in_band: {}\n", "proxy.yaml:4:10: in_band: missing required key 'token'"),
        ("in_band: {token: ''}\n", "proxy.yaml:4:18: in_band.token: String should have at least"),
        ("in_band: {token: t, ask: all}\n", "proxy.yaml:4:21: in_band.ask: unknown key 'ask'"),
    ],
)
def test_in_band_errors_name_line_column_and_field(tmp_path, text, error):
    with pytest.raises(McpConfigError) as info:
        load_config(write(tmp_path, BASE + text))
    assert str(info.value).startswith(f"{tmp_path}/{error}"), str(info.value)


def test_the_agents_own_token_is_refused_as_the_humans(tmp_path):
    config = load_config(
        write(tmp_path, "signoff: {token: same}\n" + BASE + "in_band: {token: same}\n")
    )
    with pytest.raises(McpConfigError, match=r"in_band\.token is the agent's token"):
        serve._human(config, "127.0.0.1:1", None)


def accept(content: dict | None) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content=content)


@pytest.mark.parametrize(
    ("answer", "read"),
    [
        (accept({"decision": "approve"}), (Verdict.APPROVE, "")),
        (accept({"decision": "reject", "comment": "no"}), (Verdict.REJECT, "no")),
        (accept({"decision": "approve", "comment": None}), (Verdict.APPROVE, "")),
        (types.ElicitResult(action="decline"), "decline"),
        (types.ElicitResult(action="cancel"), "cancel"),
        (accept(None), "malformed answer: decision None is not approve or reject"),
        (accept({"decision": "APPROVE"}), "malformed answer: decision 'APPROVE' is not"),
        (accept({"decision": "modify"}), "malformed answer: decision 'modify' is not"),
        (accept({"decision": True}), "malformed answer: decision True is not"),
        (accept({"decision": ["approve"]}), "malformed answer: decision ['approve'] is not"),
        (
            accept({"decision": "approve", "params": "x", "grant": True}),
            "malformed answer: unexpected fields grant, params",
        ),
        (accept({"decision": "reject", "comment": 3}), "malformed answer: comment is not"),
        (
            accept({"decision": "reject", "comment": "x" * (MAX_COMMENT + 1)}),
            "malformed answer: comment is not",
        ),
    ],
)
def test_only_an_offered_choice_is_an_answer(answer, read):
    got = read_answer(answer)
    if isinstance(read, str):
        assert isinstance(got, str)
        assert got.startswith(read)
    else:
        assert got == read
