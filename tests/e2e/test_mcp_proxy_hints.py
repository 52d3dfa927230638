"""Tool annotations in the decision, and tools the policy denies left out of tools/list,
with real MCP peers: the hints upstream (tests/e2e/mcp_upstream_hints.py, whose hints a
test rewrites while it runs), the proxy as a subprocess, an SDK client over stdio and
streamable HTTP, and a real Signoff server (policies/mcp.yaml, or a policy of the test's)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import ClientSession

from signoff import pb
from signoff_client import AsyncClient, Client, errors

from .conftest import MakeServer, ServerHandle
from .mcp_peers import (
    WAIT,
    audited,
    config,
    http_session,
    proxied,
    served_http,
    text,
    waiting_call,
)

UPSTREAM = Path(__file__).with_name("mcp_upstream_hints.py")
TOKEN = "t-0123456789abcdef"


def hints_upstream(tmp_path: Path, hints: dict[str, Any], **pins: Any) -> dict[str, Any]:
    """The hints upstream (named `hints`) with `hints` in its file; `pins`: the config's
    `annotations` for it."""
    write_hints(tmp_path, hints)
    upstream = {
        "name": "hints",
        "command": sys.executable,
        "args": [str(UPSTREAM)],
        "env": {"HINTS_FILE": str(tmp_path / "hints.json"), "HINTS_RAN": str(tmp_path / "ran")},
    }
    return {**upstream, "annotations": pins} if pins else upstream


def write_hints(tmp_path: Path, hints: dict[str, Any]) -> None:
    (tmp_path / "hints.json").write_text(json.dumps(hints))


def ran(tmp_path: Path) -> list[str]:
    path = tmp_path / "ran"
    return path.read_text().split() if path.exists() else []


@asynccontextmanager
async def session_over(transport: str, path: Path, **options: Any) -> AsyncIterator[ClientSession]:
    """An SDK client session with the proxy over `transport` (stdio or http)."""
    if transport == "stdio":
        async with proxied(path, **options) as session:
            yield session
        return
    async with served_http(path) as url, http_session(url, TOKEN, **options) as session:
        yield session


async def listed(session: ClientSession) -> set[str]:
    return {t.name for t in (await session.list_tools()).tools}


# --- annotations reach CEL (policies/mcp.yaml) ------------------------------------------


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_the_hints_decide_read_only_runs_destructive_is_hidden_and_denied_no_hint_waits(
    signoff: ServerHandle, tmp_path: Path, transport: str
):
    hints = {
        "peek": {"readOnlyHint": True, "title": "Peek at the ledger"},
        "wipe": {"destructiveHint": True},
        "poke": {},
    }
    upstream = hints_upstream(tmp_path, hints)
    path = config(tmp_path, signoff.target, upstreams=[upstream], http_token=TOKEN)
    async with session_over(transport, path) as session:
        assert await listed(session) == {"peek", "poke"}
        peek = await session.call_tool("peek", {})
        assert text(peek) == "ran peek"
        wipe = await session.call_tool("wipe", {})
        assert wipe.is_error
        assert "mcp.hints.wipe is marked destructive (destructiveHint)" in text(wipe)
        call, (_, group, reason) = await waiting_call(session, {}, "poke")
        assert group == "tool-owners"
        assert "not marked read-only" in reason
        call.cancel()
    assert ran(tmp_path) == ["peek"]
    [denied] = audited(signoff, "mcp.hints.wipe")
    assert denied.outcome == pb.common.OUTCOME_DENY
    [allowed] = audited(signoff, "mcp.hints.peek")
    mcp = json.loads(allowed.payload_json)["request"]["context"]["mcp"]
    assert (mcp["annotations"], mcp["title"], mcp["pinned"]) == (
        {"readOnlyHint": True},
        "Peek at the ledger",
        [],
    )


async def test_the_config_pins_hints_over_the_upstreams(signoff: ServerHandle, tmp_path: Path):
    hints = {"peek": {"readOnlyHint": True}, "wipe": {"destructiveHint": True}}
    # The deployment knows better than the upstream, both ways.
    pins = {
        "peek": {"destructiveHint": True},
        "wipe": {"destructiveHint": False, "readOnlyHint": True, "title": "Wipe the cache"},
    }
    upstream = hints_upstream(tmp_path, hints, **pins)
    async with proxied(config(tmp_path, signoff.target, upstreams=[upstream])) as session:
        assert await listed(session) == {"wipe"}
        assert text(await session.call_tool("wipe", {})) == "ran wipe"
        assert (await session.call_tool("peek", {})).is_error
    assert ran(tmp_path) == ["wipe"]
    [entry] = audited(signoff, "mcp.hints.wipe")
    mcp = json.loads(entry.payload_json)["request"]["context"]["mcp"]
    assert mcp["annotations"] == {"readOnlyHint": True, "destructiveHint": False}
    assert mcp["pinned"] == ["destructiveHint", "readOnlyHint"]
    assert mcp["title"] == "Wipe the cache"


async def test_hints_changed_between_list_and_call_are_merged_toward_caution(
    signoff: ServerHandle, tmp_path: Path
):
    upstream = hints_upstream(tmp_path, {"peek": {"readOnlyHint": True}, "poke": {}})
    async with proxied(config(tmp_path, signoff.target, upstreams=[upstream])) as session:
        assert await listed(session) == {"peek", "poke"}
        # Read-only when listed, destructive when called: the call sees destructive.
        write_hints(tmp_path, {"peek": {"destructiveHint": True}, "poke": {"readOnlyHint": True}})
        peek = await session.call_tool("peek", {})
        assert peek.is_error
        assert "marked destructive" in text(peek)
        # No hint when listed, read-only when called: still not read-only, so reviewed.
        call, (_, group, _) = await waiting_call(session, {}, "poke")
        assert group == "tool-owners"
        call.cancel()
    assert ran(tmp_path) == []
    [entry] = audited(signoff, "mcp.hints.peek")
    mcp = json.loads(entry.payload_json)["request"]["context"]["mcp"]
    # readOnlyHint: true once, unknown once: unknown. destructiveHint: true once: true.
    assert mcp["annotations"] == {"destructiveHint": True}


# --- tools the policy denies whatever their arguments are not offered -----------------

POLICY = """
name: hints
actions: ["mcp.*"]
rules:
  - name: no-wipe
    when: action.name == "mcp.hints.wipe"
    decision: deny
    reason: Nobody wipes through an agent.
  - name: no-peek-at-etc
    when: action.name == "mcp.hints.peek" && action.params.path == "/etc"
    decision: deny
    reason: Not /etc.
  - name: no-poke-in-a-session
    when: action.name == "mcp.hints.poke" && context.mcp.session_id != ""
    decision: deny
    reason: Poke is for no session.
  - name: the-rest
    when: "true"
    decision: allow
    reason: Allowed.
