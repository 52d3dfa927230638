"""Slack's interactivity endpoint: a reviewer's button press or modal, verified, mapped to a
Signoff identity, and acted on through the same `submit` as the API, the console and the CLI.

Order of checks, cheapest first, nothing parsed before the signature holds:
1. the body's size (Content-Length, then as read) against `max_body_bytes`;
2. `X-Slack-Signature` over `v0:<timestamp>:<body>` with the signing secret, and the
   timestamp within five minutes (slack_sdk's SignatureVerifier);
3. a request seen before (same signature, or same trigger id) within that window: refused --
   by any process on the database (the keys are in the store, store/notify_state.py);
4. the payload, the workspace, the Slack user -> Signoff identity map;
5. the act itself: group, separation of duties, version and N approvals, as for any act.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from slack_sdk.errors import SlackClientError
from slack_sdk.signature import Clock, SignatureVerifier

from signoff import pb
from signoff.auth.identity import Identity
from signoff.auth.tokens import load_identities, load_principals
from signoff.errors import SignoffError
from signoff.logs import event as log_event
from signoff.notify import slack_blocks as blocks
from signoff.notify.slack_app import SlackPoster
from signoff.notify.slack_config import SlackSettings
from signoff.store.notify_state import NotifyState

log = logging.getLogger("signoff.notify.slack")

S = pb.review
# Slack's own window (slack_sdk refuses a timestamp further than this from now); a replay
# must be remembered at least this long on either side of it.
WINDOW_S = 300
MAX_REMEMBERED = 100_000  # users whose e-mail match is cached
CHANNEL = "slack"
REFUSAL_LOG_S = 60.0

Submit = Callable[[Identity, pb.review.SubmitReviewRequest, str], Awaitable[pb.review.Review]]
Get = Callable[[Identity, str], Awaitable[pb.review.Review]]


class _Clock(Clock):
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


@dataclass(frozen=True)
class Directory:
    """Who Slack users are in Signoff: the tokens file's identities and principals' e-mails."""

    identities: Mapping[str, Identity]  # identity id -> roles, from auth.tokens_file
    by_email: Mapping[str, str]  # lower-cased attributes.email -> identity id


class _Seen:
    """Keys (signatures, trigger ids) seen within the replay window, by any process."""

    def __init__(self, state: NotifyState, now: Callable[[], float]) -> None:
        self._state = state
        self._now = now

    async def first_time(self, signature: str, trigger: str) -> bool:
        """False if either key was seen in the window; otherwise remember both."""
        # Digests: a fixed size in the table whatever Slack sends, and nothing replayable.
        keys = [
            (kind, hashlib.sha256(key.encode()).hexdigest()[:32])
            for kind, key in (("slack.signature", signature), ("slack.trigger", trigger))
            if key
        ]
        if not keys:
            return True
        now = self._now()
        until = dt.datetime.fromtimestamp(now + 2 * WINDOW_S, dt.UTC)
        return await self._state.use_nonces(keys, until, dt.datetime.fromtimestamp(now, dt.UTC))


class Refused(Exception):
    """An act that will not be done; the message is what the Slack user is told."""


class SlackActions:
    """Handles POST /slack/interactivity."""

    def __init__(
        self,
        settings: SlackSettings,
        poster: SlackPoster,
        submit: Submit,
        get: Get,
        directory: Directory,
        state: NotifyState,
        now: Callable[[], float] = time.time,
    ) -> None:
        """Act through `submit` (ReviewDesk.submit) and re-read through `get`; replays are
        remembered in `state` (the store)."""
        self.settings = settings
        self.poster = poster
        self.submit = submit
        self.get = get
        self.directory = directory
        self.verifier = SignatureVerifier(settings.signing_secret.get_secret_value(), _Clock(now))
        self._seen = _Seen(state, now)
        self._by_email: dict[str, tuple[str | None, float]] = {}
        self._now = now
        self._refused: dict[str, int] = {}  # refusals by reason since the last log line
        self._refused_logged = float("-inf")
        check_users(settings, directory)

    async def handle(self, request: web.Request) -> web.Response:
        """Verify, then act; every refusal says why, to Slack (status) and to the user."""
        body = await _read_bounded(request, self.settings.max_body_bytes)
        if body is None:
            return self._refuse(413, "too_large", f"body over {self.settings.max_body_bytes} bytes")
        signature = request.headers.get("X-Slack-Signature", "")
        if not self._verified(body, request.headers.get("X-Slack-Request-Timestamp"), signature):
            return self._refuse(401, "bad_signature", "invalid or stale Slack signature")
        payload = _payload(body)
        if payload is None:
            return self._refuse(400, "bad_payload", "expected a form field `payload` holding JSON")
        trigger = payload.get("trigger_id")
        trigger = trigger if isinstance(trigger, str) else ""
        try:
            first = await self._seen.first_time(signature, trigger)
        except SignoffError as exc:  # the store is down: refuse, Slack retries
            log_event(log, "slack.replay_check_failed", logging.WARNING, error=exc.message)
            return web.Response(status=503, text="cannot check for replays now; retry\n")
        if not first:
            return self._refuse(409, "replayed", "this request was already received")
        team = (
            (payload.get("team") or {}).get("id") if isinstance(payload.get("team"), dict) else None
        )
        if self.settings.team_id and team != self.settings.team_id:
            return self._refuse(403, "other_team", "interaction from another Slack workspace")
        kind = payload.get("type")
        if kind == "block_actions":
            await self._button(payload)
            return web.Response(status=200)
        if kind == "view_submission":
            return await self._modal(payload)
        return web.Response(status=200)  # other interactions (view_closed...): nothing to do

    def _refuse(self, status: int, reason: str, text: str) -> web.Response:
        # Anyone can send these, so they are counted and logged at most once a minute: a
        # flood of forged requests must not become a flood of log lines.
        self._refused[reason] = self._refused.get(reason, 0) + 1
        now = self._now()
        if now - self._refused_logged >= REFUSAL_LOG_S:
            log_event(log, "slack.refused", logging.WARNING, **self._refused)
            self._refused, self._refused_logged = {}, now
        return web.Response(status=status, text=text + "\n")

    def _verified(self, body: bytes, timestamp: str | None, signature: str) -> bool:
        try:
            return self.verifier.is_valid(body=body, timestamp=timestamp, signature=signature)
        except (ValueError, TypeError):  # a timestamp that is no number, a body not UTF-8...
            return False

    async def _button(self, payload: dict[str, Any]) -> None:
        actions = payload.get("actions")
        action = actions[0] if isinstance(actions, list) and actions else {}
        action_id = action.get("action_id") if isinstance(action, dict) else None
        if action_id not in (blocks.APPROVE, blocks.REJECT):
            return  # "Open in console" is a link; Slack still tells us it was pressed
        user, channel, ts = _where(payload)
        target = blocks.parse_value(action.get("value"))
        if target is None:
            self.poster.tell(channel, user, blocks.refusal("act", "this button is not Signoff's"))
            return
        rid, version = target
        await self.poster.remember(rid, channel, ts)
        verb = "approval" if action_id == blocks.APPROVE else "rejection"
        try:
            who = await self._identity(user)
            if action_id == blocks.REJECT:
                # Read first: a settled or changed review, or one the user may not see, is
                # refused now rather than after they typed their reason.
                current = await self._current(who, rid, version)
                where = {"channel": channel, "ts": ts}
                view = blocks.reject_view(rid, version, current.request.action.name, where)
                await self.poster.open_view(str(payload.get("trigger_id") or ""), view)
                return
            # The desk's notes redraw the message: `review.changed` when one of N approvals
            # landed, `review.resolved` when it settled -- whichever door the act came by.
            await self._act(who, rid, version, S.VERDICT_APPROVE, "")
        except Refused as exc:
            self.poster.tell(channel, user, blocks.refusal(verb, str(exc)))
            await self._show_current(user, rid)
            return
        except (SlackClientError, TimeoutError, OSError) as exc:
            log_event(log, "slack.view_failed", logging.WARNING, error=type(exc).__name__)
            self.poster.tell(channel, user, blocks.refusal(verb, "Slack did not open the form"))
            return

    async def _modal(self, payload: dict[str, Any]) -> web.Response:
        view = payload.get("view") if isinstance(payload.get("view"), dict) else {}
        if view.get("callback_id") != blocks.REJECT_VIEW:
            return web.Response(status=200)
        meta = _json(view.get("private_metadata"))
        target = blocks.parse_value(json.dumps(meta)) if isinstance(meta, dict) else None
        if target is None:
            return _modal_error("this form is not Signoff's")
        rid, version = target
        channel, ts = str(meta.get("channel") or ""), str(meta.get("ts") or "")
        await self.poster.remember(rid, channel, ts)
        comment = _comment(view)
        user = _where(payload)[0]
        try:
            who = await self._identity(user)
            # A rejection always settles the review: the notifier hook updates the message.
            await self._act(who, rid, version, S.VERDICT_REJECT, comment)
        except Refused as exc:
            await self._show_current(user, rid)
            return _modal_error(f"Not rejected: {exc}")
        return web.Response(status=200)  # an empty 200 closes the modal

    async def _act(
        self, who: Identity, rid: str, version: int, verdict: int, comment: str
    ) -> pb.review.Review:
        req = S.SubmitReviewRequest(
            review_id=rid, verdict=verdict, comment=comment, expected_version=version
        )
        try:
            review = await self.submit(who, req, CHANNEL)
        except SignoffError as exc:
            log_event(
                log, "slack.act_refused", review_id=rid, actor=who.id, error=type(exc).__name__
            )
            raise Refused(exc.message) from None
        log_event(log, "slack.act", review_id=rid, actor=who.id, verdict=S.Verdict.Name(verdict))
        return review

    async def _current(self, who: Identity, rid: str, version: int) -> pb.review.Review:
        """The review as `who` may see it, still pending at `version`; Refused otherwise."""
        try:
            review = await self.get(who, rid)
        except SignoffError as exc:
            raise Refused(exc.message) from None
        if review.state != S.REVIEW_STATE_PENDING:
            state = S.ReviewState.Name(review.state).removeprefix("REVIEW_STATE_")
            raise Refused(f"review {rid} is {state}: resolved reviews cannot change")
        if review.version != version:
            raise Refused(
                f"review {rid} changed since you saw it (your version {version}, now "
                f"{review.version}); look at it again before acting"
            )
        return review

    async def _show_current(self, user: str, rid: str) -> None:
        """After a refusal, show the review as it stands (settled elsewhere, newer version)."""
        try:
            who = await self._identity(user)
            review = await self.get(who, rid)
        except (Refused, SignoffError):
            return
        self.poster.refresh(review)

    async def _identity(self, user: str) -> Identity:
        """The Signoff identity of a Slack user; Refused (saying how to map it) if none."""
        if not user:
            raise Refused("the interaction names no Slack user")
        entry = self.settings.users.get(user)
        if entry is not None:
            return self._with_roles(entry.identity, entry.roles)
        if self.settings.match_email:
            ident = await self._by_email_of(user)
            if ident is not None:
                return self._with_roles(ident, None)
        raise Refused(
            f"Slack user {user} is not mapped to a Signoff reviewer; an administrator adds "
            f"it under notify.slack.users"
            + (" or gives its Slack e-mail to a principal" if self.settings.match_email else "")
        )

    def _with_roles(self, ident: str, roles: list[str] | None) -> Identity:
        known = self.directory.identities.get(ident)
        granted = known.roles if known is not None else frozenset(roles or ())
        return Identity(ident, granted, source="slack")

    async def _by_email_of(self, user: str) -> str | None:
        hit = self._by_email.get(user)
        if hit is not None and hit[1] > self._now():
            return hit[0]
        email = await self.poster.email_of(user)
        ident = self.directory.by_email.get(email.lower()) if email else None
        # Remembered for the replay window: a user renamed or removed in Slack stops
        # mapping within minutes, and a burst of presses costs one users.info call.
        self._by_email[user] = (ident, self._now() + WINDOW_S)
        if len(self._by_email) > MAX_REMEMBERED:
            self._by_email.clear()
        return ident


def check_users(settings: SlackSettings, directory: Directory) -> None:
    """ValueError if a mapped identity has a token and roles of its own in the Slack map."""
    for user, entry in settings.users.items():
        if entry.roles is not None and entry.identity in directory.identities:
            raise ValueError(
                f"notify.slack.users.{user}.roles: {entry.identity} has a token in "
                "auth.tokens_file, whose roles it acts with; remove these roles"
            )


async def _read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The body, or None once it is over `limit` bytes (announced or as read)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(16 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _payload(body: bytes) -> dict[str, Any] | None:
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return None
    values = form.get("payload")
    data = _json(values[0]) if values and len(values) == 1 else None
    return data if isinstance(data, dict) else None


def _json(text: object) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _where(payload: dict[str, Any]) -> tuple[str, str, str]:
    """(Slack user id, channel id, message ts) of a button press."""
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    channel = payload.get("channel") if isinstance(payload.get("channel"), dict) else {}
    container = payload.get("container") if isinstance(payload.get("container"), dict) else {}
    message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
    ts = container.get("message_ts") or message.get("ts") or ""
    return str(user.get("id") or ""), str(channel.get("id") or ""), str(ts)


def _comment(view: dict[str, Any]) -> str:
    state = view.get("state") if isinstance(view.get("state"), dict) else {}
    values = state.get("values") if isinstance(state.get("values"), dict) else {}
    block = (
        values.get(blocks.COMMENT_BLOCK)
        if isinstance(values.get(blocks.COMMENT_BLOCK), dict)
        else {}
    )
    field = (
        block.get(blocks.COMMENT_ACTION)
        if isinstance(block.get(blocks.COMMENT_ACTION), dict)
        else {}
    )
    value = field.get("value")
    return value if isinstance(value, str) else ""


def _modal_error(text: str) -> web.Response:
    # Slack shows `errors` under the named input block, and keeps the modal open.
    errors = {blocks.COMMENT_BLOCK: text[:2000]}
    return web.json_response({"response_action": "errors", "errors": errors})


def slack_directory(tokens_file: Path | None) -> Directory:
    """The identities (and principals' e-mails) of the tokens file, if there is one."""
    if tokens_file is None:
        return Directory({}, {})
    identities = load_identities(tokens_file)
    by_email = {}
    for name, facts in load_principals(tokens_file).items():
        email = json.loads(facts.attributes_json).get("email")
        if isinstance(email, str) and email:
            by_email[email.lower()] = name
    return Directory(identities, by_email)
