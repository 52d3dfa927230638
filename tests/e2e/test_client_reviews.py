"""The client's review side against a real server: require(), wait_for_review, gate.

Dev-mode identities: the token names the caller, with every role. The agent is "bot";
reviewers are "alice" and "carol". A reviewer acts only once the agent is observed
waiting: `watching()` hooks the server's wake-up hub and hands over the id of each review
a WatchReview stream starts waiting on, so no test sleeps or guesses at timing.
"""

from __future__ import annotations

import asyncio
import importlib.util
import queue
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from signoff_client import (
    Approval,
    AsyncClient,
    Client,
    Decision,
    ReviewState,
    Verdict,
    errors,
    gate,
)
from signoff_client.canonical import action_digest

from .conftest import FakeClock, ServerHandle

CARD = "4111 1111 1111 1111"
REFUND = {"amount": 750, "currency": "EUR", "card_number": CARD}
RESOURCE = {"kind": "account", "id": "acct_9"}
WAIT = 15.0  # bound on every wait for the other side; never reached when things work


def watching(server: ServerHandle) -> Callable[[], str]:
    """Return a function that blocks until a watcher waits on a review, returning its id."""
    hub = server.running.app.reviews.hub
    original = hub.event
    waiting: queue.Queue[str] = queue.Queue()

    def event(review_id: str) -> Any:
        waiting.put(review_id)
        return original(review_id)

    hub.event = event  # runs on the server's loop; Queue is thread-safe

    def next_watched() -> str:
        return waiting.get(timeout=WAIT)

    return next_watched


def _agent(server: ServerHandle) -> Client:
    return Client(server.target, token="bot")


def _reviewer(server: ServerHandle, who: str = "alice") -> Client:
    return Client(server.target, token=who)


def _require(server: ServerHandle, amount: float = 750, **kw: Any) -> Approval:
    with _agent(server) as agent:
        return agent.require(
            "refund.issue",
            {**REFUND, "amount": amount},
            principal="bot",
            resource=RESOURCE,
            justification="double charge",
            **kw,
        )


def _act(server: ServerHandle, review_id: str, verdict: Verdict, **kw: Any) -> None:
    with _reviewer(server) as alice:
        review = alice.get_review(review_id)
        assert review.state is ReviewState.PENDING
        alice.submit_review(review_id, verdict, expected_version=review.version, **kw)


def _while_waiting(server: ServerHandle, reviewer: Callable[[str], None], **kw: Any) -> Approval:
    """Run require() in a thread; once it is watching, call `reviewer(review_id)`."""
    watched = watching(server)
    with ThreadPoolExecutor(1) as pool:
        agent = pool.submit(_require, server, **kw)
        review_id = watched()
        assert not agent.done()  # blocked on the review
        reviewer(review_id)
        return agent.result(timeout=WAIT)


# --- decisions without review -------------------------------------------------------------


def test_allowed_action_returns_the_params_as_given(server):
    approval = _require(server, amount=120)
    assert approval.params == {**REFUND, "amount": 120}
    assert approval.review is None
    assert not approval.reviewed
    assert approval.decision.allowed


def test_denied_action_raises_denied_with_the_decision(server):
    with pytest.raises(errors.Denied) as err:
        _require(server, amount=25_000)
    assert isinstance(err.value, errors.NotApproved)
    assert isinstance(err.value, errors.SignoffError)
    assert err.value.decision.denied
    assert "10,000" in str(err.value)


# --- reviews --------------------------------------------------------------------------------


def test_approval_given_while_the_agent_waits_returns_its_own_params(server):
    approval = _while_waiting(server, lambda rid: _act(server, rid, Verdict.APPROVE))
    assert approval.params == REFUND  # the real card number: it never left the agent
    assert approval.review.state is ReviewState.APPROVED
    assert approval.review.params["card_number"] == "[REDACTED]"
    assert approval.approvers == ("alice",)
    assert approval.decision.needs_review


def test_edited_params_are_returned_with_redacted_values_restored(server):
    def modify(review_id: str) -> None:
        with _reviewer(server) as alice:
            review = alice.get_review(review_id)
            edited = {**review.params, "amount": 500}  # card_number still masked
            alice.submit_review(review_id, "modify", expected_version=review.version, params=edited)

    approval = _while_waiting(server, modify)
    assert approval.params == {"amount": 500, "currency": "EUR", "card_number": CARD}
    review = approval.review
    assert review.state is ReviewState.MODIFIED
    assert review.final_params["card_number"] == "[REDACTED]"
    masked = {**approval.params, "card_number": "[REDACTED]"}
    assert review.final_digest == action_digest("refund.issue", masked, {"id": "bot"}, RESOURCE)
    assert review.final_digest != review.action_digest


def test_rejection_raises_rejected_with_the_reviewers_comment(server):
    def reject(review_id: str) -> None:
        _act(server, review_id, Verdict.REJECT, comment="refund already issued in T-77")

    with pytest.raises(errors.Rejected) as err:
        _while_waiting(server, reject)
    assert err.value.comment == "refund already issued in T-77"
    assert err.value.reviewer == "alice"
    assert err.value.review.state is ReviewState.REJECTED
    assert "refund already issued" in str(err.value)


