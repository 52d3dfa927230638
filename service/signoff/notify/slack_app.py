"""The Slack app's messages: one per review and channel, posted when the review opens and
updated in place at every change, whoever made it (Slack, console, CLI, the expiry sweep).

Guarantees, in one place:
- `publish` and `refresh` never await the network and never raise: a review act never
  waits for, or fails because of, Slack. One worker sends in order, so a message is posted
  before any update of it.
- Which message shows which review is in the store (store/notify_state.py), noted when it is
  posted or a button on it is pressed, and forgotten once the review is settled. Whichever
  process publishes a change -- another worker or replica, or this one after a restart --
  reads it there and updates the message, drawn from the newest of the review it was given
  and the stored one. A review changed elsewhere while this process was posting is caught
  by re-reading it once the message is noted: the later of the two readers updates it.
  Left open: two processes updating one message at the same moment land in Slack in either
  order (chat.update has no condition); the next change, or a button press, redraws it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from signoff import pb
from signoff.core.reviews import FINAL_STATES
from signoff.logs import event as log_event
from signoff.notify.config import CHANGED, EVENTS, NotifySettings
from signoff.notify.slack_blocks import message
from signoff.notify.slack_config import SlackSettings
from signoff.store.base import Store
from signoff.store.notify_state import MAX_KEY_CHARS

log = logging.getLogger("signoff.notify.slack")


@dataclass(frozen=True)
class _Job:
    """One thing for the worker to send, in order."""

    kind: str  # an event of EVENTS, CHANGED, or "ephemeral"
    review: pb.review.Review | None = None
    channel: str = ""
    user: str = ""
    text: str = ""


class SlackPoster:
    """Posts and updates the review messages of the groups routed to Slack."""

    def __init__(
        self,
        settings: NotifySettings,
        *,
        client: AsyncWebClient | None = None,
        queue_size: int = 10_000,
    ) -> None:
        """Route by `settings.routes`; nothing is sent until `start()`."""
        if settings.slack is None:
            raise ValueError("notify.slack is not configured")
        self.settings = settings
        self.app: SlackSettings = settings.slack
        self.client = client or web_client(self.app)
        self.console_url = str(self.app.console_url)
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(queue_size)
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._closed = False
        self._store: Store | None = None
        self._now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)

    def use_store(self, store: Store, now: Callable[[], dt.datetime]) -> None:
        """Keep which message shows which review in `store`, noted at `now()` (before start)."""
        self._store, self._now = store, now

    async def start(self) -> None:
        """Start the sending worker on the running loop."""
        if self._store is None:
            raise RuntimeError("SlackPoster.use_store() must be called before start()")
        if self._worker is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            self._worker = asyncio.create_task(self._work(), name="notify:slack")

    async def idle(self) -> None:
        """Return once every job queued so far was sent (or failed and was logged)."""
        await self._queue.join()

    # A plain `timeout` argument, as Notifier.close: it bounds only the flush.
    async def close(self, timeout: float = 5) -> None:  # noqa: ASYNC109
        """Stop accepting, send what can be within `timeout`, drop (and log) the rest."""
        self._closed = True
        if self._worker is not None:
            try:
                async with asyncio.timeout(timeout):
                    await self._queue.join()
            except TimeoutError:
                log_event(log, "slack.dropped", logging.WARNING, jobs=self._queue.qsize())
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

    def publish(self, event: str, review: pb.review.Review) -> None:
        """Queue the post or update this review event calls for; never blocks, never raises."""
        if event in EVENTS or event == CHANGED:
            self._put(_Job(event, _copy(review)))

    def refresh(self, review: pb.review.Review) -> None:
        """Queue an update of this review's messages (after an act that did not settle it)."""
        self._put(_Job(CHANGED, _copy(review)))

    def tell(self, channel: str, user: str, text: str) -> None:
        """Queue a message only `user` sees in `channel` (why their act was refused)."""
        self._put(_Job("ephemeral", channel=channel, user=user, text=text))

    async def remember(self, review_id: str, channel: str, ts: str) -> None:
        """Note that the message `ts` in `channel` shows this review (from a button press)."""
        # Normally noted already, when it was posted: read first, write only what is new.
        # Best effort: a failure leaves the message as it is, and must not refuse the act.
        if not all(0 < len(v) <= MAX_KEY_CHARS for v in (review_id, channel, ts)):
            return
        try:
            if channel not in await self.messages_of(review_id):
                await self._state().add_slack_message(review_id, channel, ts, self._now())
        except Exception as exc:
            log_event(log, "slack.note_failed", logging.WARNING, error=type(exc).__name__)

    async def messages_of(self, review_id: str) -> dict[str, str]:
        """The messages known to show this review: channel -> ts."""
        return await self._state().slack_messages(review_id)

    def _state(self) -> Store:
        if self._store is None:
            raise RuntimeError("SlackPoster.use_store() was not called")
        return self._store

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        """Open a modal now (a trigger id is good for 3 seconds, so this is not queued)."""
        await self._call(self.client.views_open, trigger_id=trigger_id, view=view)

    async def email_of(self, user: str) -> str | None:
        """The e-mail Slack holds for `user` (users.info; needs users:read.email), or None."""
        try:
            resp = await self._call(self.client.users_info, user=user)
        except (SlackClientError, TimeoutError, OSError) as exc:
            log_event(log, "slack.users_info_failed", logging.WARNING, error=_why(exc))
            return None
        profile = (resp.get("user") or {}).get("profile") or {}
        email = profile.get("email")
        return email if isinstance(email, str) and email else None

    def _put(self, job: _Job) -> None:
        try:
            self._enqueue(job)
        except Exception as exc:  # the caller is a review act: never fail it
            log_event(log, "slack.publish_failed", logging.ERROR, error=type(exc).__name__)

    def _enqueue(self, job: _Job) -> None:
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            # asyncio queues are not thread-safe; hop onto the loop that owns this one.
            self._loop.call_soon_threadsafe(self._enqueue, job)
            return
        if self._closed:
            log_event(log, "slack.closed_drop", logging.WARNING, kind=job.kind)
            return
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            rid = job.review.review_id if job.review else None
            log_event(log, "slack.queue_full", logging.WARNING, kind=job.kind, review_id=rid)

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._run(job)
            except asyncio.CancelledError:
                raise
            except (SlackClientError, TimeoutError, OSError) as exc:
                rid = job.review.review_id if job.review else None
                log_event(
                    log,
                    "slack.failed",
                    logging.ERROR,
                    kind=job.kind,
                    review_id=rid,
                    error=_why(exc),
                )
            except Exception as exc:  # a bug here must not kill the worker for good
                log_event(
                    log, "slack.failed", logging.ERROR, kind=job.kind, error=type(exc).__name__
                )
            finally:
                self._queue.task_done()

    async def _run(self, job: _Job) -> None:
        if job.kind == "ephemeral":
            await self._call(
                self.client.chat_postEphemeral, channel=job.channel, user=job.user, text=job.text
            )
            return
        assert job.review is not None
        # Drawn as it stands: a job that waited behind others, here or in the process that
        # queued it, must not draw an older state over a newer one another process drew.
        review = await self._newest(job.review)
        rid = review.review_id
        settled = review.state in FINAL_STATES
        routed = self.settings.slack_channels(review.reviewer_group)
        known = await self.messages_of(rid)
        for channel, ts in known.items():
            moved = "" if channel in routed or settled else review.reviewer_group
            await self._call(
                self.client.chat_update,
                channel=channel,
                ts=ts,
                **message(review, self.console_url, moved_to=moved),
            )
            log_event(log, "slack.updated", review_id=rid, channel=channel)
        posted = False
        if job.kind in ("review.opened", "review.escalated") and not settled:
            for channel in routed:
                if channel in known:
                    continue
                resp = await self._call(
                    self.client.chat_postMessage,
                    channel=channel,
                    **message(review, self.console_url),
                )
                ts = resp.get("ts")
                if isinstance(ts, str):
                    await self.remember(rid, str(resp.get("channel") or channel), ts)
                    posted = True
                log_event(log, "slack.posted", review_id=rid, channel=channel)
        if settled and known:
            # Only once it updated what it read: a message another process notes between
            # this read and the forget would be dropped unseen, and that process's re-read
            # (below) would find nothing left to update.
            await self._state().forget_slack_messages(rid)
        elif posted:
            # Another process may have changed the review after we read it and before our
            # message was noted: its update found no message to change. Now that ours is
            # noted, whichever of us reads last sees both, so this re-read closes the gap.
            newer = await self._newest(review)
            if newer.version > review.version:
                self.refresh(newer)

    async def _newest(self, review: pb.review.Review) -> pb.review.Review:
        """`review`, or the stored one if that is newer."""
        rec = await self._state().get_review(review.review_id)
        if rec is None or rec.version <= review.version:
            return review
        return pb.review.Review.FromString(rec.review)

    async def _call(self, method: Callable[..., Any], **kwargs: Any) -> Any:
        # The client's own timeout is per HTTP exchange; this bounds retries too.
        async with asyncio.timeout(self.app.timeout_s * 2):
            return await method(**kwargs)


def web_client(app: SlackSettings) -> AsyncWebClient:
    """slack_sdk's async Web API client for the app, pointed at `api_url`."""
    return AsyncWebClient(
        token=app.bot_token.get_secret_value(),
        base_url=str(app.api_url),
        timeout=max(1, round(app.timeout_s)),
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=1),
            AsyncRateLimitErrorRetryHandler(max_retry_count=1),
        ],
    )


def _copy(review: pb.review.Review) -> pb.review.Review:
    # The caller may reuse or change its message after publish() returns.
    out = pb.review.Review()
    out.CopyFrom(review)
    return out


def _why(exc: BaseException) -> str:
    """An error for the log, without the response body (it can echo what we sent)."""
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            return f"{type(exc).__name__}: {response.get('error')}"
        except Exception:
            return type(exc).__name__
    return type(exc).__name__
