"""In-band approval through MCP elicitation, with real peers (tests/e2e/mcp_peers.py): an SDK
client whose elicitation callback stands in for the human, the proxy, a real server.

Not dev mode: a tokens file says who is who. The agent (token claude-agent) acts for bob,
vouched by the directory; bob is no finance reviewer, alice is. The refund rule says
`in_band: requester`, the large-refund rule does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest

from signoff.mcp_proxy.in_band import Client, InBand
from signoff_client import AsyncClient, ReviewState, Verdict

from .conftest import MakeServer, ServerHandle, write_tokens
from .mcp_peers import (
    WAIT,
    StderrWatch,
    act,
    config,
    executed,
    http_session,
    proxied,
    reviewed_call,
    served_http,
    text,
)

PEOPLE = {  # token: (identity, roles)
    "claude-agent": ("claude-agent", ["agent"]),
    "alice": ("alice", ["reviewer:finance"]),
    "bob": ("bob", []),
}
DIRECTORY = {"claude-agent": {"kind": "agent", "on_behalf_of": ["bob"]}}
POLICY = """\
name: mcp-in-band
actions: ["mcp.*"]
redact: [action.params.account]
rules:
  - name: large-refund
    when: action.name == "mcp.payments.refund" && double(action.params.amount) >= 1000.0
    decision: review
    reviewers: finance
    reason: Refunds of 1,000 or more need a finance reviewer
  - name: refund
    when: >-
      action.name == "mcp.payments.refund" && double(action.params.amount) > 100.0
      && double(action.params.amount) < 1000.0
    decision: review
    reviewers: finance
    in_band: requester
    reason: Refunds above 100 need an approval
  - name: otherwise
    when: "true"
    decision: allow
    reason: fine
"""
REVIEW_ID_RE = re.compile(r"Review (\S+): you may settle it yourself")

Answer = Callable[[str], Awaitable[types.ElicitResult]]


@pytest.fixture
def secured(make_server: MakeServer, policy_dir, tmp_path: Path) -> ServerHandle:
    tokens = write_tokens(tmp_path, PEOPLE, principals=DIRECTORY)
    return make_server(policies=policy_dir({"mcp.yaml": POLICY}), auth={"tokens_file": tokens})


def proxy_config(tmp_path: Path, server: ServerHandle, **settings: Any) -> Path:
    principal = {"id": "claude-agent", "kind": "agent", "on_behalf_of": "bob"}
    settings.setdefault("in_band", {"token": "bob"})
    return config(tmp_path, server.target, principal=principal, **settings)


class Human:
    """The elicitation callback: records each question, answers with `answer`."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.asked: list[types.ElicitRequestFormParams] = []

    async def __call__(self, context: Any, params: types.ElicitRequestParams) -> Any:
        assert isinstance(params, types.ElicitRequestFormParams)
        self.asked.append(params)
        match = REVIEW_ID_RE.search(params.message)
        assert match, params.message
        return await self.answer(match.group(1))


def accept(**content: Any) -> Answer:
    async def answer(_review_id: str) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content=content)

    return answer


async def review_of(server: ServerHandle, review_id: str) -> Any:
    async with AsyncClient(server.target, token="alice") as alice:
        return await alice.get_review(review_id)


def audit(server: ServerHandle, review_id: str) -> list[Any]:
    entries = server.call(server.running.app.store.read_audit(1, 100_000))
    return [e for e in entries if e.review_id == review_id]


def proxy_log(tmp_path: Path) -> str:
    return (tmp_path / "mcp-proxy.stderr").read_text()