def test_agent_cancelling_its_review_raises_cancelled(server):
    def cancel(review_id: str) -> None:
        with _agent(server) as bot:
            cancelled = bot.cancel_review(review_id, "customer withdrew the request")
        assert cancelled.state is ReviewState.CANCELLED

    with pytest.raises(errors.Cancelled) as err:
        _while_waiting(server, cancel)
    assert err.value.review.resolution_note == "customer withdrew the request"


def test_expiry_with_on_timeout_deny_raises_expired(make_server):
    clock = FakeClock()
    server = make_server(clock=clock)

    def expire(_: str) -> None:
        clock.advance(days=2)  # large-refund: timeout 1d, on_timeout deny (the default)
        assert server.call(server.running.app.reviews.sweep()) == 1

    with pytest.raises(errors.Expired) as err:
        _while_waiting(server, expire)
    assert err.value.review.state is ReviewState.EXPIRED
    assert "on_timeout deny" in str(err.value)


ALLOW_ON_TIMEOUT = """\
name: refunds
actions: ["refund.*"]
rules:
  - name: large-refund
    when: double(action.params.amount) > 500.0
    decision: review
    reviewers: finance
    timeout: 1h
    on_timeout: allow
    reason: Refund above 500; goes ahead unless someone objects within the hour.
redact: ["action.params.card_number"]
"""


def test_expiry_with_on_timeout_allow_returns_an_approval(make_server, policy_dir):
    clock = FakeClock()
    server = make_server(policies=policy_dir({"refunds.yaml": ALLOW_ON_TIMEOUT}), clock=clock)

    def expire(_: str) -> None:
        clock.advance(hours=2)
        server.call(server.running.app.reviews.sweep())

    approval = _while_waiting(server, expire)
    assert approval.params == REFUND
    assert approval.review.state is ReviewState.EXPIRED
    assert approval.approvers == ()


def test_review_timeout_leaves_the_review_pending_and_the_same_request_id_resumes(server):
    with pytest.raises(errors.ReviewTimeout) as err:
        _require(server, request_id="task-7:call-1", timeout=0.5)
    pending = err.value.review
    assert pending is not None
    assert pending.state is ReviewState.PENDING
    with _agent(server) as bot:
        assert bot.get_review(err.value.review_id).state is ReviewState.PENDING

    # The agent restarts and asks again with the same request_id: same review, no new one.
    approval = _while_waiting(
        server,
        lambda rid: _act(server, rid, Verdict.APPROVE),
        request_id="task-7:call-1",
    )
    assert approval.review.review_id == err.value.review_id
    assert approval.decision.replayed
    with _reviewer(server) as alice:
        assert alice.list_reviews(states=["approved"]).reviews[0].review_id == pending.review_id


async def test_async_require_waits_for_the_reviewer(server):
    watched = watching(server)
    async with AsyncClient(server.target, token="bot") as agent:
        waiting = asyncio.create_task(
            agent.require("refund.issue", REFUND, principal="bot", resource=RESOURCE)
        )
        review_id = await asyncio.to_thread(watched)
        assert not waiting.done()
        async with AsyncClient(server.target, token="alice") as alice:
            review = await alice.get_review(review_id)
            await alice.submit_review(review_id, "approve", expected_version=review.version)
        approval = await asyncio.wait_for(waiting, WAIT)
    assert approval.params == REFUND
    assert approval.approvers == ("alice",)


async def test_async_review_timeout(server):
    async with AsyncClient(server.target, token="bot") as agent:
        with pytest.raises(errors.ReviewTimeout):
            await agent.require("refund.issue", REFUND, principal="bot", timeout=0.3)


# --- the reviewer's side --------------------------------------------------------------------


def test_reviewer_lists_gets_and_is_refused_a_stale_version(server):
    with _agent(server) as bot:
        decision = bot.evaluate("refund.issue", REFUND, principal="bot", resource=RESOURCE)
    with _reviewer(server) as alice, _reviewer(server, "carol") as carol:
        page = alice.list_reviews(groups=["finance"], action="refund.*", order="newest")
        assert [r.review_id for r in page.reviews] == [decision.review_id]
        shown = page.reviews[0]
        assert shown.params["card_number"] == "[REDACTED]"
        assert shown.redacted_paths == ("action.params.card_number",)
        assert shown.reviewer_group == "finance"
        assert shown.expires_at > shown.created_at
        assert page.next_page_token == ""

        alice.submit_review(decision.review_id, "approve", expected_version=shown.version)
        with pytest.raises(errors.FailedPrecondition):
            carol.submit_review(decision.review_id, "reject", expected_version=shown.version)
        with pytest.raises(errors.NotFound):
            alice.get_review("no-such-review")
    with _agent(server) as bot:
        final = bot.wait_for_review(decision.review_id, timeout=5)
    assert final.state is ReviewState.APPROVED
    assert final.acts[0].reviewer == "alice"
    assert final.acts[0].verdict is Verdict.APPROVE
    assert final.resolved_at is not None