"""


# How the proxy learns of the new bundle: its periodic screening (policy_refresh), or a
# call's decision that names another bundle (then at once, whatever policy_refresh).
@pytest.mark.parametrize(("transport", "learns_by"), [("stdio", "refresh"), ("http", "decision")])
async def test_a_tool_denied_whatever_its_arguments_is_not_listed_and_a_new_bundle_relists(
    make_server: MakeServer,
    policy_dir: Callable[[dict[str, str]], Path],
    tmp_path: Path,
    transport: str,
    learns_by: str,
):
    policies = policy_dir({"hints.yaml": POLICY})
    server = make_server(policies)
    changed = asyncio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    upstream = hints_upstream(tmp_path, {"peek": {}, "wipe": {}, "poke": {}})
    refresh = 0.2 if learns_by == "refresh" else 3600
    path = config(
        tmp_path, server.target, upstreams=[upstream], http_token=TOKEN, policy_refresh=refresh
    )
    async with session_over(transport, path, message_handler=on_message) as session:
        # wipe: denied by name. peek: only for some arguments. poke: by what each session
        # sets (context.mcp.session_id), which a list cannot know: both stay listed.
        assert await listed(session) == {"peek", "poke"}
        wiped = await session.call_tool("wipe", {})
        assert text(wiped) == "Signoff denied mcp.hints.wipe: Nobody wipes through an agent."
        assert text(await session.call_tool("peek", {"path": "/tmp"})) == "ran peek"
        assert (await session.call_tool("peek", {"path": "/etc"})).is_error
        assert (await session.call_tool("poke", {})).is_error

        # A new bundle that denies peek whatever its arguments, and lets wipe run.
        (policies / "hints.yaml").write_text(POLICY.replace('"mcp.hints.wipe"', '"mcp.hints.peek"'))
        loaded, problems = server.call(server.running.app.reload())
        assert loaded, problems
        if learns_by == "decision":
            assert not changed.is_set()
            assert (await session.call_tool("poke", {})).is_error  # decided by the new bundle
        await asyncio.wait_for(changed.wait(), WAIT)
        assert await listed(session) == {"wipe", "poke"}
        assert text(await session.call_tool("wipe", {})) == "ran wipe"
        assert (await session.call_tool("peek", {"path": "/tmp"})).is_error
    assert ran(tmp_path) == ["peek", "wipe"]
    outcomes = [e.outcome for e in audited(server, "mcp.hints.wipe")]
    assert outcomes == [pb.common.OUTCOME_DENY, pb.common.OUTCOME_AUTO_ALLOW]


async def test_screen_answers_for_every_argument_and_refuses_params(
    signoff: ServerHandle,
):
    async with AsyncClient(signoff.target, token="claude-agent") as client:
        context = {"mcp": {"upstream": "payments", "tool": "x", "annotations": {}}}
        base = {"resource": {"kind": "mcp_server", "id": "payments"}}
        requests = [
            {"action": "mcp.payments.delete_customer", **base, "context": _hinted(True)},
            {"action": "mcp.payments.refund", **base, "context": context},
            {"action": "mcp.payments.other", **base, "context": context},
        ]
        [delete, refund, other] = await client.screen(
            requests, varying=["context.mcp.session_id", "context.mcp.client"]
        )
        assert delete.denied
        assert delete.rule.startswith("rule destructive-tool (mcp.yaml:")
        assert "marked destructive" in delete.reason
        # refund-over-limit denies, but only for some amounts: not denied whatever.
        assert not refund.denied
        assert not other.denied
        assert delete.policy_version == refund.policy_version != ""
        with pytest.raises(errors.InvalidArgument) as err:
            await client.screen([{"action": "mcp.payments.refund", "params": {"amount": 1}}])
        assert err.value.field == "requests[0].action.params"
        with pytest.raises(errors.InvalidArgument) as err:
            await client.screen([{"action": "a"}], varying=["principal.id"])
        assert err.value.field == "varying[0]"
    with Client(signoff.target, token="claude-agent") as sync:  # the twin says the same
        assert [s.denied for s in sync.screen(requests)] == [True, False, False]


def _hinted(destructive: bool) -> dict[str, Any]:
    annotations = {"destructiveHint": destructive}
    return {"mcp": {"upstream": "payments", "tool": "x", "annotations": annotations}}
