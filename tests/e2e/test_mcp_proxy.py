"""`signoff mcp-proxy` end to end with real MCP peers (see tests/e2e/mcp_peers.py): the
three outcomes, edits and rejections, the transports, upstreams that crash or change."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

import httpx2
import mcp_types as types
from google.protobuf.json_format import MessageToDict

from signoff import pb
from signoff_client import AsyncClient, ReviewState, Verdict

from .conftest import ServerHandle
from .mcp_peers import (
    UPSTREAM,
    WAIT,
    Reviews,
    act,
    audited,
    config,
    executed,
    http_session,
    kill,
    payments,
    proxied,
    reviewed_call,
    run_proxy,
    served_http,
    text,
    waiting_call,
)

# --- the three outcomes ----------------------------------------------------------------


async def test_tools_listed_but_the_denied_allow_forwards_and_deny_returns_the_reason(
    signoff: ServerHandle, tmp_path: Path
):
    async with proxied(config(tmp_path, signoff.target)) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        # delete_customer (destructiveHint) is denied whatever its arguments: not offered.
        assert set(tools) == {
            "refund",
            "get_balance",
            "crash",
            "export_ledger",
            "pid",
            "enable_chargebacks",
            "get_ledger_news",
        }
        assert tools["refund"].input_schema["required"] == ["account", "amount"]

        small = await session.call_tool("refund", {"account": "acct_1", "amount": 50})
        assert not small.is_error
        assert text(small) == "refunded 50 EUR to acct_1"
        balance = await session.call_tool("get_balance", {"account": "acct_1"})
        assert text(balance) == "acct_1: 100 EUR"

        big = await session.call_tool("refund", {"account": "acct_1", "amount": 5000})
        assert big.is_error
        assert text(big) == (
            "Signoff denied mcp.payments.refund: "
            "Refunds above 1,000 through an MCP tool are never issued by an agent."
        )
        # Called anyway (a model that remembers it): denied, and in the audit log.
        delete = await session.call_tool("delete_customer", {"account": "acct_1"})
        assert delete.is_error
        assert text(delete) == (
            "Signoff denied mcp.payments.delete_customer: mcp.payments.delete_customer is "
            "marked destructive (destructiveHint); destructive tools are run by a person, "
            "not an agent"
        )
    assert executed(tmp_path) == [
        {"account": "acct_1", "amount": 50.0, "currency": "EUR", "count": 1}
    ]
    [entry] = audited(signoff, "mcp.payments.delete_customer")
    assert entry.outcome == pb.common.OUTCOME_DENY
    assert json.loads(entry.payload_json)["request"]["action"]["params"] == {"account": "acct_1"}


async def test_review_approved_forwards_the_call_after_progress_naming_the_review(
    signoff: ServerHandle, tmp_path: Path
):
    async with proxied(config(tmp_path, signoff.target)) as session:
        result, (review_id, group, reason) = await reviewed_call(
            session, signoff, {"account": "acct_2", "amount": 250}, Verdict.APPROVE
        )
        assert not result.is_error
        assert text(result) == "refunded 250 EUR to acct_2"
    assert (group, reason) == ("finance", "Refund of 250 through MCP needs a finance reviewer")
    assert executed(tmp_path) == [
        {"account": "acct_2", "amount": 250.0, "currency": "EUR", "count": 1}
    ]
    async with AsyncClient(signoff.target, token="alice") as alice:
        review = await alice.get_review(review_id)
    request = MessageToDict(review.raw.request)
    assert request["action"]["name"] == "mcp.payments.refund"
    # Dev mode: nothing vouches, so the proxy's word is the fact, and kept as the claim too.
    sent = {"kind": "agent", "tags": ["mcp"], "attributes": {}}
    assert request["principal"] == {"id": "claude-agent", **sent, "claimed": sent}
    assert request["resource"] == {"kind": "mcp_server", "id": "payments"}
    mcp = request["context"]["mcp"]
    session_id = mcp.pop("session_id")
    assert re.fullmatch(r"[0-9a-f]{32}", session_id)
    # One request_id per MCP call: a retried Evaluate returns this review, not a new one.
    assert re.fullmatch(rf"mcp:{session_id}:\d+", request["requestId"])
    assert mcp == {
        "client": {"name": "mcp", "version": "0.1.0"},
        "upstream": "payments",
        "tool": "refund",
        # The hints the upstream set (examples/mcp_payments.py); none pinned by the config.
        "annotations": {"readOnlyHint": False, "destructiveHint": False},
        "title": "",
        "pinned": [],
    }


async def test_edited_approval_executes_the_reviewers_arguments(
    signoff: ServerHandle, tmp_path: Path
):
    async with proxied(config(tmp_path, signoff.target)) as session:
        edited = {"account": "acct_3", "amount": 120, "currency": "EUR", "count": 3}
        result, _ = await reviewed_call(
            session,
            signoff,
            {"account": "acct_3", "amount": 250, "count": 2},
            Verdict.MODIFY,
            params=edited,
        )
        assert text(result) == "refunded 120 EUR to acct_3"
    # count is an integer parameter: the reviewer's 3 (3.0 on the wire) reaches it as 3.
    assert executed(tmp_path) == [
        {"account": "acct_3", "amount": 120.0, "currency": "EUR", "count": 3}
    ]


async def test_rejection_returns_the_comment_and_never_reaches_the_upstream(
    signoff: ServerHandle, tmp_path: Path
):
    async with proxied(config(tmp_path, signoff.target)) as session:
        result, (_review_id, _, _) = await reviewed_call(
            session,
            signoff,
            {"account": "acct_4", "amount": 900},
            Verdict.REJECT,
            comment="already refunded in T-99",
        )
    assert result.is_error
    assert text(result) == (
        "a reviewer (alice) rejected mcp.payments.refund: already refunded in T-99"
    )
    assert executed(tmp_path) == []


# --- transports and failures -------------------------------------------------------------


async def test_upstream_crash_is_a_tool_error_and_the_next_call_restarts_it(
    signoff: ServerHandle, tmp_path: Path
):
    async with proxied(config(tmp_path, signoff.target)) as session:
        # crash is no known tool of policies/mcp.yaml: a tool owner approves it.
        died, _ = await reviewed_call(session, signoff, {}, Verdict.APPROVE, tool="crash")
        assert died.is_error
        assert "upstream 'payments'" in text(died)
        assert "died during the call: its process exited" in text(died)
        assert "payments upstream crashing: on purpose" in text(died)

        again = await session.call_tool("refund", {"account": "acct_5", "amount": 10})
        assert not again.is_error, text(again)
    assert [e["account"] for e in executed(tmp_path)] == ["acct_5"]


async def test_streamable_http_with_a_bearer_token_and_a_review(
    signoff: ServerHandle, tmp_path: Path
):
    token = "t-0123456789abcdef"
    async with served_http(config(tmp_path, signoff.target, http_token=token)) as url:
        async with httpx2.AsyncClient() as anonymous:
            refused = await anonymous.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert refused.status_code == 401
        async with http_session(url, token) as session:
            assert "refund" in {t.name for t in (await session.list_tools()).tools}
            result, _ = await reviewed_call(
                session, signoff, {"account": "acct_6", "amount": 300}, Verdict.APPROVE
            )
            assert text(result) == "refunded 300 EUR to acct_6"
    assert [e["amount"] for e in executed(tmp_path)] == [300.0]


async def test_clashing_tool_names_are_namespaced_and_the_rest_passes_through(
    signoff: ServerHandle, tmp_path: Path
):
    ups = [payments(tmp_path), payments(tmp_path, name="billing")]
    async with proxied(config(tmp_path, signoff.target, upstreams=ups)) as session:
        names = {t.name for t in (await session.list_tools()).tools}
        assert "payments__refund" in names
        assert "billing__get_balance" in names
        assert "refund" not in names
        # mcp.billing.refund is no refund to policies/mcp.yaml; mcp.billing.get_balance reads.
        balance = await session.call_tool("billing__get_balance", {"account": "acct_7"})
        assert text(balance) == "acct_7: 100 EUR"
        small = await session.call_tool("payments__refund", {"account": "acct_7", "amount": 5})
        assert not small.is_error
        # Prompts (namespaced like tools) and resources pass through to their upstream.
        prompts = {p.name for p in (await session.list_prompts()).prompts}
        assert {"payments__refund_policy", "billing__refund_policy"} <= prompts
        prompt = await session.get_prompt("billing__refund_policy")
        assert prompt.messages[0].content.text == "Refunds take 3 to 5 business days."
        resources = await session.list_resources()
        uris = sorted(str(r.uri) for r in resources.resources)
        assert uris == ["ledger://billing/summary", "ledger://payments/summary"]
        for name in ("billing", "payments"):
            read = await session.read_resource(f"ledger://{name}/summary")
            assert read.contents[0].text == f"{name}: 3 refunds today"


async def test_an_upstream_over_streamable_http_with_headers(signoff: ServerHandle, tmp_path: Path):
    upstream = await asyncio.create_subprocess_exec(
        sys.executable,
        str(UPSTREAM),
        "--http",
        "0",
        "--api-key",
        "k-1",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "REFUND_LOG": str(tmp_path / "refunds.jsonl")},
    )
    try:
        assert upstream.stdout is not None
        url = (await asyncio.wait_for(upstream.stdout.readline(), WAIT)).decode().strip()
        assert url.startswith("http://127.0.0.1:"), url
        remote = {"name": "payments", "url": url, "headers": {"X-Api-Key": "k-1"}}
        async with proxied(config(tmp_path, signoff.target, upstreams=[remote])) as session:
            assert "refund" in {t.name for t in (await session.list_tools()).tools}
            result, _ = await reviewed_call(
                session, signoff, {"account": "acct_11", "amount": 150}, Verdict.APPROVE
            )
            assert text(result) == "refunded 150 EUR to acct_11"
        wrong = {**remote, "headers": {"X-Api-Key": "k-2"}}
        done = run_proxy(config(tmp_path, signoff.target, upstreams=[wrong]))
        assert done.returncode == 3
        assert (
            done.stderr.strip()
            .splitlines()[-1]
            .startswith(f"signoff: upstream 'payments' ({url}) did not start: ")
        )
        assert done.stderr.strip().endswith(f"last HTTP error: HTTP 401 Unauthorized from {url}")
    finally:
        upstream.terminate()
        await asyncio.wait_for(upstream.wait(), WAIT)
    assert [e["amount"] for e in executed(tmp_path)] == [150.0]


async def test_a_call_the_client_cancels_withdraws_its_review(
    signoff: ServerHandle, tmp_path: Path
):
    async with proxied(config(tmp_path, signoff.target)) as session:
        call, (review_id, _, _) = await waiting_call(session, {"account": "acct_12", "amount": 400})
        call.cancel()  # the SDK tells the proxy: notifications/cancelled
        async with AsyncClient(signoff.target, token="alice") as alice:
            review = await alice.wait_for_review(review_id, timeout=WAIT)
        assert review.state == ReviewState.CANCELLED
        assert review.resolution_note == "the MCP client cancelled the tool call or went away"
        # The session goes on.
        small = await session.call_tool("refund", {"account": "acct_12", "amount": 5})
        assert not small.is_error
    assert [e["amount"] for e in executed(tmp_path)] == [5.0]


async def test_the_upstreams_progress_follows_the_reviews_and_keeps_increasing(
    signoff: ServerHandle, tmp_path: Path
):
    async with proxied(config(tmp_path, signoff.target)) as session:
        reviews = Reviews()
        result, _ = await reviewed_call(
            session, signoff, {}, Verdict.APPROVE, tool="export_ledger", reviews=reviews
        )
    assert text(result) == "ledger exported"
    values = [p for p, _, _ in reviews.progress_log]
    assert values == sorted(values)
    assert len(set(values)) == len(values)
    waited = values[-3]  # the last beat of the wait, then the upstream's two steps
    assert reviews.progress_log[-2:] == [
        (waited + 1, waited + 2, "ledger: half exported"),
        (waited + 2, waited + 2, "ledger: exported"),
    ]


async def test_an_upstream_that_died_between_calls_is_restarted_before_the_next(
    signoff: ServerHandle, tmp_path: Path
):
    errlog = tmp_path / "proxy.stderr"
    async with proxied(config(tmp_path, signoff.target), errlog) as session:
        # pid reads (policies/mcp.yaml sends it to tool owners): approve it once.
        first, _ = await reviewed_call(session, signoff, {}, Verdict.APPROVE, tool="pid")
        pid = int(text(first))
        await asyncio.wait_for(kill(pid), WAIT)
        # No error for this call: the proxy finds the upstream gone before sending it.
        after = await session.call_tool("refund", {"account": "acct_13", "amount": 7})
        assert not after.is_error, text(after)
    assert [e["amount"] for e in executed(tmp_path)] == [7.0]
    assert "mcp.upstream.lost upstream=payments" in errlog.read_text()


async def test_a_call_waiting_for_review_does_not_hold_up_the_others(
    signoff: ServerHandle, tmp_path: Path
):
    async with proxied(config(tmp_path, signoff.target)) as session:
        waiting, (review_id, _, _) = await waiting_call(
            session, {"account": "acct_14", "amount": 600}
        )
        small = await session.call_tool("refund", {"account": "acct_15", "amount": 9})
        assert text(small) == "refunded 9 EUR to acct_15"
        assert not waiting.done()
        await act(signoff, review_id, Verdict.APPROVE)
        assert text(await asyncio.wait_for(waiting, WAIT)) == "refunded 600 EUR to acct_14"
    assert [e["account"] for e in executed(tmp_path)] == ["acct_15", "acct_14"]


async def test_an_upstreams_new_tool_is_announced_to_the_client(
    signoff: ServerHandle, tmp_path: Path
):
    changed = asyncio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with proxied(config(tmp_path, signoff.target), message_handler=on_message) as session:
        assert session.server_capabilities.tools.list_changed is True
        assert "chargeback" not in {t.name for t in (await session.list_tools()).tools}
        enabled, _ = await reviewed_call(
            session, signoff, {}, Verdict.APPROVE, tool="enable_chargebacks"
        )
        assert text(enabled) == "chargebacks enabled"
        await asyncio.wait_for(changed.wait(), WAIT)
        assert "chargeback" in {t.name for t in (await session.list_tools()).tools}
