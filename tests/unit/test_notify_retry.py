"""The one delivery-retry loop (notify/retry.py): what it tries, logs and sleeps, on its own.

The channels' own tests (test_notify_delivery.py, test_email.py) hold it to their contracts
end to end; these pin the log records field by field, in order, which those only sample.
"""

from __future__ import annotations

import logging
import random

import pytest

from signoff.notify.retry import Backoff, Events, Outcome, deliver

LOG = logging.getLogger("signoff.notify.test_retry")
EVENTS = Events(LOG, "t.done", "t.retry", "t.failed")
FIELDS = {"review_id": "rev-1", "who": "alice"}
STANDARD = set(vars(logging.makeLogRecord({})))


class Script:
    """An attempt callable answering `outcomes` in turn."""

    def __init__(self, *outcomes: Outcome) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self) -> Outcome:
        self.calls += 1
        return self.outcomes.pop(0)


async def run(script: Script, max_attempts: int = 3) -> tuple[bool, list[float]]:
    """Deliver through `script` with a sleep that records its delays."""
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    backoff = Backoff(0.5, 60, random.Random(7), sleep)
    ok = await deliver(
        script, max_attempts=max_attempts, backoff=backoff, events=EVENTS, fields=FIELDS
    )
    return ok, slept


def logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, dict[str, object]]]:
    """(event, level, fields in the order logged) of each record."""
    out = []
    for r in caplog.records:
        extra = {k: v for k, v in vars(r).items() if k not in STANDARD and k != "message"}
        out.append((r.getMessage(), r.levelno, extra))
    return out


@pytest.fixture(autouse=True)
def capture(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOG.name)


async def test_retries_then_delivers_logging_each_try(caplog):
    busy = Outcome(ok=False, retryable=True, fields={"status": 503, "error": None})
    script = Script(busy, busy, Outcome(ok=True, fields={"status": 200}))
    ok, slept = await run(script)
    assert (ok, script.calls, len(slept)) == (True, 3, 2)
    assert 0 <= slept[0] <= 0.5
    assert 0 <= slept[1] <= 1.0
    got = logged(caplog)
    assert [(name, level) for name, level, _ in got] == [
        ("t.retry", logging.WARNING),
        ("t.retry", logging.WARNING),
        ("t.done", logging.INFO),
    ]
    assert list(got[0][2].items()) == [
        ("status", 503),
        ("error", None),
        ("attempt", 1),
        ("delay_s", round(slept[0], 3)),
        *FIELDS.items(),
    ]
    assert list(got[2][2].items()) == [("status", 200), ("attempts", 3), *FIELDS.items()]


async def test_a_permanent_failure_is_not_retried(caplog):
    script = Script(Outcome(ok=False, fields={"error": "SMTPDataError"}))
    assert await run(script) == (False, [])
    [(name, level, fields)] = logged(caplog)
    assert (name, level) == ("t.failed", logging.ERROR)
    assert list(fields.items()) == [
        ("error", "SMTPDataError"),
        ("attempts", 1),
        ("retried", False),
        *FIELDS.items(),
    ]


async def test_gives_up_after_max_attempts(caplog):
    down = Outcome(ok=False, retryable=True, fields={"error": "ConnectError"})
    script = Script(down, down)
    ok, slept = await run(script, max_attempts=2)
    assert (ok, script.calls, len(slept)) == (False, 2, 1)
    *_, (name, _, fields) = logged(caplog)
    assert name == "t.failed"
    assert (fields["attempts"], fields["retried"]) == (2, True)


async def test_waits_at_least_what_the_receiver_asked_capped():
    asked = Outcome(ok=False, retryable=True, retry_after=7)
    assert await run(Script(asked, Outcome(ok=True))) == (True, [7])
    forever = Outcome(ok=False, retryable=True, retry_after=3600)
    assert await run(Script(forever, Outcome(ok=True))) == (True, [60])


async def test_an_unclassified_error_is_the_callers_to_log(caplog):
    async def broken() -> Outcome:
        raise RuntimeError("not started")

    async def sleep(s: float) -> None:
        pytest.fail("slept")

    backoff = Backoff(0.5, 60, random.Random(), sleep)
    with pytest.raises(RuntimeError, match="not started"):
        await deliver(broken, max_attempts=3, backoff=backoff, events=EVENTS, fields=FIELDS)
    assert caplog.records == []
