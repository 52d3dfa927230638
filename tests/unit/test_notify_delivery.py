"""Webhook delivery against a real local HTTP receiver: signing, routing, retries, timeouts.

Nothing sleeps to wait for a delivery: tests await the receiver's queue of requests (under
a deadline) or `close()`, which returns once every queued delivery is finished. Backoff goes
through an injected sleep that records the delay and returns at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from signoff.notify import Notifier, NotifySettings, WebhookSettings, verify_signature
from tests.unit.test_notify_payloads import make_review

HANG = "hang"


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        """The body as JSON."""
        return json.loads(self.body)


class Receiver:
    """A tiny HTTP/1.1 server: per path a script of statuses (last one repeats) or HANG."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[int | str | tuple[int, dict[str, str]]]] = {}
        self.requests: asyncio.Queue[Received] = asyncio.Queue()
        self.seen: list[Received] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task] = set()
        self.port = 0

    def url(self, path: str) -> str:
        """The URL of `path` on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        """Listen on a free port."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop any hanging connections."""
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def next(self, within: float = 5) -> Received:
        """The next request received (a deadline, not a wait: it normally returns at once)."""
        async with asyncio.timeout(within):
            return await self.requests.get()

    def on(self, path: str) -> list[Received]:
        """Requests received so far for `path`."""
        return [r for r in self.seen if r.path == path]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            got = Received(path, headers, body)
            self.seen.append(got)
            self.requests.put_nowait(got)
            script = self.scripts.get(path, [200])
            step = script.pop(0) if len(script) > 1 else script[0]
            if step == HANG:
                await asyncio.Event().wait()
            status, extra = step if isinstance(step, tuple) else (step, {})
            lines = [f"HTTP/1.1 {status} X", "Content-Length: 0", "Connection: close"]
            lines += [f"{k}: {v}" for k, v in extra.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            await writer.drain()
        finally:
            writer.close()
            self._handlers.discard(task)


class Sleeps:
    """An injected sleep: records each backoff delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


class Events(logging.Handler):
    """Collects `signoff.notify` log records (independent of how logging is configured)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def named(self, name: str) -> list[logging.LogRecord]:
        """Records of one event."""
        return [r for r in self.records if r.getMessage() == name]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
def events():
    logger = logging.getLogger("signoff.notify")
    handler, level = Events(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def settings(**groups: list[dict]) -> NotifySettings:
    """NotifySettings from group -> webhook dicts ("all" stands for "*")."""
    return NotifySettings.model_validate(
        {"webhooks": {("*" if g == "all" else g): hooks for g, hooks in groups.items()}}
    )


@contextlib.asynccontextmanager
async def running(notify: NotifySettings, **kw) -> AsyncIterator[Notifier]:
    """A started notifier, closed (flushed) on exit."""
    n = Notifier(notify, **kw)
    await n.start()
    try:
        yield n
    finally:
        await n.close()


async def test_delivers_signed_json(receiver, events):
    notify = settings(finance=[{"url": receiver.url("/hook"), "secret": "s3cret"}])
    async with running(notify) as n:
        n.publish("review.opened", make_review())
        got = await receiver.next()
    h = got.headers
    assert h["content-type"] == "application/json"
    assert h["x-signoff-event"] == "review.opened"
    assert abs(int(h["x-signoff-timestamp"]) - time.time()) < 60
    assert verify_signature(
        "s3cret", h["x-signoff-timestamp"], got.body, h["x-signoff-signature"], now=time.time()
    )
    payload = got.json()
    assert payload["event"] == "review.opened"
    assert payload["delivery_id"] == h["x-signoff-delivery"]
    assert payload["review"]["review_id"] == "rev-1"
    assert payload["review"]["params"] == {"amount": 900, "card": "[REDACTED]"}
    delivered = events.named("notify.delivered")
    assert len(delivered) == 1
    assert delivered[0].webhook == "finance[0]@127.0.0.1"
    # Secrets and params never reach the logs.
    for r in events.records:
        assert "s3cret" not in str(vars(r))
        assert "REDACTED" not in str(vars(r))


async def test_unsigned_without_secret(receiver):
    async with running(settings(finance=[{"url": receiver.url("/hook")}])) as n:
        n.publish("review.opened", make_review())
        got = await receiver.next()
    assert "x-signoff-signature" not in got.headers


async def test_slack_format(receiver):
    notify = settings(finance=[{"url": receiver.url("/slack"), "format": "slack"}])
    async with running(notify) as n:
        n.publish("review.opened", make_review())
        got = await receiver.next()
    msg = got.json()
    assert msg["text"] == (
        ":hourglass: Review needed by finance: refund.issue — "
        "Refund above 500 needs a finance reviewer (review rev-1)"
    )
    assert msg["blocks"][0]["text"]["text"] == msg["text"]


async def test_routes_by_group_star_and_event(receiver):
    notify = settings(
        finance=[{"url": receiver.url("/finance")}],
        support=[{"url": receiver.url("/support")}],
        all=[
            {"url": receiver.url("/all")},
            {"url": receiver.url("/resolved-only"), "events": ["review.resolved"]},
        ],
    )
    async with running(notify) as n:
        n.publish("review.opened", make_review())
        n.publish("review.opened", make_review(review_id="rev-2", reviewer_group="legal"))
    # close() flushed everything, so what did not arrive was never sent.
    assert [r.json()["review"]["review_id"] for r in receiver.on("/finance")] == ["rev-1"]
    assert sorted(r.json()["review"]["review_id"] for r in receiver.on("/all")) == [
        "rev-1",
        "rev-2",
    ]
    assert receiver.on("/support") == []
    assert receiver.on("/resolved-only") == []


async def test_same_webhook_under_group_and_star_is_sent_once(receiver):
    hook = {"url": receiver.url("/both")}
    async with running(settings(finance=[hook], all=[hook])) as n:
        n.publish("review.opened", make_review())
    assert len(receiver.on("/both")) == 1


async def test_escalation_reaches_the_group_it_left(receiver):
    notify = settings(
        finance=[{"url": receiver.url("/finance")}], cfo=[{"url": receiver.url("/cfo")}]
    )
    review = make_review(reviewer_group="cfo", escalated_from=["finance"])
    async with running(notify) as n:
        n.publish("review.escalated", review)
        n.publish("review.resolved", review)
    assert [r.json()["event"] for r in receiver.on("/finance")] == ["review.escalated"]
    assert sorted(r.json()["event"] for r in receiver.on("/cfo")) == [
        "review.escalated",
        "review.resolved",
    ]


async def test_one_of_n_approvals_is_not_a_webhook_event(receiver, events):
    async with running(settings(finance=[{"url": receiver.url("/f")}])) as n:
        n.publish("review.changed", make_review())
        n.publish("review.resolved", make_review())
    assert [r.json()["event"] for r in receiver.on("/f")] == ["review.resolved"]
    assert events.named("notify.publish_failed") == []


async def test_500_twice_then_200_is_delivered_once_with_the_same_id(receiver, events):
    receiver.scripts["/flaky"] = [500, 503, 200]
    sleeps = Sleeps()
    async with running(settings(finance=[{"url": receiver.url("/flaky")}]), sleep=sleeps) as n:
        n.publish("review.opened", make_review())
    got = receiver.on("/flaky")
    assert len(got) == 3
    assert len({r.headers["x-signoff-delivery"] for r in got}) == 1
    assert len({r.body for r in got}) == 1  # the same payload, re-signed per attempt
    assert len(sleeps.delays) == 2
    assert 0 <= sleeps.delays[0] <= 0.5
    assert 0 <= sleeps.delays[1] <= 1.0
    assert [r.status for r in events.named("notify.retry")] == [500, 503]
    assert len(events.named("notify.delivered")) == 1


async def test_429_honours_retry_after(receiver):
    receiver.scripts["/busy"] = [(429, {"Retry-After": "7"}), 200]
    sleeps = Sleeps()
    async with running(settings(finance=[{"url": receiver.url("/busy")}]), sleep=sleeps) as n:
        n.publish("review.opened", make_review())
    assert len(receiver.on("/busy")) == 2
    assert sleeps.delays == [7]


@pytest.mark.parametrize("status", [400, 401, 404, 410, 302])
async def test_other_statuses_are_not_retried(receiver, events, status):
    receiver.scripts["/bad"] = [status, 200]
    sleeps = Sleeps()
    async with running(settings(finance=[{"url": receiver.url("/bad")}]), sleep=sleeps) as n:
        n.publish("review.opened", make_review())
    assert len(receiver.on("/bad")) == 1
    assert sleeps.delays == []
    [failed] = events.named("notify.failed")
    assert (failed.status, failed.retried, failed.levelno) == (status, False, logging.ERROR)


async def test_gives_up_after_max_attempts(receiver, events):
    receiver.scripts["/down"] = [500]
    sleeps = Sleeps()
    notify = settings(finance=[{"url": receiver.url("/down"), "max_attempts": 3}])
    async with running(notify, sleep=sleeps) as n:
        n.publish("review.opened", make_review())
    assert len(receiver.on("/down")) == 3
    assert len(sleeps.delays) == 2
    [failed] = events.named("notify.failed")
    assert (failed.status, failed.attempts, failed.retried) == (500, 3, True)


async def test_connection_refused_is_retried_then_given_up(events):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    notify = settings(finance=[{"url": f"http://127.0.0.1:{port}/", "max_attempts": 2}])
    async with running(notify, sleep=sleeps) as n:
        n.publish("review.opened", make_review())
    [failed] = events.named("notify.failed")
    assert failed.error == "ConnectError"
    assert len(sleeps.delays) == 1


async def test_hanging_endpoint_times_out_and_does_not_delay_others(receiver, events):
    receiver.scripts["/hang"] = [HANG]
    notify = settings(
        all=[
            {"url": receiver.url("/hang"), "timeout_s": 0.2, "max_attempts": 2},
            {"url": receiver.url("/fast")},
        ]
    )
    sleeps = Sleeps()
    async with running(notify, sleep=sleeps) as n:
        started = time.monotonic()
        n.publish("review.opened", make_review())
        while (got := await receiver.next()).path != "/fast":
            pass
        # The other webhook got it while the hanging one was still in its first attempt.
        assert events.named("notify.retry") == []
        assert time.monotonic() - started < 0.2
    hung = receiver.on("/hang")
    assert len(hung) == 2  # timed out once, retried, timed out again
    assert hung[0].headers["x-signoff-delivery"] == hung[1].headers["x-signoff-delivery"]
    assert [r.error for r in events.named("notify.retry")] == ["Timeout"]
    [failed] = events.named("notify.failed")
    assert (failed.error, failed.attempts) == ("Timeout", 2)
    assert got.json()["review"]["review_id"] == "rev-1"


async def test_close_gives_up_after_its_timeout_and_counts_what_it_dropped(receiver, events):
    receiver.scripts["/hang"] = [HANG]
    n = Notifier(settings(finance=[{"url": receiver.url("/hang"), "timeout_s": 30}]))
    await n.start()
    for i in range(3):
        n.publish("review.opened", make_review(review_id=f"rev-{i}"))
    await receiver.next()
    started = time.monotonic()
    await n.close(timeout=0.1)
    assert time.monotonic() - started < 2
    [dropped] = events.named("notify.dropped")
    assert dropped.deliveries == 3


async def test_close_flushes_everything_queued(receiver):
    n = Notifier(settings(finance=[{"url": receiver.url("/hook")}]))
    for i in range(5):  # before start(): queued, not lost
        n.publish("review.opened", make_review(review_id=f"early-{i}"))
    await n.start()
    for i in range(20):
        n.publish("review.resolved", make_review(review_id=f"late-{i}"))
    await n.close()
    assert len(receiver.on("/hook")) == 25
    n.publish("review.opened", make_review())  # after close: dropped quietly, no error


async def test_full_queue_drops_with_a_warning_and_never_raises(receiver, events):
    n = Notifier(settings(finance=[{"url": receiver.url("/hook")}]), queue_size=2)
    for i in range(5):  # not started, so nothing drains the queue
        n.publish("review.opened", make_review(review_id=f"rev-{i}"))
    full = events.named("notify.queue_full")
    assert [r.review_id for r in full] == ["rev-2", "rev-3", "rev-4"]
    assert all(r.levelno == logging.WARNING for r in full)
    await n.start()
    await n.close()
    assert [r.json()["review"]["review_id"] for r in receiver.on("/hook")] == ["rev-0", "rev-1"]


async def test_publish_never_raises(receiver, events):
    n = Notifier(settings(finance=[{"url": receiver.url("/hook")}]))
    await n.start()
    n.publish("review.exploded", make_review())  # unknown event
    n.publish("review.opened", None)  # type: ignore[arg-type]  # not a review at all
    n.publish(None, make_review())  # type: ignore[arg-type]
    await n.close()
    assert receiver.on("/hook") == []
    assert len(events.named("notify.publish_failed")) == 3


async def test_publish_never_raises_with_a_broken_url(events):
    # Bypasses validation, as a settings bug or a hand-built object might.
    broken = NotifySettings.model_construct(
        webhooks={
            "finance": [
                WebhookSettings.model_construct(
                    url="http://exa mple.test:99999/x",
                    secret=None,
                    format="json",
                    events=["review.opened"],
                    timeout_s=0.2,
                    max_attempts=2,
                )
            ]
        }
    )
    n = Notifier(broken, sleep=Sleeps())
    await n.start()
    n.publish("review.opened", make_review())
    await n.close()
    assert events.named("notify.failed")


async def test_publish_from_another_thread(receiver):
    async with running(settings(finance=[{"url": receiver.url("/hook")}])) as n:
        thread = threading.Thread(target=n.publish, args=("review.opened", make_review()))
        thread.start()
        thread.join()
        got = await receiver.next()
    assert got.json()["event"] == "review.opened"


async def test_no_webhooks_is_a_no_op():
    n = Notifier(NotifySettings())
    await n.start()
    n.publish("review.opened", make_review())
    await n.close()