async def test_approve_once_in_the_client_runs_the_call_as_the_human_s_act(
    secured: ServerHandle, tmp_path: Path
):
    human = Human(accept(decision="approve"))
    async with proxied(proxy_config(tmp_path, secured), elicitation_callback=human) as session:
        result = await session.call_tool("refund", {"account": "acct_1", "amount": 250})
        assert not result.is_error, text(result)
        assert text(result) == "refunded 250 EUR to acct_1"
    [asked] = human.asked
    # The review as a reviewer sees it: the account is redacted, the reason is the rule's.
    assert "may the agent run mcp.payments.refund?" in asked.message
    assert "Why this needs approval: Refunds above 100 need an approval" in asked.message
    assert "(redacted: action.params.account)" in asked.message
    assert "acct_1" not in asked.message
    assert '"amount": 250' in asked.message
    choices = asked.requested_schema["properties"]["decision"]["enum"]
    assert choices == ["approve", "approve_session", "reject"]
    review_id = REVIEW_ID_RE.search(asked.message).group(1)  # type: ignore[union-attr]
    review = await review_of(secured, review_id)
    assert review.state is ReviewState.APPROVED
    assert [(a.reviewer, a.in_band) for a in review.acts] == [("bob", True)]
    assert review.in_band == "requester"
    [entry] = [e for e in audit(secured, review_id) if e.type == "review.approved"]
    assert (entry.reviewer, entry.payload["in_band"]) == ("bob", "requester")
    assert entry.payload["in_band_note"] == "approved by the requester in band"
    assert entry.payload["act"]["in_band"] is True
    assert [e["amount"] for e in executed(tmp_path)] == [250.0]


async def test_reject_with_a_comment_refuses_the_call_with_it(secured: ServerHandle, tmp_path):
    human = Human(accept(decision="reject", comment="wrong customer"))
    async with proxied(proxy_config(tmp_path, secured), elicitation_callback=human) as session:
        result = await session.call_tool("refund", {"account": "acct_2", "amount": 300})
    assert result.is_error
    assert text(result) == "a reviewer (bob) rejected mcp.payments.refund: wrong customer"
    review_id = REVIEW_ID_RE.search(human.asked[0].message).group(1)  # type: ignore[union-attr]
    review = await review_of(secured, review_id)
    assert review.state is ReviewState.REJECTED
    [entry] = [e for e in audit(secured, review_id) if e.type == "review.rejected"]
    assert entry.payload["in_band_note"] == "rejected by the requester in band"
    assert entry.payload["act"]["comment"] == "wrong customer"
    assert executed(tmp_path) == []


@pytest.mark.parametrize(
    ("answer", "logged"),
    [
        (types.ElicitResult(action="decline"), "reason=decline"),
        (types.ElicitResult(action="cancel"), "reason=cancel"),
        # Malformed or extra fields: treated as a decline, and logged.
        (
            types.ElicitResult(action="accept", content={"decision": "approve", "amount": 1}),
            "unexpected fields amount",
        ),
        (
            types.ElicitResult(action="accept", content={"decision": "yes please"}),
            "is not one of approve, approve_session, reject",
        ),
        (
            types.ElicitResult(action="accept", content={}),
            "is not one of approve, approve_session, reject",
        ),
    ],
    ids=["decline", "cancel", "extra-field", "bad-choice", "empty"],
)
async def test_decline_or_a_malformed_answer_leaves_the_review_to_the_group(
    secured: ServerHandle, tmp_path: Path, answer: types.ElicitResult, logged: str
):
    answered = asyncio.Event()

    async def reply(_review_id: str) -> types.ElicitResult:
        answered.set()
        return answer

    human = Human(reply)
    path = proxy_config(tmp_path, secured)
    watch = StderrWatch(path.with_suffix(".stderr"))
    async with proxied(path, elicitation_callback=human, watch=watch) as session:
        call = asyncio.create_task(
            session.call_tool("refund", {"account": "acct_3", "amount": 400})
        )
        await asyncio.wait_for(answered.wait(), WAIT)
        review_id = REVIEW_ID_RE.search(human.asked[0].message).group(1)  # type: ignore[union-attr]
        # The review stays open for the group; the call still waits on it.
        await watch.wait_for("mcp.in_band.declined")
        assert (await review_of(secured, review_id)).state is ReviewState.PENDING
        assert not call.done()
        await act(secured, review_id, Verdict.APPROVE, comment="ok from finance")
        result = await asyncio.wait_for(call, WAIT)
    assert text(result) == "refunded 400 EUR to acct_3"
    review = await review_of(secured, review_id)
    assert [(a.reviewer, a.in_band) for a in review.acts] == [("alice", False)]
    assert logged in proxy_log(tmp_path)


