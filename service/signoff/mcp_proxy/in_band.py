"""In-band approval: the human at the MCP client settles a review from the client itself.

When Signoff opens a review whose rule says `in_band: requester`, and the client declared
the elicitation capability, the proxy asks the client's human (`elicitation/create`) with
the review as a reviewer sees it (redacted), and turns the answer into a review act made
with the human's own token (`in_band.token`), never the agent's. Signoff decides whether
that act counts (core/reviews.in_band_requester): the proxy only relays it.

Meanwhile the gate keeps waiting for the review's outcome, so a group reviewer may still
settle it: whoever acts first on the version shown wins, and the other act is refused by
the server's version check. The call follows the review, never the answer itself.
A decline, a cancel or an answer that is not one of the offered choices leaves the review
to the group. "Approve for this session" is session_approvals.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from mcp.server.context import CallNext, ServerRequestContext

from signoff import logs
from signoff.mcp_proxy.session_approvals import SessionApprovals, scope
from signoff_client import AsyncClient, Review, ReviewState, Verdict, errors

log = logging.getLogger("signoff.mcp_proxy")

# Ask the client's human: a message and a form schema in, the client's answer out.
Ask = Callable[[str, dict[str, Any]], Awaitable[types.ElicitResult]]

CHOICES = {"approve": Verdict.APPROVE, "approve_session": Verdict.APPROVE, "reject": Verdict.REJECT}
MAX_COMMENT = 4096  # as the server's SubmitReview
# The form: a flat object of primitives, as elicitation allows.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "decision": {
            "type": "string",
            "title": "Your decision",
            "description": (
                "approve: run this call once; approve_session: run it, and calls of this "
                "tool with arguments of the same shape for the rest of this session; "
                "reject: refuse it"
            ),
            "enum": list(CHOICES),
        },
        "comment": {
            "type": "string",
            "title": "Comment (optional; the agent and the audit log see it)",
            "maxLength": MAX_COMMENT,
        },
    },
    "required": ["decision"],
}


@dataclass(frozen=True)
class Client:
    """The MCP client of the tools/call being handled: how to ask it, and its session."""

    ask: Ask
    session: str


# Set by `middleware`; unset when the client did not declare elicitation, so such a client
# is never asked.
_CLIENT: contextvars.ContextVar[Client | None] = contextvars.ContextVar("signoff_in_band")


async def middleware(ctx: ServerRequestContext[Any], call_next: CallNext) -> Any:
    """For a tools/call from a client that can be asked, remember how to ask it."""
    if ctx.method != "tools/call" or not _can_elicit(ctx):
        return await call_next(ctx)

    async def ask(message: str, schema: dict[str, Any]) -> types.ElicitResult:
        # Related to the call, so a streamable HTTP client gets it on the call's stream.
        return await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)

    # As the proxy names sessions (proxy.py): the HTTP session, else the stdio process's.
    headers = getattr(ctx.request, "headers", None)
    session = (headers.get("mcp-session-id") if headers is not None else None) or "stdio"
    token = _CLIENT.set(Client(ask, session))
    try:
        return await call_next(ctx)
    finally:
        _CLIENT.reset(token)


def _can_elicit(ctx: ServerRequestContext[Any]) -> bool:
    wanted = types.ClientCapabilities(elicitation=types.ElicitationCapability())
    if not ctx.session.check_client_capability(wanted):
        return False
    params = ctx.session.client_params
    declared = params.capabilities.elicitation if params is not None else None
    # An empty elicitation capability means form mode (the spec's backwards compatibility).
    return declared is not None and (declared.form is not None or declared.url is None)


class InBand:
    """Asks the human at the client to settle reviews their policy lets them settle."""

    def __init__(self, human: AsyncClient) -> None:
        self.human = human  # the human's own token: their identity, not the agent's
        self.sessions = SessionApprovals()

    def begin(self, review_id: str, action: str) -> asyncio.Task[None] | None:
        """Start asking about `review_id` alongside the wait for its outcome, if this
        call's client can be asked; the caller cancels the task once the review is settled."""
        client = _CLIENT.get(None)
        if client is None:
            return None
        return asyncio.create_task(self.settle(review_id, action, client))

    async def settle(self, review_id: str, action: str, client: Client) -> None:
        """Show the review to the human and submit their answer as their act (or theirs for
        the session, unasked); any failure leaves the review to the group (and is logged)."""
        review = await self._review(review_id, action)
        if review is None:
            return
        rules = [(m.policy, m.rule) for m in review.matched_rules if not m.shadow]
        covered = scope(review.action, rules, review.params)
        first = self.sessions.find(client.session, covered)
        if first is not None:
            logs.event(
                log, "mcp.in_band.session_approved", action=action, review_id=review_id, by=first
            )
            note = f"approved for this session in review {first}, not asked again"
            await self._submit(review, Verdict.APPROVE, note, action)
            return
        logs.event(log, "mcp.in_band.asked", action=action, review_id=review_id)
        try:
            answer = await client.ask(prompt(review), SCHEMA)
        except asyncio.CancelledError:
            logs.event(log, "mcp.in_band.withdrawn", action=action, review_id=review_id)
            raise
        except Exception as exc:  # a client error answer, a closed session: the group decides
            logs.event(
                log, "mcp.in_band.unanswered", action=action, review_id=review_id, error=str(exc)
            )
            return
        choice = read_answer(answer)
        if isinstance(choice, str):
            logs.event(
                log, "mcp.in_band.declined", action=action, review_id=review_id, reason=choice
            )
            return
        verdict, comment, for_session = choice
        # Once answered, the answer is submitted (and its fate logged) even if the review
        # settles meanwhile and the call ends: the server's version check then refuses it.
        submit = asyncio.ensure_future(self._submit(review, verdict, comment, action))
        try:
            await asyncio.shield(submit)
        except asyncio.CancelledError:
            # The gate saw the outcome (maybe this very act) first: finish, then stop.
            await submit  # one SubmitReview, bounded by the client's timeout
            raise
        finally:
            done = submit.result() if submit.done() else None
            # Only an approval Signoff accepted as the human's act stands for the session.
            if for_session and done is not None and done.state is ReviewState.APPROVED:
                self.sessions.add(client.session, covered, review.review_id)

    async def _review(self, review_id: str, action: str) -> Review | None:
        try:
            review = await self.human.get_review(review_id)
        except errors.SignoffError as exc:  # PermissionDenied: not theirs to settle
            logs.event(
                log, "mcp.in_band.skipped", action=action, review_id=review_id, error=exc.message
            )
            return None
        if review.in_band != "requester" or review.state is not ReviewState.PENDING:
            logs.event(
                log,
                "mcp.in_band.skipped",
                action=action,
                review_id=review_id,
                error=f"in_band {review.in_band or 'not allowed'}, {review.state.name}",
            )
            return None
        return review

    async def _submit(
        self, review: Review, verdict: Verdict, comment: str, action: str
    ) -> Review | None:
        try:
            done = await self.human.submit_review(
                review.review_id, verdict, expected_version=review.version, comment=comment
            )
        except errors.SignoffError as exc:  # settled meanwhile, or not theirs after all
            logs.event(
                log,
                "mcp.in_band.refused",
                logging.WARNING,
                action=action,
                review_id=review.review_id,
                verdict=verdict.name,
                error=exc.message,
            )
            return None
        logs.event(
            log,
            "mcp.in_band.settled",
            action=action,
            review_id=review.review_id,
            verdict=verdict.name,
            state=done.state.name,
        )
        return done


