"""`signoff mcp-proxy` passes what is not a tool call through to the upstream that owns it:
resource templates, completions, subscriptions, the log level, and the upstreams'
notifications. Real peers (tests/e2e/mcp_peers.py); no Signoff decision is involved but
for `get_ledger_news`, a read-only tool that policies/mcp.yaml allows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import ClientSession
from mcp.shared.exceptions import MCPError

from signoff_client import Verdict

from .conftest import ServerHandle
from .mcp_peers import (
    WAIT,
    config,
    http_session,
    kill,
    payments,
    proxied,
    reviewed_call,
    served_http,
    text,
)


async def test_templates_completions_and_prompts_go_to_the_upstream_that_owns_them(
    signoff: ServerHandle, tmp_path: Path
):
    ups = [payments(tmp_path), payments(tmp_path, name="billing")]
    async with proxied(config(tmp_path, signoff.target, upstreams=ups)) as session:
        caps = session.server_capabilities
        assert caps.completions is not None
        assert caps.logging is not None
        assert caps.resources.subscribe is True
        assert caps.prompts.list_changed is True

        listed = await session.list_resource_templates()
        assert sorted(t.uri_template for t in listed.resource_templates) == [
            "ledger://billing/day/{day}",
            "ledger://payments/day/{day}",
        ]
        # Not listed as a resource: routed by the template it matches.
        read = await session.read_resource("ledger://billing/day/monday")
        assert read.contents[0].text == "billing: refunds of monday"
        day = types.ResourceTemplateReference(uri="ledger://billing/day/{day}")
        completed = await session.complete(day, {"name": "day", "value": "t"})
        assert completed.completion.values == ["tuesday"]

        # Prompts both upstreams have are namespaced like tools, and reach their own.
        names = {p.name for p in (await session.list_prompts()).prompts}
        assert {"payments__refund_reply", "billing__refund_reply"} <= names
        assert "refund_reply" not in names
        reply = types.PromptReference(name="billing__refund_reply")
        completed = await session.complete(reply, {"name": "account", "value": "acct"})
        assert completed.completion.values == ["acct_billing_1", "acct_billing_2"]
        prompt = await session.get_prompt("billing__refund_reply", {"account": "acct_9"})
        assert prompt.messages[0].content.text == "Dear acct_9, your refund is on its way."


async def test_unknown_templates_resources_and_prompts_are_precise_errors(
    signoff: ServerHandle, tmp_path: Path
):
    ups = [payments(tmp_path), payments(tmp_path, name="billing")]
    async with proxied(config(tmp_path, signoff.target, upstreams=ups)) as session:
        nowhere = types.ResourceTemplateReference(uri="ledger://nowhere/day/{day}")
        with pytest.raises(
            MCPError, match=r"unknown resource template 'ledger://nowhere/day/\{day\}'"
        ):
            await session.complete(nowhere, {"name": "day", "value": ""})
        with pytest.raises(MCPError, match="unknown resource 'ledger://nowhere/x': no upstream"):
            await session.read_resource("ledger://nowhere/x")
        with pytest.raises(MCPError, match="unknown prompt 'refund_reply'"):
            await session.get_prompt("refund_reply", {"account": "acct_1"})


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_subscriptions_list_changes_and_log_messages_are_relayed(
    signoff: ServerHandle, tmp_path: Path, transport: str
):
    notices: asyncio.Queue[Any] = asyncio.Queue()
    logs: asyncio.Queue[types.LoggingMessageNotificationParams] = asyncio.Queue()

    async def on_message(message: object) -> None:
        if not isinstance(message, types.LoggingMessageNotification | Exception):
            await notices.put(message)

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        await logs.put(params)

    monday = "ledger://payments/day/monday"
    token = "t-0123456789abcdef"
    path = config(tmp_path, signoff.target, http_token=token)
    async with _session(
        path, transport, message_handler=on_message, logging_callback=on_log
    ) as session:
        await _request(
            session, types.SetLevelRequest(params=types.SetLevelRequestParams(level="debug"))
        )
        await _request(
            session, types.SubscribeRequest(params=types.SubscribeRequestParams(uri=monday))
        )
        news = await session.call_tool("get_ledger_news", {})
        assert text(news) == f"subscribed: {monday}"

        seen = [await asyncio.wait_for(notices.get(), WAIT) for _ in range(3)]
        assert {type(n) for n in seen} == {
            types.PromptListChangedNotification,
            types.ResourceListChangedNotification,
            types.ResourceUpdatedNotification,
        }
        updated = next(n for n in seen if isinstance(n, types.ResourceUpdatedNotification))
        assert str(updated.params.uri) == monday
        # debug reached the upstream: it logs at debug only when told to.
        said = [await asyncio.wait_for(logs.get(), WAIT) for _ in range(3)]
        assert [(p.level, p.logger, p.data) for p in said] == [
            ("debug", "payments/ledger", "payments: reading the ledger"),
            ("info", "payments/ledger", "payments: 3 new refunds"),
            ("warning", "payments/ledger", "payments: 1 refund over the limit"),
        ]
        assert "chargeback_reply" in {p.name for p in (await session.list_prompts()).prompts}

        await _request(
            session, types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(uri=monday))
        )
        again = await session.call_tool("get_ledger_news", {})
        assert text(again) == "subscribed: nothing"


async def test_a_client_gets_no_log_message_below_its_level(signoff: ServerHandle, tmp_path: Path):
    logs: asyncio.Queue[types.LoggingMessageNotificationParams] = asyncio.Queue()

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        await logs.put(params)

    async with proxied(config(tmp_path, signoff.target), logging_callback=on_log) as session:
        warning = types.SetLevelRequest(params=types.SetLevelRequestParams(level="warning"))
        await _request(session, warning)
        await session.call_tool("get_ledger_news", {})
        # The upstream logs at info whatever the level; messages keep the upstream's order.
        first = await asyncio.wait_for(logs.get(), WAIT)
        assert (first.level, first.data) == ("warning", "payments: 1 refund over the limit")


async def test_a_restarted_upstream_gets_the_subscriptions_and_the_level_again(
    signoff: ServerHandle, tmp_path: Path
):
    logs: asyncio.Queue[types.LoggingMessageNotificationParams] = asyncio.Queue()

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        await logs.put(params)

    monday = "ledger://payments/day/monday"
    async with proxied(config(tmp_path, signoff.target), logging_callback=on_log) as session:
        await _request(
            session, types.SetLevelRequest(params=types.SetLevelRequestParams(level="debug"))
        )
        await _request(
            session, types.SubscribeRequest(params=types.SubscribeRequestParams(uri=monday))
        )
        # pid is no read-only tool to policies/mcp.yaml: a tool owner approves it.
        pid, _ = await reviewed_call(session, signoff, {}, Verdict.APPROVE, tool="pid")
        await asyncio.wait_for(kill(int(text(pid))), WAIT)
        news = await session.call_tool("get_ledger_news", {})
        assert text(news) == f"subscribed: {monday}"
        first = await asyncio.wait_for(logs.get(), WAIT)
        assert (first.level, first.data) == ("debug", "payments: reading the ledger")


@asynccontextmanager
async def _session(path: Path, transport: str, **options: Any) -> AsyncIterator[ClientSession]:
    if transport == "stdio":
        async with proxied(path, **options) as session:
            yield session
        return
    async with (
        served_http(path) as url,
        http_session(url, "t-0123456789abcdef", **options) as session,
    ):
        yield session


async def _request(session: ClientSession, request: Any) -> None:
    """Sent raw: the SDK's helpers for these warn that the 2026-07-28 protocol drops them."""
    await session.send_request(request, types.EmptyResult)


async def test_what_no_upstream_offers_is_not_announced(signoff: ServerHandle, tmp_path: Path):
    bare = payments(tmp_path, "--tools-only")
    async with proxied(config(tmp_path, signoff.target, upstreams=[bare])) as session:
        caps = session.server_capabilities
        assert caps.tools is not None
        assert (caps.prompts, caps.resources, caps.completions, caps.logging) == (
            None,
            None,
            None,
            None,
        )
        with pytest.raises(MCPError, match="Method not found"):
            await session.list_prompts()
        assert [t.name for t in (await session.list_tools()).tools] == ["pid"]
