"""The `signoff mcp-proxy` config file: defaults, ${VAR}, relative paths, precise errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from signoff.mcp_proxy.config import McpConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "proxy.yaml"
    path.write_text(text)
    return path


def test_the_readme_example_loads_with_its_defaults_and_paths_beside_it():
    config = load_config(REPO / "examples" / "mcp-proxy.yaml")
    assert config.fail_mode == "closed"
    assert config.review_timeout == 600.0
    assert config.progress_interval == 10.0
    assert config.principal.as_dict()["id"] == "claude-agent"
    [payments] = config.upstreams
    assert payments.name == "payments"
    assert payments.cwd == REPO / "examples"  # python mcp_payments.py runs beside the file
    assert payments.command == sys.executable  # no virtualenv to activate first


@pytest.mark.parametrize(
    ("command", "runs"),
    [
        ("python", sys.executable),
        ("python3", sys.executable),
        ("python3.11", "python3.11"),
        ("/usr/bin/python3", "/usr/bin/python3"),
        ("npx", "npx"),
    ],
)
def test_a_bare_python_is_the_proxys_own_interpreter(tmp_path, command, runs):
    path = write(
        tmp_path, f"principal: {{id: bot}}\nupstreams:\n  - {{name: u, command: {command}}}\n"
    )
    assert load_config(path).upstreams[0].command == runs


def test_environment_variables_and_relative_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("PROXY_TEST_TOKEN", "s3cret")
    path = write(
        tmp_path,
        "signoff: {token: '${PROXY_TEST_TOKEN}', ca: certs/ca.pem, timeout: 2s}\n"
        "principal: {id: bot}\n"
        "fail_mode: open\n"
        "review_timeout: 1h30m\n"
        "upstreams:\n"
        "  - {name: files, command: npx, args: [server-files], cwd: data}\n"
        "  - {name: web, url: 'http://127.0.0.1:9/mcp', headers: {X-Key: '${PROXY_TEST_TOKEN}'}}\n",
    )
    config = load_config(path)
    assert config.signoff.token == "s3cret"
    assert config.signoff.ca == tmp_path / "certs" / "ca.pem"
    assert config.signoff.timeout == 2.0
    assert config.review_timeout == 5400.0
    assert config.upstreams[0].cwd == tmp_path / "data"
    assert config.upstreams[1].cwd is None
    assert config.upstreams[1].headers == {"X-Key": "s3cret"}
    assert config.upstreams[1].where == "http://127.0.0.1:9/mcp"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("principal: {id: bot}\n", "1:1: missing required key 'upstreams'"),
        (
            "principal: {kind: agent}\nupstreams:\n  - {name: a, command: x}\n",
            "1:12: principal: missing required key 'id'",
        ),
        (
            "principal: {id: bot}\nupstreams: []\n",
            "2:12: upstreams: List should have at least 1 item after validation, not 0",
        ),
        (
            "principal: {id: bot}\nupstreams:\n  - {name: a, command: x}\n"
            "  - {name: a, command: y}\n",
            "4:12: upstreams[1].name: 'a' is also upstreams[0]",
        ),
        (
            "principal: {id: bot}\nupstreams:\n  - {name: a, command: x, headers: {K: v}}\n",
            "3:5: upstreams[0]: headers are for 'url' upstreams, not 'command' ones",
        ),
        (
            "principal: {id: bot}\nprogress_interval: 0\nupstreams:\n  - {name: a, command: x}\n",
            "2:20: progress_interval: must be longer than zero, got 0.0",
        ),
        (
            "principal: {id: bot}\nupstreams:\n  - {name: a, command: x}\nupstreams: []\n",
            "4:1: duplicate key 'upstreams'",
        ),
        ("principal: [bot\n", "2:1: invalid YAML: did not find expected ',' or ']'"),
        ("- a list\n", "1:1: the config is a mapping with 'principal' and 'upstreams'"),
    ],
)
def test_errors_name_line_column_and_field(tmp_path, text, error):
    path = write(tmp_path, text)
    with pytest.raises(McpConfigError) as exc:
        load_config(path)
    assert str(exc.value) == f"{path}:{error}"


def test_a_missing_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(McpConfigError, match="cannot read the config file"):
        load_config(tmp_path / "nope.yaml")


def test_annotations_pinned_per_tool(tmp_path):
    path = write(
        tmp_path,
        "principal: {id: bot}\nupstreams:\n  - name: a\n    command: x\n    annotations:\n"
        "      wipe: {destructiveHint: false, title: Wipe}\n",
    )
    [upstream] = load_config(path).upstreams
    pins = upstream.annotations["wipe"]
    assert pins.pinned() == {"destructiveHint": False}
    assert pins.title == "Wipe"
    bad = write(
        tmp_path,
        "principal: {id: bot}\nupstreams:\n  - name: a\n    command: x\n    annotations:\n"
        "      wipe: {destructive: true}\n",
    )
    with pytest.raises(McpConfigError) as exc:
        load_config(bad)
    assert "upstreams[0].annotations.wipe.destructive" in str(exc.value)