async def test_the_group_wins_a_race_and_the_late_answer_is_refused(
    secured: ServerHandle, tmp_path: Path
):
    async def alice_first(review_id: str) -> types.ElicitResult:
        # A finance reviewer rejects while the human still looks at the question.
        await act(secured, review_id, Verdict.REJECT, comment="duplicate of T-7")
        return types.ElicitResult(action="accept", content={"decision": "approve"})

    human = Human(alice_first)
    async with proxied(proxy_config(tmp_path, secured), elicitation_callback=human) as session:
        result = await session.call_tool("refund", {"account": "acct_4", "amount": 500})
    # Exactly one outcome: the group's. The human's approval never counted.
    assert text(result) == "a reviewer (alice) rejected mcp.payments.refund: duplicate of T-7"
    review_id = REVIEW_ID_RE.search(human.asked[0].message).group(1)  # type: ignore[union-attr]
    review = await review_of(secured, review_id)
    assert [(a.reviewer, a.verdict) for a in review.acts] == [("alice", Verdict.REJECT)]
    types_ = [e.type for e in audit(secured, review_id)]
    assert types_ == ["review.opened", "review.rejected"]
    assert executed(tmp_path) == []
    # The answer either reached the server (refused by the version check) or was dropped
    # because the call ended first; either way it is logged.
    log = proxy_log(tmp_path)
    assert "mcp.in_band.refused" in log or "mcp.in_band.withdrawn" in log, log


async def test_a_rule_without_in_band_and_a_client_without_elicitation_go_to_the_group(
    secured: ServerHandle, tmp_path: Path
):
    human = Human(accept(decision="approve"))
    path = proxy_config(tmp_path, secured)
    async with proxied(path, elicitation_callback=human) as session:
        # large-refund has no in_band: bob may not even see the review; nobody asks him.
        result = await group_decides(secured, session, {"account": "acct_5", "amount": 5000})
        assert text(result) == "refunded 5000 EUR to acct_5"
    assert human.asked == []
    assert "mcp.in_band.skipped" in proxy_log(tmp_path)
    async with proxied(path) as session:  # no elicitation capability declared
        result = await group_decides(secured, session, {"account": "acct_6", "amount": 200})
        assert text(result) == "refunded 200 EUR to acct_6"
    assert "mcp.in_band.asked" not in proxy_log(tmp_path)


async def test_a_client_that_never_answers_is_bound_by_review_timeout(
    secured: ServerHandle, tmp_path: Path
):
    never = asyncio.Event()

    async def silent(_review_id: str) -> types.ElicitResult:
        await never.wait()
        raise AssertionError("unreachable")

    human = Human(silent)
    path = proxy_config(tmp_path, secured, review_timeout=1.5)
    async with proxied(path, elicitation_callback=human) as session:
        result = await asyncio.wait_for(
            session.call_tool("refund", {"account": "acct_7", "amount": 150}), WAIT
        )
    assert result.is_error
    assert "within 1.5s" in text(result)
    review_id = REVIEW_ID_RE.search(human.asked[0].message).group(1)  # type: ignore[union-attr]
    assert (await review_of(secured, review_id)).state is ReviewState.CANCELLED
    assert "mcp.in_band.withdrawn" in proxy_log(tmp_path)
    assert executed(tmp_path) == []


async def test_approve_in_band_over_streamable_http(secured: ServerHandle, tmp_path: Path):
    token = "t-0123456789abcdef"
    human = Human(accept(decision="approve", comment="yes, mine"))
    async with (
        served_http(proxy_config(tmp_path, secured, http_token=token)) as url,
        http_session(url, token, elicitation_callback=human) as session,
    ):
        result = await session.call_tool("refund", {"account": "acct_8", "amount": 120})
    assert text(result) == "refunded 120 EUR to acct_8"
    review_id = REVIEW_ID_RE.search(human.asked[0].message).group(1)  # type: ignore[union-attr]
    review = await review_of(secured, review_id)
    assert [(a.reviewer, a.in_band, a.comment) for a in review.acts] == [("bob", True, "yes, mine")]