# --- gate -----------------------------------------------------------------------------------


def test_gate_runs_the_tool_with_the_approved_params(server):
    executed: list[dict[str, Any]] = []
    waited: list[Decision] = []
    agent = _agent(server)

    @gate(
        "refund.issue",
        client=agent,
        principal="bot",
        resource=RESOURCE,
        timeout=WAIT,
        on_review=waited.append,
    )
    def issue_refund(*, amount: float, currency: str, card_number: str) -> str:
        executed.append({"amount": amount, "currency": currency, "card_number": card_number})
        return f"refunded {amount} {currency}"

    try:
        assert issue_refund(amount=120, currency="EUR", card_number=CARD) == "refunded 120 EUR"

        def modify(review_id: str) -> None:
            with _reviewer(server) as alice:
                review = alice.get_review(review_id)
                edited = {**review.params, "amount": 600}
                alice.submit_review(
                    review_id, "modify", expected_version=review.version, params=edited
                )

        watched = watching(server)
        with ThreadPoolExecutor(1) as pool:
            call = pool.submit(issue_refund, **REFUND)
            modify(watched())
            assert call.result(timeout=WAIT) == "refunded 600.0 EUR"

        with pytest.raises(errors.Denied):
            issue_refund(amount=25_000, currency="EUR", card_number=CARD)
        with pytest.raises(TypeError, match="keyword arguments"):
            issue_refund(120, "EUR", CARD)
    finally:
        agent.close()
    assert [d.reviewer_group for d in waited] == ["finance"]  # the 600 only
    assert executed == [
        {"amount": 120, "currency": "EUR", "card_number": CARD},
        {"amount": 600.0, "currency": "EUR", "card_number": CARD},
    ]


async def test_gate_on_an_async_tool(server):
    watched = watching(server)
    async with AsyncClient(server.target, token="bot") as agent:

        @gate(
            "refund.issue",
            client=agent,
            params=lambda account, amount: {"amount": amount, "currency": "EUR"},
            principal="bot",
            resource=lambda account, amount: {"kind": "account", "id": account},
        )
        async def issue_refund(*, amount: float, currency: str) -> str:
            return f"refunded {amount} {currency}"

        assert await issue_refund("acct_1", 50) == "refunded 50 EUR"
        waiting = asyncio.create_task(issue_refund("acct_1", 900))
        review_id = await asyncio.to_thread(watched)
        await asyncio.to_thread(_act, server, review_id, Verdict.REJECT, comment="no")
        with pytest.raises(errors.Rejected, match="no"):
            await asyncio.wait_for(waiting, WAIT)


def test_gate_refuses_a_client_of_the_wrong_kind(server):
    with _agent(server) as agent, pytest.raises(TypeError, match="AsyncClient"):

        @gate("refund.issue", client=agent)
        async def tool() -> None: ...


# --- restarts -------------------------------------------------------------------------------


def test_waiting_client_reconnects_to_a_restarted_server_and_gets_the_approval(
    make_server, tmp_path: Path
):
    first = make_server()
    watched = watching(first)
    with ThreadPoolExecutor(1) as pool:
        agent = pool.submit(_require, first, timeout=60)
        review_id = watched()
        first.call(first.running.stop(0))  # the agent's stream drops with UNAVAILABLE
        assert not agent.done()

        # Re-reading often, so that a watcher that attached before `watching()` hooked
        # the new hub shows up at its next re-read.
        second = make_server(
            db=f"sqlite:///{first.db_path}", listen=first.target, watch_recheck=0.05
        )
        assert second.target == first.target
        assert watching(second)() == review_id  # the agent reconnected and waits again
        _act(second, review_id, Verdict.APPROVE)
        approval = agent.result(timeout=WAIT)
    assert approval.review.review_id == review_id
    assert approval.review.state is ReviewState.APPROVED
    assert approval.params == REFUND


# --- the example agent ----------------------------------------------------------------------


def _example() -> Any:
    path = Path(__file__).resolve().parents[2] / "examples" / "refund_agent.py"
    spec = importlib.util.spec_from_file_location("refund_agent", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_agent_executes_allowed_waits_for_reviewed_and_skips_denied(server, capsys):
    agent = _example()
    args = ["--server", server.target]
    assert agent.main([*args, "--amount", "120"]) == 0
    assert agent.main([*args, "--amount", "25000"]) == 1
    watched = watching(server)
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(agent.main, [*args, "--amount", "750"])
        _act(server, watched(), Verdict.APPROVE)
        assert run.result(timeout=WAIT) == 0
    out = capsys.readouterr().out
    assert "executed: refunded 120 EUR to acct_42, card ending 1111" in out
    assert "not executed: denied by policy" in out
    assert "waiting for a finance reviewer" in out
    assert "executed: refunded 750 EUR to acct_42, card ending 1111" in out
