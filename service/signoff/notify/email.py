"""E-mail per review: publish() enqueues and returns; background workers send and retry.

The same guarantees as the webhooks (notify/webhooks.py): `publish` never waits for the
network and never raises, the queue is bounded, transient failures (no connection, a
timeout, SMTP 4xx) are retried with full-jitter backoff, permanent ones (5xx) are not, and
what is queued when the process dies is lost (the audit log is the durable record).

Sent with the standard library's smtplib in a worker thread rather than aiosmtplib: one
message per reviewer per review is a trickle that two threads carry, and it keeps a
dependency out of the server. Each socket operation is bounded by `timeout_s`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import smtplib
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage

from signoff import pb
from signoff.auth.review_links import ReviewClaim, issue, new_nonce
from signoff.core.reviews import requesters
from signoff.logs import event as log_event
from signoff.notify.config import ALL_GROUPS, CHANGED
from signoff.notify.email_config import EmailRecipient, EmailSettings
from signoff.notify.email_render import message
from signoff.notify.payloads import review_to_dict
from signoff.notify.retry import Backoff, Events, Outcome, Sleep, deliver

log = logging.getLogger("signoff.notify.email")
DELIVERY_EVENTS = Events(log, "email.sent", "email.retry", "email.failed")

# Events that put a review in front of a group that has not seen it yet.
# A review still pending at a new version (one of N approvals) is mailed again to those who
# have not acted: a link is for the version mailed, so theirs stopped working.
MAILED_EVENTS = ("review.opened", "review.escalated", CHANGED)
LINK_PATH = "/email"


@dataclass(frozen=True)
class Mail:
    """One e-mail to one reviewer about one review."""

    review_id: str
    reviewer: str
    message: EmailMessage


def link_for(
    settings: EmailSettings, review: pb.review.Review, who: EmailRecipient, now: float
) -> tuple[str, int]:
    """The console link for `who` on `review` as it is now, and its lifetime in minutes."""
    expires = int(now) + settings.link_ttl_s
    if review.expires_at.seconds:
        expires = min(expires, review.expires_at.seconds)  # never past the review's deadline
    claim = ReviewClaim(
        reviewer=who.reviewer,
        group=review.reviewer_group,
        review_id=review.review_id,
        version=review.version,
        expires_at=expires,
        nonce=new_nonce(),
    )
    token = issue(settings.link_secret.get_secret_value().encode(), "link", claim)
    base = str(settings.console_url).rstrip("/")
    # In the fragment: browsers never send it, so it stays out of server and proxy logs
    # and out of any Referer.
    return f"{base}{LINK_PATH}#{token}", max(1, (expires - int(now)) // 60)


def permanent(exc: Exception) -> bool:
    """Whether an SMTP failure will not go away by trying again (5xx, or no STARTTLS)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code >= 500
    return isinstance(exc, smtplib.SMTPNotSupportedError)