# --- helpers ------------------------------------------------------------------------------


async def group_decides(
    server: ServerHandle, session: Any, arguments: dict[str, Any]
) -> types.CallToolResult:
    """Call the refund tool; alice approves the review it waits on."""
    result, _ = await reviewed_call(session, server, arguments, Verdict.APPROVE)
    return result


async def test_an_answer_after_the_group_settled_is_refused_and_logged(
    secured: ServerHandle, caplog: pytest.LogCaptureFixture
):
    """The late answer itself, without the race: the human answers only after alice acted."""
    async with AsyncClient(secured.target, token="claude-agent") as agent:
        decision = await agent.evaluate(
            "mcp.payments.refund",
            {"account": "acct_9", "amount": 700},
            principal={"id": "claude-agent", "kind": "agent", "on_behalf_of": "bob"},
        )
    review_id = decision.review_id

    async def late(message: str, schema: dict[str, Any]) -> types.ElicitResult:
        assert f"Review {review_id}" in message
        await act(secured, review_id, Verdict.APPROVE, comment="finance says yes")
        return types.ElicitResult(action="accept", content={"decision": "reject"})

    caplog.set_level(logging.INFO, logger="signoff.mcp_proxy")
    async with AsyncClient(secured.target, token="bob") as bob:
        await InBand(bob).settle(review_id, "mcp.payments.refund", Client(late, "s1"))
    [refused] = [r for r in caplog.records if r.getMessage() == "mcp.in_band.refused"]
    assert refused.verdict == "REJECT"  # type: ignore[attr-defined]
    assert "is APPROVED" in refused.error  # type: ignore[attr-defined]
    review = await review_of(secured, review_id)
    assert review.state is ReviewState.APPROVED
    assert [(a.reviewer, a.in_band) for a in review.acts] == [("alice", False)]


def approvals(server: ServerHandle) -> list[tuple[str, str, bool]]:
    """Every approval's (reviewer, comment, in band), oldest first."""
    entries = server.call(server.running.app.store.read_audit(1, 100_000))
    return [
        (e.reviewer, e.payload["act"]["comment"], e.payload["act"].get("in_band", False))
        for e in entries
        if e.type == "review.approved"
    ]


async def test_approve_for_this_session_covers_the_same_shape_in_this_session_only(
    secured: ServerHandle, tmp_path: Path
):
    human = Human(accept(decision="approve_session", comment="fine today"))
    path = proxy_config(tmp_path, secured)
    async with proxied(path, elicitation_callback=human) as session:
        first = await session.call_tool("refund", {"account": "acct_1", "amount": 150})
        assert text(first) == "refunded 150 EUR to acct_1"
        # The same shape (other values): runs without asking, as the human's act.
        second = await session.call_tool("refund", {"account": "acct_2", "amount": 600})
        assert text(second) == "refunded 600 EUR to acct_2"
        assert len(human.asked) == 1
        # Another shape (one more argument): asked again.
        third = await session.call_tool(
            "refund", {"account": "acct_3", "amount": 150, "currency": "USD"}
        )
        assert text(third) == "refunded 150 USD to acct_3"
        assert len(human.asked) == 2
        # A rule without in_band is never answered for the human: the group decides.
        big = await group_decides(secured, session, {"account": "acct_4", "amount": 5000})
        assert text(big) == "refunded 5000 EUR to acct_4"
        assert len(human.asked) == 2
    async with proxied(path, elicitation_callback=human) as session:  # a new session
        again = await session.call_tool("refund", {"account": "acct_5", "amount": 150})
        assert text(again) == "refunded 150 EUR to acct_5"
    assert len(human.asked) == 3
    first_id = REVIEW_ID_RE.search(human.asked[0].message).group(1)  # type: ignore[union-attr]
    assert approvals(secured) == [
        ("bob", "fine today", True),
        ("bob", f"approved for this session in review {first_id}, not asked again", True),
        ("bob", "fine today", True),
        ("alice", "", False),
        ("bob", "fine today", True),
    ]


