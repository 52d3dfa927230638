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

URL mode: with `in_band.console_url` set and a client that declared URL-mode elicitation,
the question carries a link to the review's page in the console instead of a form; the
human acts there, signed in as themself, and the proxy tells the client when the review
is settled (`notifications/elicitation/complete`). A client with form mode only gets the
form.
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
# Send the client's human to a page: a message, the URL and the elicitation's id in.
Link = Callable[[str, str, str], Awaitable[types.ElicitResult]]
# Tell the client that the URL-mode elicitation of this id is over.
Done = Callable[[str], Awaitable[None]]

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

    ask: Ask | None  # None: the client declared URL mode only
    session: str
    link: Link | None = None  # None: the client did not declare URL mode
    done: Done | None = None


# Set by `middleware`; unset when the client did not declare elicitation, so such a client
# is never asked.
_CLIENT: contextvars.ContextVar[Client | None] = contextvars.ContextVar("signoff_in_band")


async def middleware(ctx: ServerRequestContext[Any], call_next: CallNext) -> Any:
    """For a tools/call from a client that can be asked, remember how to ask it."""
    form, url = _modes(ctx) if ctx.method == "tools/call" else (False, False)
    if not (form or url):
        return await call_next(ctx)

    # Related to the call, so a streamable HTTP client gets them on the call's stream.
    async def ask(message: str, schema: dict[str, Any]) -> types.ElicitResult:
        return await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)

    async def link(message: str, url: str, elicitation_id: str) -> types.ElicitResult:
        return await ctx.session.elicit_url(
            message, url, elicitation_id, related_request_id=ctx.request_id
        )

    async def done(elicitation_id: str) -> None:
        await ctx.session.send_elicit_complete(elicitation_id, related_request_id=ctx.request_id)

    # As the proxy names sessions (proxy.py): the HTTP session, else the stdio process's.
    headers = getattr(ctx.request, "headers", None)
    session = (headers.get("mcp-session-id") if headers is not None else None) or "stdio"
    client = Client(ask if form else None, session, link if url else None, done if url else None)
    token = _CLIENT.set(client)
    try:
        return await call_next(ctx)
    finally:
        _CLIENT.reset(token)


def _modes(ctx: ServerRequestContext[Any]) -> tuple[bool, bool]:
    """Whether the client declared form-mode and URL-mode elicitation."""
    wanted = types.ClientCapabilities(elicitation=types.ElicitationCapability())
    if not ctx.session.check_client_capability(wanted):
        return False, False
    params = ctx.session.client_params
    declared = params.capabilities.elicitation if params is not None else None
    if declared is None:
        return False, False
    # An empty elicitation capability means form mode (the spec's backwards compatibility).
    return declared.form is not None or declared.url is None, declared.url is not None


class InBand:
    """Asks the human at the client to settle reviews their policy lets them settle."""

    def __init__(self, human: AsyncClient, console_url: str | None = None) -> None:
        self.human = human  # the human's own token: their identity, not the agent's
        self.sessions = SessionApprovals()
        self.console_url = console_url  # set: URL mode, for clients that declared it

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
        if self.console_url is not None and client.link is not None:
            await self._link(review, action, client, self.console_url)
            return
        if client.ask is None:  # URL mode only, and no console to send the human to
            error = "the client has URL-mode elicitation only and in_band.console_url is unset"
            logs.event(log, "mcp.in_band.skipped", action=action, review_id=review_id, error=error)
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

    async def _link(self, review: Review, action: str, client: Client, console: str) -> None:
        """URL mode: send the human to the review's page in the console, where they act as
        themself; once they went, wait with them until the gate stops the asking (the review
        is settled, or the call is over), then tell the client the elicitation is over."""
        assert client.link is not None
        url = f"{console.rstrip('/')}/reviews/{review.review_id}"
        logs.event(log, "mcp.in_band.linked", action=action, review_id=review.review_id, url=url)
        try:
            answer = await client.link(prompt(review, url), url, review.review_id)
        except asyncio.CancelledError:
            # Settled (or the call ended) before the client answered the link: the human
            # may have acted in the console at once. The client may still show the link, so
            # it is told the elicitation is over here too.
            logs.event(log, "mcp.in_band.withdrawn", action=action, review_id=review.review_id)
            await _told_done(client, review.review_id)
            raise
        except Exception as exc:  # a client error answer, a closed session: the group decides
            logs.event(
                log,
                "mcp.in_band.unanswered",
                action=action,
                review_id=review.review_id,
                error=str(exc),
            )
            return
        if answer.action != "accept":
            logs.event(
                log,
                "mcp.in_band.declined",
                action=action,
                review_id=review.review_id,
                reason=answer.action,
            )
            return
        logs.event(log, "mcp.in_band.opened", action=action, review_id=review.review_id)
        try:
            await asyncio.Event().wait()  # until stop(): the review's outcome is the gate's
        finally:
            await _told_done(client, review.review_id)

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


def prompt(review: Review, url: str | None = None) -> str:
    """What the human reads: the action, its arguments as reviewers see them, the reason,
    and what they can do: the form's choices, or (URL mode) the console's page at `url`."""
    redacted = f" (redacted: {', '.join(review.redacted_paths)})" if review.redacted_paths else ""
    arguments = json.dumps(review.params, indent=2, sort_keys=True, ensure_ascii=False)
    group = review.reviewer_group
    how = (
        "approve once, approve for this session, or reject"
        if url is None
        else f"approve or reject it in the Signoff console, signed in as yourself: {url}"
    )
    return (
        f"Signoff: may the agent run {review.action}?\n"
        f"Why this needs approval: {review.reason}\n"
        f"Arguments{redacted}:\n{arguments}\n"
        f"Review {review.review_id}: you may settle it yourself ({how}). "
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


async def _told_done(client: Client, elicitation_id: str) -> None:
    """Tell a URL-mode client its elicitation is over (notifications/elicitation/complete)."""
    if client.done is not None:
        with contextlib.suppress(Exception):  # a client gone away: nothing to tell
            await client.done(elicitation_id)


async def stop(task: asyncio.Task[None] | None) -> None:
    """Stop asking (the review is settled or the call is over)."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
