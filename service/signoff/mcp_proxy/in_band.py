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
to the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import mcp_types as types
from mcp.server.context import CallNext, ServerRequestContext

from signoff import logs
from signoff_client import AsyncClient, Review, ReviewState, Verdict, errors

log = logging.getLogger("signoff.mcp_proxy")

# Ask the client's human: a message and a form schema in, the client's answer out.
Ask = Callable[[str, dict[str, Any]], Awaitable[types.ElicitResult]]

CHOICES = {"approve": Verdict.APPROVE, "reject": Verdict.REJECT}
MAX_COMMENT = 4096  # as the server's SubmitReview
# The form: a flat object of primitives, as elicitation allows.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "decision": {
            "type": "string",
            "title": "Your decision",
            "description": "approve: run this call once; reject: refuse it",
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

# The ask of the tools/call being handled (set by `middleware`); unset when the client did
# not declare elicitation, so such a client is never asked.
_ASK: contextvars.ContextVar[Ask | None] = contextvars.ContextVar("signoff_in_band_ask")


async def middleware(ctx: ServerRequestContext[Any], call_next: CallNext) -> Any:
    """For a tools/call from a client that can be asked, remember how to ask it."""
    if ctx.method != "tools/call" or not _can_elicit(ctx):
        return await call_next(ctx)

    async def ask(message: str, schema: dict[str, Any]) -> types.ElicitResult:
        # Related to the call, so a streamable HTTP client gets it on the call's stream.
        return await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)

    token = _ASK.set(ask)
    try:
        return await call_next(ctx)
    finally:
        _ASK.reset(token)


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

    def begin(self, review_id: str, action: str) -> asyncio.Task[None] | None:
        """Start asking about `review_id` alongside the wait for its outcome, if this
        call's client can be asked; the caller cancels the task once the review is settled."""
        ask = _ASK.get(None)
        if ask is None:
            return None
        return asyncio.create_task(self.settle(review_id, action, ask))

    async def settle(self, review_id: str, action: str, ask: Ask) -> None:
        """Show the review to the human and submit their answer as their act; any failure
        leaves the review to the group (and is logged)."""
        review = await self._review(review_id, action)
        if review is None:
            return
        logs.event(log, "mcp.in_band.asked", action=action, review_id=review_id)
        try:
            answer = await ask(prompt(review), SCHEMA)
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
        verdict, comment = choice
        # Once answered, the answer is submitted (and its fate logged) even if the review
        # settles meanwhile and the call ends: the server's version check then refuses it.
        submit = asyncio.ensure_future(self._submit(review, verdict, comment, action))
        try:
            await asyncio.shield(submit)
        except asyncio.CancelledError:
            await submit  # one SubmitReview, bounded by the client's timeout
            raise

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

    async def _submit(self, review: Review, verdict: Verdict, comment: str, action: str) -> None:
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
            return
        logs.event(
            log,
            "mcp.in_band.settled",
            action=action,
            review_id=review.review_id,
            verdict=verdict.name,
            state=done.state.name,
        )


def prompt(review: Review) -> str:
    """What the human reads: the action, its arguments as reviewers see them, the reason."""
    redacted = f" (redacted: {', '.join(review.redacted_paths)})" if review.redacted_paths else ""
    arguments = json.dumps(review.params, indent=2, sort_keys=True, ensure_ascii=False)
    group = review.reviewer_group
    return (
        f"Signoff: may the agent run {review.action}?\n"
        f"Why this needs approval: {review.reason}\n"
        f"Arguments{redacted}:\n{arguments}\n"
        f"Review {review.review_id}: you may settle it yourself (approve once or reject). "
        f"Declining leaves it to the {group} reviewers, who can also settle it meanwhile."
    )


def read_answer(answer: types.ElicitResult) -> tuple[Verdict, str] | str:
    """The verdict and comment of an accepted, well-formed answer; else why it is none."""
    if answer.action != "accept":
        return answer.action  # decline or cancel
    content = answer.content or {}
    extra = sorted(set(content) - set(SCHEMA["properties"]))
    if extra:
        return f"malformed answer: unexpected fields {', '.join(extra)}"
    decision = content.get("decision")
    if not isinstance(decision, str) or decision not in CHOICES:
        return f"malformed answer: decision {decision!r} is not approve or reject"
    comment = content.get("comment")
    if comment is None:
        comment = ""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        return "malformed answer: comment is not a text of at most 4096 characters"
    return CHOICES[decision], comment


async def stop(task: asyncio.Task[None] | None) -> None:
    """Stop asking (the review is settled or the call is over)."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