async def test_a_session_approval_is_not_another_http_session_s(
    secured: ServerHandle, tmp_path: Path
):
    token = "t-0123456789abcdef"
    human = Human(accept(decision="approve_session"))
    async with served_http(proxy_config(tmp_path, secured, http_token=token)) as url:
        async with http_session(url, token, elicitation_callback=human) as one:
            await one.call_tool("refund", {"account": "acct_1", "amount": 150})
            await one.call_tool("refund", {"account": "acct_1", "amount": 160})
            assert len(human.asked) == 1
        async with http_session(url, token, elicitation_callback=human) as two:
            result = await two.call_tool("refund", {"account": "acct_1", "amount": 170})
            assert text(result) == "refunded 170 EUR to acct_1"
    assert len(human.asked) == 2
    assert [a[0] for a in approvals(secured)] == ["bob"] * 3


CONSOLE = "https://signoff.example.com:8443/console"


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_url_mode_links_to_the_review_in_the_console_where_the_human_acts(
    secured: ServerHandle, tmp_path: Path, transport: str
):
    """A client that declares URL-mode elicitation (the SDK's, with a callback) gets a link
    to the review's console page, no form; bob acts there (the console's SubmitReview, with
    his token); the call follows, and the client is told the elicitation is over."""
    linked: asyncio.Queue[types.ElicitRequestURLParams] = asyncio.Queue()
    completed = asyncio.Event()
    complete_ids: list[str] = []

    async def open_link(context: Any, params: types.ElicitRequestParams) -> Any:
        assert isinstance(params, types.ElicitRequestURLParams), params
        linked.put_nowait(params)
        return types.ElicitResult(action="accept")  # the client opened the page

    async def notified(message: Any) -> None:
        if isinstance(message, types.ElicitCompleteNotification):
            complete_ids.append(message.params.elicitation_id)
            completed.set()

    in_band = {"token": "bob", "console_url": CONSOLE}
    token = "t-0123456789abcdef"
    options = {"elicitation_callback": open_link, "message_handler": notified}
    async with contextlib.AsyncExitStack() as stack:
        if transport == "stdio":
            path = proxy_config(tmp_path, secured, in_band=in_band)
            session = await stack.enter_async_context(proxied(path, **options))
        else:
            path = proxy_config(tmp_path, secured, in_band=in_band, http_token=token)
            url = await stack.enter_async_context(served_http(path))
            session = await stack.enter_async_context(http_session(url, token, **options))
        call = asyncio.create_task(
            session.call_tool("refund", {"account": "acct_1", "amount": 250})
        )
        asked = await asyncio.wait_for(linked.get(), WAIT)
        review_id = REVIEW_ID_RE.search(asked.message).group(1)  # type: ignore[union-attr]
        assert asked.url == f"{CONSOLE}/reviews/{review_id}"
        assert asked.elicitation_id == review_id
        assert "approve or reject it in the Signoff console, signed in as yourself" in (
            asked.message
        )
        assert "acct_1" not in asked.message  # redacted, as a reviewer sees it
        assert not call.done()  # the call waits for the review, not for the link
        async with AsyncClient(secured.target, token="bob") as bob:  # bob, in the console
            review = await bob.get_review(review_id)
            await bob.submit_review(
                review_id, Verdict.APPROVE, expected_version=review.version, comment="mine"
            )
        result = await asyncio.wait_for(call, WAIT)
        await asyncio.wait_for(completed.wait(), WAIT)
    assert text(result) == "refunded 250 EUR to acct_1"
    assert complete_ids == [review_id]
    review = await review_of(secured, review_id)
    assert [(a.reviewer, a.in_band, a.comment) for a in review.acts] == [("bob", True, "mine")]
    assert linked.empty()


