"""mcp-proxy in-band approval, without peers: the config, the answer the form allows, the
question shown (the MCP round trips are in tests/e2e/test_mcp_proxy_in_band.py)."""

from __future__ import annotations

from pathlib import Path

import mcp_types as types
import pytest

from signoff.mcp_proxy import serve, session_approvals
from signoff.mcp_proxy.config import McpConfigError, load_config
from signoff.mcp_proxy.in_band import MAX_COMMENT, read_answer
from signoff.mcp_proxy.session_approvals import SessionApprovals, scope, shape
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
    assert config.in_band.console_url is None  # form mode only, unless configured
    linked = load_config(write(tmp_path, BASE + "in_band: {token: t, console_url: 'https://c/'}\n"))
    assert linked.in_band is not None
    assert linked.in_band.console_url == "https://c/"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("in_band: {}\n", "proxy.yaml:4:10: in_band: missing required key 'token'"),
        ("in_band: {token: ''}\n", "proxy.yaml:4:18: in_band.token: String should have at least"),
        ("in_band: {token: t, ask: all}\n", "proxy.yaml:4:21: in_band.ask: unknown key 'ask'"),
        (
            "in_band: {token: t, console_url: 'javascript:alert(1)'}\n",
            "proxy.yaml:4:34: in_band.console_url: String should match pattern",
        ),
        (
            "in_band: {token: t, console_url: 'http://host/a b'}\n",
            "proxy.yaml:4:34: in_band.console_url: String should match pattern",
        ),
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
        (accept({"decision": "approve"}), (Verdict.APPROVE, "", False)),
        (accept({"decision": "approve_session"}), (Verdict.APPROVE, "", True)),
        (accept({"decision": "reject", "comment": "no"}), (Verdict.REJECT, "no", False)),
        (accept({"decision": "approve", "comment": None}), (Verdict.APPROVE, "", False)),
        (types.ElicitResult(action="decline"), "decline"),
        (types.ElicitResult(action="cancel"), "cancel"),
        (
            accept(None),
            "malformed answer: decision None is not one of approve, approve_session, reject",
        ),
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


def test_the_shape_is_paths_and_json_types_not_values():
    assert shape({"a": 1, "b": {"c": "x", "d": [1]}, "e": None, "f": {}, "g": True}) == {
        ("a", "number"),
        ("b.c", "string"),
        ("b.d", "array"),
        ("e", "null"),
        ("f", "object"),
        ("g", "boolean"),
    }
    assert shape({"amount": 1}) == shape({"amount": 2.5})
    assert shape({"amount": 1}) != shape({"amount": "1"})
    rules = [("mcp", "refund")]
    covered = scope("mcp.p.refund", rules, {"amount": 1})
    approvals = SessionApprovals()
    approvals.add("s1", covered, "r1")
    approvals.add("s1", covered, "r2")  # the first review stays the one named
    assert approvals.find("s1", scope("mcp.p.refund", rules, {"amount": 9})) == "r1"
    assert approvals.find("s2", covered) is None  # another session
    assert approvals.find("s1", scope("mcp.p.other", rules, {"amount": 9})) is None
    assert approvals.find("s1", scope("mcp.p.refund", [("mcp", "x")], {"amount": 9})) is None
    assert approvals.find("s1", scope("mcp.p.refund", rules, {"amount": 9, "c": "x"})) is None


def test_the_oldest_sessions_are_forgotten_first(monkeypatch):
    monkeypatch.setattr(session_approvals, "MAX_SESSIONS", 2)
    approvals = session_approvals.SessionApprovals()
    covered = session_approvals.scope("a", [], {})
    for session in ("s1", "s2", "s3"):
        approvals.add(session, covered, f"r-{session}")
    assert [approvals.find(s, covered) for s in ("s1", "s2", "s3")] == [None, "r-s2", "r-s3"]