class EmailSender:
    """Mails each review opened (or escalated) to its group's recipients, with a link."""

    def __init__(
        self,
        settings: EmailSettings,
        now: Callable[[], float],
        recipients: Mapping[str, Sequence[EmailRecipient]],
        *,
        sleep: Sleep = asyncio.sleep,
        backoff_base: float = 0.5,
        backoff_max: float = 60,
        queue_size: int = 10_000,
        workers: int = 2,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.recipients = recipients  # reviewer group (or "*") -> who is mailed (routes)
        self._now = now  # unix seconds from the server's clock, which the redeemer also uses
        self._backoff = Backoff(backoff_base, backoff_max, rng or random.Random(), sleep)
        self._queue: asyncio.Queue[Mail] = asyncio.Queue(queue_size)
        self._workers_wanted = max(1, workers)
        self._workers: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._closed = False
        self.sent = 0  # delivered e-mails (tests and metrics read it)

    async def start(self) -> None:
        """Start the sending workers on the running loop."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        for n in range(self._workers_wanted):
            self._workers.append(asyncio.create_task(self._work(), name=f"email:{n}"))

    def publish(self, event: str, review: pb.review.Review) -> None:
        """Queue the e-mails `event` calls for; never blocks, never raises."""
        try:
            if event not in MAILED_EVENTS or self._closed:
                return
            mails = self._mails(review, acted=event == CHANGED)
        except Exception as exc:  # the caller is a decision or a review act: never fail it
            log_event(
                log,
                "email.publish_failed",
                logging.ERROR,
                review_id=getattr(review, "review_id", None),
                error=type(exc).__name__,
            )
            return
        if not mails:
            return
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self._enqueue, mails)  # asyncio queues are not thread-safe
        else:
            self._enqueue(mails)

    def _mails(self, review: pb.review.Review, *, acted: bool = False) -> list[Mail]:
        s, to = self.settings, self.recipients
        who = [*to.get(review.reviewer_group, ()), *to.get(ALL_GROUPS, ())]
        asked = requesters(review.request.principal)
        if acted:  # who already acted on it may not act again: no new link for them
            asked = asked | {a.reviewer for a in review.acts}
        data = review_to_dict(review)
        now = self._now()
        out: list[Mail] = []
        seen: set[tuple[str, str]] = set()
        for r in who:
            # The requester (or whom it acts for) may not approve it: no link for them.
            if (r.address, r.reviewer) in seen or r.reviewer in asked:
                continue
            seen.add((r.address, r.reviewer))
            link, minutes = link_for(s, review, r, now)
            msg = message(data, link, minutes, s.from_address, r.address)
            out.append(Mail(review.review_id, r.reviewer, msg))
        return out

    def _enqueue(self, mails: list[Mail]) -> None:
        for mail in mails:
            try:
                self._queue.put_nowait(mail)
            except asyncio.QueueFull:
                log_event(
                    log,
                    "email.queue_full",
                    logging.WARNING,
                    review_id=mail.review_id,
                    reviewer=mail.reviewer,
                )

    async def close(self, timeout: float = 5) -> None:  # noqa: ASYNC109
        """Stop accepting, send what can be within `timeout`, drop (and log) the rest."""
        self._closed = True
        if self._loop is not None:
            try:
                async with asyncio.timeout(timeout):
                    await self._queue.join()
            except TimeoutError:
                log_event(log, "email.dropped", logging.WARNING, mails=self._queue.qsize())
        for w in self._workers:
            w.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            mail = await self._queue.get()
            try:
                await self._deliver(mail)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug here must not kill the worker for good
                log_event(
                    log,
                    "email.failed",
                    logging.ERROR,
                    review_id=mail.review_id,
                    error=type(exc).__name__,
                )
            finally:
                self._queue.task_done()

    async def _deliver(self, mail: Mail) -> None:
        fields = {"review_id": mail.review_id, "reviewer": mail.reviewer}
        if await deliver(
            lambda: self._attempt(mail.message),
            max_attempts=self.settings.max_attempts,
            backoff=self._backoff,
            events=DELIVERY_EVENTS,
            fields=fields,
        ):
            self.sent += 1

    async def _attempt(self, msg: EmailMessage) -> Outcome:
        """Send once, and say how it went."""
        try:
            await asyncio.to_thread(self._send_once, msg)
        except (OSError, smtplib.SMTPException) as exc:
            return Outcome(
                ok=False, retryable=not permanent(exc), fields={"error": type(exc).__name__}
            )
        return Outcome(ok=True)

    def _send_once(self, msg: EmailMessage) -> None:
        """Connect, secure, log in, send one message (in a worker thread)."""
        s = self.settings
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if s.security == "tls":
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
        with smtp:
            if s.security == "starttls":
                smtp.starttls(context=context)
            if s.username:
                password = s.password.get_secret_value() if s.password else ""
                smtp.login(s.username, password)
            smtp.send_message(msg)
