"""Webhook delivery: publish() enqueues and returns; background workers POST and retry.

Guarantees, in one place:
- `publish` never awaits the network and never raises: a decision or a review act never
  waits for, or fails because of, a webhook.
- Each webhook has its own bounded queue and its own few workers, so an endpoint that
  hangs or fails only delays (and, once its queue is full, drops) its own deliveries.
- Delivery is at least once while the process lives: a delivery is retried on connection
  errors, timeouts, 429 and 5xx with the same `X-Signoff-Delivery` id, so receivers dedupe.
  Queued deliveries are in memory: a crash loses them (the audit log is the durable record).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from signoff import pb
from signoff.logs import event as log_event
from signoff.notify.config import ALL_GROUPS, CHANGED, EVENTS, NotifySettings, WebhookSettings
from signoff.notify.payloads import JsonDict, encode, json_payload, review_to_dict, slack_payload
from signoff.notify.retry import Backoff, Events, Outcome, Sleep, deliver, parse_retry_after
from signoff.notify.signing import sign

log = logging.getLogger("signoff.notify")
DELIVERY_EVENTS = Events(log, "notify.delivered", "notify.retry", "notify.failed")


class Sink(Protocol):
    """Another channel fed by the same events (e-mail): the Notifier's own three verbs."""

    async def start(self) -> None:
        """Start sending on the running loop."""
        ...

    def publish(self, event: str, review: pb.review.Review) -> None:
        """Queue what `event` calls for; never blocks, never raises."""
        ...

    async def close(self, timeout: float = 5) -> None:  # noqa: ASYNC109
        """Send what can be within `timeout`, then stop."""
        ...


@dataclass(frozen=True)
class Delivery:
    """One event for one webhook: the same id across all of its attempts."""

    delivery_id: str
    event: str
    sent_at: str
    review: JsonDict


@dataclass
class _Target:
    """A webhook with its queue and workers. `label` names it in logs without its URL."""

    settings: WebhookSettings
    label: str
    queue: asyncio.Queue[Delivery]
    workers: list[asyncio.Task[None]] = field(default_factory=list)


def outcome(status: int | None, retry_after: float | None, error: str | None) -> Outcome:
    """How one POST went: 2xx is delivered; no response (None), 429 and 5xx are retried."""
    if status is not None and 200 <= status < 300:
        return Outcome(ok=True, fields={"status": status})
    if status is None or status == 429 or status >= 500:
        return Outcome(
            ok=False,
            retryable=True,
            retry_after=retry_after,
            fields={"status": status, "error": error},
        )
    # Anything else (4xx, a redirect) will be answered the same way next time; there is no
    # error to name, only the status.
    return Outcome(ok=False, fields={"status": status})


def _identity(hook: WebhookSettings) -> tuple[object, ...]:
    """Everything that changes what is sent where: equal identities are one target."""
    secret = hook.secret.get_secret_value() if hook.secret else None
    return (
        str(hook.url),
        secret,
        hook.format,
        tuple(hook.events),
        hook.timeout_s,
        hook.max_attempts,
    )


def _label(group: str, index: int, url: str) -> str:
    # Never the full URL: Slack-style webhook URLs carry their secret in the path.
    return f"{group}[{index}]@{urlsplit(url).hostname}"