def prompt(review: Review) -> str:
    """What the human reads: the action, its arguments as reviewers see them, the reason."""
    redacted = f" (redacted: {', '.join(review.redacted_paths)})" if review.redacted_paths else ""
    arguments = json.dumps(review.params, indent=2, sort_keys=True, ensure_ascii=False)
    group = review.reviewer_group
    return (
        f"Signoff: may the agent run {review.action}?\n"
        f"Why this needs approval: {review.reason}\n"
        f"Arguments{redacted}:\n{arguments}\n"
        f"Review {review.review_id}: you may settle it yourself (approve once, approve for "
        "this session, or reject). "
        f"Declining leaves it to the {group} reviewers, who can also settle it meanwhile."
    )


def read_answer(answer: types.ElicitResult) -> tuple[Verdict, str, bool] | str:
    """The verdict, comment and "for this session" of an accepted, well-formed answer;
    else why it is none."""
    if answer.action != "accept":
        return answer.action  # decline or cancel
    content = answer.content or {}
    extra = sorted(set(content) - set(SCHEMA["properties"]))
    if extra:
        return f"malformed answer: unexpected fields {', '.join(extra)}"
    decision = content.get("decision")
    if not isinstance(decision, str) or decision not in CHOICES:
        return f"malformed answer: decision {decision!r} is not one of {', '.join(CHOICES)}"
    comment = content.get("comment")
    if comment is None:
        comment = ""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        return "malformed answer: comment is not a text of at most 4096 characters"
    return CHOICES[decision], comment, decision == "approve_session"


async def stop(task: asyncio.Task[None] | None) -> None:
    """Stop asking (the review is settled or the call is over)."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
