"""`signoff mcp-proxy` given bad input: upstreams that are missing or die at start,
arguments that are not JSON objects, Signoff unreachable (fail closed, fail open), a review
that times out, a bad config, no MCP SDK. Peers as in test_mcp_proxy.py."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any, Literal

import mcp_types as types

from signoff_client import AsyncClient, ReviewState

from .conftest import ServerHandle
from .mcp_peers import (
    config,
    dead_target,
    executed,
    payments,
    proxied,
    run_proxy,
    text,
)


class _AnyCallParams(types.RequestParams):
    name: str
    arguments: Any = None


class _AnyCall(types.Request[_AnyCallParams, Literal["tools/call"]]):
    """A tools/call the SDK's typed call_tool would not let us send."""

    method: Literal["tools/call"] = "tools/call"
    params: _AnyCallParams


async def test_arguments_that_are_not_a_json_object_are_a_tool_error(
    signoff: ServerHandle, tmp_path: Path
):
    async with proxied(config(tmp_path, signoff.target)) as session:
        for arguments, kind in (([50], "an array"), ("50", "a string"), (50, "a number")):
            result = await session.send_request(
                _AnyCall(params=_AnyCallParams(name="refund", arguments=arguments)),
                types.CallToolResult,
            )
            assert result.is_error
            assert text(result) == (
                f"the arguments of refund must be a JSON object, not {kind}; nothing was called"
            )
        huge = await session.call_tool("refund", {"account": "acct_8", "amount": 2**60})
        assert huge.is_error
        assert "Signoff cannot take these arguments (arguments.amount)" in text(huge)
        unknown = await session.call_tool("refund_everything", {})
        assert unknown.is_error
        assert text(unknown) == "unknown tool 'refund_everything'"
    assert executed(tmp_path) == []


async def test_unreachable_signoff_fails_closed_by_default(tmp_path: Path):
    async with proxied(config(tmp_path, dead_target())) as session:
        result = await session.call_tool("refund", {"account": "acct_9", "amount": 5})
    assert result.is_error
    assert re.fullmatch(
        r"Signoff is unreachable \(.+\); mcp\.payments\.refund was not made "
        r"\(fail_mode: closed\)",
        text(result),
    )
    assert executed(tmp_path) == []


async def test_unreachable_signoff_fails_open_when_configured_and_says_so_loudly(
    tmp_path: Path,
):
    errlog = tmp_path / "proxy.stderr"
    path = config(tmp_path, dead_target(), fail_mode="open")
    async with proxied(path, errlog) as session:
        for amount in (5, 6):
            result = await session.call_tool("refund", {"account": "acct_9", "amount": amount})
            assert not result.is_error
    assert [e["amount"] for e in executed(tmp_path)] == [5.0, 6.0]
    warnings = [line for line in errlog.read_text().splitlines() if "FAIL_OPEN" in line]
    assert len(warnings) == 2, errlog.read_text()
    assert "warning" in warnings[0]
    assert "WITHOUT a decision" in warnings[0]


async def test_a_review_that_times_out_is_not_executed(signoff: ServerHandle, tmp_path: Path):
    async with proxied(config(tmp_path, signoff.target, review_timeout=1)) as session:
        result = await session.call_tool("refund", {"account": "acct_10", "amount": 400})
    assert result.is_error
    said = re.fullmatch(
        r"no reviewer decided on mcp\.payments\.refund within 1s; review (\S+) was withdrawn "
        r"and the call was not made",
        text(result),
    )
    assert said, text(result)
    assert executed(tmp_path) == []
    async with AsyncClient(signoff.target, token="alice") as alice:
        review = await alice.get_review(said.group(1))
    assert review.state == ReviewState.CANCELLED
    assert review.resolution_note == "nobody decided within review_timeout"


def _failed_start(tmp_path: Path, upstream: dict[str, Any]) -> str:
    """The last line of what the proxy said when `upstream` kept it from starting (exit 3)."""
    done = run_proxy(config(tmp_path, dead_target(), upstreams=[upstream]))
    assert done.returncode == 3
    return done.stderr.strip().splitlines()[-1]