class Notifier:
    """Sends review events to the webhooks configured for the review's reviewer group."""

    def __init__(
        self,
        settings: NotifySettings,
        *,
        client: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        backoff_base: float = 0.5,
        backoff_max: float = 60,
        queue_size: int = 10_000,
        workers_per_webhook: int = 4,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        """Route events per group; nothing is sent until `start()`."""
        self._client = client
        self._own_client = client is None
        self._backoff = Backoff(backoff_base, backoff_max, rng or random.Random(), sleep)
        self._workers_per_webhook = max(1, workers_per_webhook)
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._closed = False
        # Deliveries accepted and not yet finished (queued or in flight), for close().
        self._pending = 0
        self._targets: list[_Target] = []
        self._sinks: list[Sink] = []
        self._routes: dict[str, list[_Target]] = {}
        # The same webhook listed under several groups (or also under "*") is one target,
        # so a review is announced to it once.
        by_settings: dict[tuple[object, ...], _Target] = {}
        for group, hooks in settings.webhooks_by_group().items():
            for i, hook in enumerate(hooks):
                key = _identity(hook)
                target = by_settings.get(key)
                if target is None:
                    target = _Target(
                        hook, _label(group, i, str(hook.url)), asyncio.Queue(queue_size)
                    )
                    by_settings[key] = target
                    self._targets.append(target)
                self._routes.setdefault(group, []).append(target)

    def attach(self, sink: Sink) -> None:
        """Feed `sink` every event too (call before `start`)."""
        self._sinks.append(sink)

    async def start(self) -> None:
        """Start the delivery workers on the running loop."""
        if self._loop is not None:
            return
        for sink in self._sinks:
            await sink.start()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        if self._client is None and self._targets:
            # Timeouts are enforced per attempt in _attempt; the client's own are a backstop.
            self._client = httpx.AsyncClient(follow_redirects=False)
        for target in self._targets:
            for n in range(self._workers_per_webhook):
                task = asyncio.create_task(self._work(target), name=f"notify:{target.label}:{n}")
                target.workers.append(task)

    def publish(self, event: str, review: pb.review.Review) -> None:
        """Queue `event` about `review` for each matching webhook; never blocks, never raises."""
        for sink in self._sinks:
            sink.publish(event, review)
        if event == CHANGED:  # one of N approvals: for the sinks (e-mail); not a webhook event
            return
        try:
            self._publish(event, review)
        except Exception as exc:  # the caller is a decision or a review act: never fail it
            log_event(
                log,
                "notify.publish_failed",
                logging.ERROR,
                notify_event=event,
                review_id=getattr(review, "review_id", None),
                error=type(exc).__name__,
            )

    def _publish(self, event: str, review: pb.review.Review) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}")
        if self._closed:
            log_event(
                log,
                "notify.closed_drop",
                logging.WARNING,
                notify_event=event,
                review_id=review.review_id,
            )
            return
        targets = self._matching(event, review)
        if not targets:
            return
        # Converted once, here, so the caller may reuse or mutate its message afterwards.
        data = review_to_dict(review)
        sent_at = (
            dt.datetime.fromtimestamp(self._clock(), dt.UTC).isoformat().replace("+00:00", "Z")
        )
        items = [(t, Delivery(str(uuid.uuid4()), event, sent_at, data)) for t in targets]
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            # asyncio queues are not thread-safe; hop onto the loop that owns them.
            loop.call_soon_threadsafe(self._enqueue, items)
        else:
            self._enqueue(items)

    def _matching(self, event: str, review: pb.review.Review) -> list[_Target]:
        groups = [review.reviewer_group, ALL_GROUPS]
        if event == "review.escalated" and review.escalated_from:
            # The group it left hears about it too: the review vanished from its queue.
            groups.append(review.escalated_from[-1])
        seen: dict[int, _Target] = {}
        for group in groups:
            for t in self._routes.get(group, ()):
                if event in t.settings.events:
                    seen.setdefault(id(t), t)
        return list(seen.values())

    def _enqueue(self, items: list[tuple[_Target, Delivery]]) -> None:
        for target, delivery in items:
            try:
                target.queue.put_nowait(delivery)
                self._pending += 1
            except asyncio.QueueFull:
                log_event(
                    log,
                    "notify.queue_full",
                    logging.WARNING,
                    webhook=target.label,
                    notify_event=delivery.event,
                    review_id=delivery.review["review_id"],
                    delivery_id=delivery.delivery_id,
                    queue_size=target.queue.maxsize,
                )

    # A plain `timeout` argument (not asyncio.timeout around the call): it bounds only the
    # flush, after which close() still cancels the workers and releases the client.
    async def close(self, timeout: float = 5) -> None:  # noqa: ASYNC109
        """Stop accepting events, deliver what can be within `timeout`, drop (and log) the rest."""
        self._closed = True
        for sink in self._sinks:
            await sink.close(timeout)
        queues = [t.queue for t in self._targets]
        if self._loop is not None and queues:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*(q.join() for q in queues))
            except TimeoutError:
                pass
        workers = [w for t in self._targets for w in t.workers]
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        # Still queued, plus those in flight when cancelled.
        if self._pending:
            log_event(log, "notify.dropped", logging.WARNING, deliveries=self._pending)
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _work(self, target: _Target) -> None:
        while True:
            delivery = await target.queue.get()
            try:
                await self._deliver(target, delivery)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug here must not kill the worker for good
                log_event(
                    log,
                    "notify.failed",
                    logging.ERROR,
                    webhook=target.label,
                    delivery_id=delivery.delivery_id,
                    error=type(exc).__name__,
                )
            self._pending -= 1
            target.queue.task_done()

    def _render(self, target: _Target, d: Delivery) -> bytes:
        if target.settings.format == "slack":
            return encode(slack_payload(d.event, d.review))
        return encode(json_payload(d.event, d.delivery_id, d.sent_at, d.review))

    async def _deliver(self, target: _Target, d: Delivery) -> None:
        hook = target.settings
        body = self._render(target, d)
        fields = {
            "webhook": target.label,
            "notify_event": d.event,
            "review_id": d.review["review_id"],
            "delivery_id": d.delivery_id,
        }
        await deliver(
            lambda: self._attempt(hook, d, body),
            max_attempts=hook.max_attempts,
            backoff=self._backoff,
            events=DELIVERY_EVENTS,
            fields=fields,
        )

    async def _attempt(self, hook: WebhookSettings, d: Delivery, body: bytes) -> Outcome:
        """POST once, and say how it went."""
        if self._client is None:
            raise RuntimeError("Notifier.start() was not called")
        now = self._clock()
        ts = int(now)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "signoff-webhooks/1",
            "X-Signoff-Event": d.event,
            "X-Signoff-Delivery": d.delivery_id,
            "X-Signoff-Timestamp": str(ts),
        }
        if hook.secret is not None:
            headers["X-Signoff-Signature"] = sign(hook.secret.get_secret_value(), ts, body)
        request = self._client.build_request(
            "POST", str(hook.url), content=body, headers=headers, timeout=hook.timeout_s
        )
        try:
            # httpx's timeout applies per phase (connect, each read...), so an endpoint that
            # trickles bytes could outlast it; this bounds the whole attempt.
            async with asyncio.timeout(hook.timeout_s):
                response = await self._client.send(request, stream=True)
                # The body is never read: only the status matters, and a hostile endpoint
                # could send an endless one.
                await response.aclose()
        except TimeoutError:
            return outcome(None, None, "Timeout")
        except httpx.HTTPError as exc:
            return outcome(None, None, type(exc).__name__)
        retry_after = parse_retry_after(response.headers.get("retry-after"), now)
        return outcome(response.status_code, retry_after, None)