async def test_url_mode_declined_leaves_the_review_to_the_group(
    secured: ServerHandle, tmp_path: Path
):
    seen: list[types.ElicitRequestParams] = []

    async def decline(context: Any, params: types.ElicitRequestParams) -> Any:
        seen.append(params)
        return types.ElicitResult(action="decline")

    path = proxy_config(tmp_path, secured, in_band={"token": "bob", "console_url": CONSOLE})
    watch = StderrWatch(path.with_suffix(".stderr"))
    async with proxied(path, elicitation_callback=decline, watch=watch) as session:
        call = asyncio.create_task(
            session.call_tool("refund", {"account": "acct_2", "amount": 300})
        )
        # The decline is the proxy's to log before anyone settles the review: then alice.
        await watch.wait_for("mcp.in_band.declined")
        [asked] = seen
        assert isinstance(asked, types.ElicitRequestURLParams)
        review_id = REVIEW_ID_RE.search(asked.message).group(1)  # type: ignore[union-attr]
        assert (await review_of(secured, review_id)).state is ReviewState.PENDING
        assert not call.done()
        await act(secured, review_id, Verdict.APPROVE, comment="ok from finance")
        result = await asyncio.wait_for(call, WAIT)
    assert text(result) == "refunded 300 EUR to acct_2"
    review = await review_of(secured, review_id)
    assert [(a.reviewer, a.in_band) for a in review.acts] == [("alice", False)]


async def test_url_mode_opened_but_nobody_acts_is_bound_by_review_timeout(
    secured: ServerHandle, tmp_path: Path
):
    completed: list[str] = []

    async def open_link(context: Any, params: types.ElicitRequestParams) -> Any:
        assert isinstance(params, types.ElicitRequestURLParams)
        return types.ElicitResult(action="accept")

    async def notified(message: Any) -> None:
        if isinstance(message, types.ElicitCompleteNotification):
            completed.append(message.params.elicitation_id)

    path = proxy_config(
        tmp_path, secured, in_band={"token": "bob", "console_url": CONSOLE}, review_timeout=1.5
    )
    watch = StderrWatch(path.with_suffix(".stderr"))
    async with proxied(
        path, elicitation_callback=open_link, message_handler=notified, watch=watch
    ) as session:
        result = await asyncio.wait_for(
            session.call_tool("refund", {"account": "acct_3", "amount": 150}), WAIT
        )
        assert "within 1.5s" in text(result)
        await watch.wait_for("mcp.in_band.opened")
    [review_id] = re.findall(r"review_id=(\S+)", watch.text.split("mcp.in_band.opened")[1])[:1]
    # The link is over too: the client was told, and the review was withdrawn.
    assert completed == [review_id]
    assert (await review_of(secured, review_id)).state is ReviewState.CANCELLED
    assert executed(tmp_path) == []


async def test_a_client_with_form_mode_only_gets_the_form_even_with_a_console(
    secured: ServerHandle,
):
    async with AsyncClient(secured.target, token="claude-agent") as agent:
        decision = await agent.evaluate(
            "mcp.payments.refund",
            {"account": "acct_9", "amount": 700},
            principal={"id": "claude-agent", "kind": "agent", "on_behalf_of": "bob"},
        )
    asked: list[dict[str, Any]] = []

    async def form(message: str, schema: dict[str, Any]) -> types.ElicitResult:
        asked.append(schema)
        return types.ElicitResult(action="accept", content={"decision": "approve"})

    async with AsyncClient(secured.target, token="bob") as bob:
        in_band = InBand(bob, console_url=CONSOLE)
        await in_band.settle(decision.review_id, "mcp.payments.refund", Client(form, "s1"))
    assert [s["required"] for s in asked] == [["decision"]]
    review = await review_of(secured, decision.review_id)
    assert [(a.reviewer, a.in_band) for a in review.acts] == [("bob", True)]