def test_an_upstream_that_is_not_installed_stops_the_proxy_with_its_name(tmp_path: Path):
    missing = {"name": "files", "command": "no-such-mcp-server", "args": ["--root", "/srv"]}
    assert _failed_start(tmp_path, missing) == (
        "signoff: upstream 'files' (no-such-mcp-server --root /srv) did not start: "
        "command 'no-such-mcp-server' not found (is it installed and on PATH?)"
    )


def test_an_upstream_that_exits_at_start_stops_the_proxy_with_its_stderr(tmp_path: Path):
    failing = payments(tmp_path, "--exit-at-start")
    last = _failed_start(tmp_path, failing)
    assert last.startswith("signoff: upstream 'payments' (")
    assert last.endswith(
        "did not start: its process exited; "
        "its stderr ends with: payments upstream: PAYMENTS_API_KEY is not set"
    )


def test_a_bad_config_names_file_line_and_field(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "principal:\n"
        "  id: bot\n"
        "fail_mode: half-open\n"
        "review_timeout: 10x\n"
        "upstreams:\n"
        "  - name: pay ments\n"
        "    command: python\n"
        "  - name: web\n"
        "    command: python\n"
        "    url: http://127.0.0.1:9/mcp\n"
        "  - name: env\n"
        "    url: http://127.0.0.1:9/mcp\n"
        "    headers: {Authorization: 'Bearer ${SIGNOFF_TEST_UNSET_VARIABLE}'}\n"
    )
    done = run_proxy(path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "signoff: config error:",
        f"{path}:13:30: upstreams[2].headers.Authorization: "
        "${SIGNOFF_TEST_UNSET_VARIABLE} is not set in the environment",
    ]
    path.write_text(path.read_text().replace("${SIGNOFF_TEST_UNSET_VARIABLE}", "x"))
    done = run_proxy(path)
    assert done.returncode == 2
    assert done.stderr.splitlines()[1:] == [
        f"{path}:3:12: fail_mode: Input should be 'closed' or 'open'",
        f"{path}:4:17: review_timeout: invalid duration '10x': use e.g. 45s, 30m, 2h, 1d or 1h30m",
        f"{path}:6:11: upstreams[0].name: invalid upstream name 'pay ments': letters, digits, "
        "'_' and '-', starting with a letter or digit (it becomes part of the action name "
        "mcp.<name>.<tool>)",
        f"{path}:8:5: upstreams[1]: give exactly one of 'command' (stdio) or 'url' "
        "(streamable HTTP)",
    ]


def test_without_the_mcp_sdk_the_command_says_how_to_install_it(tmp_path: Path):
    done = run_proxy(config(tmp_path, dead_target()), "sys.modules['mcp'] = None")
    assert done.returncode == 2
    assert done.stderr == (
        "signoff: mcp-proxy needs the MCP Python SDK, which is not installed: "
        f"{shlex.quote(sys.executable)} -m pip install 'mcp<3,>=2.3'\n"
    )


def test_http_off_loopback_needs_a_bearer_token(tmp_path: Path):
    done = run_proxy(config(tmp_path, dead_target()), extra=("--http", "0.0.0.0:0"))
    assert done.returncode == 2
    assert done.stderr == (
        "signoff: --http 0.0.0.0:0 is reachable from other machines, which would call tools "
        "as the configured principal: set http_token in the config (clients then send "
        "Authorization: Bearer <http_token>)\n"
    )


def test_an_upstream_that_hangs_at_start_stops_the_proxy_after_connect_timeout(tmp_path: Path):
    # 3 s: time for the interpreter to start and print on a loaded 2-core machine.
    hanging = {**payments(tmp_path, "--hang-at-start"), "connect_timeout": 3}
    last = _failed_start(tmp_path, hanging)
    assert last.startswith("signoff: upstream 'payments' (")
    assert last.endswith(
        "did not answer within 3s (connect_timeout); "
        "its stderr ends with: payments upstream: waiting for the ledger lock"
    )
