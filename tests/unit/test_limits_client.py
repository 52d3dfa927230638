"""The client's retry rule for RESOURCE_EXHAUSTED with the server's RetryInfo."""

from __future__ import annotations

import grpc
import pytest

from signoff_client._retry import Attempts, Reconnects, RetryPolicy

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def attempts(timeout: float, jitter: float = 1.0, retries: int = 3) -> tuple[Attempts, Clock]:
    clock = Clock()
    a = Attempts(RetryPolicy(retries=retries), timeout, clock=clock, rand=lambda: jitter)
    a.start()
    return a, clock


def test_waits_the_servers_delay_plus_at_most_a_tenth_when_it_fits():
    a, _ = attempts(2.0, jitter=1.0)
    assert a.retry_after(EXHAUSTED, 0.5) == pytest.approx(0.55)
    a, _ = attempts(2.0, jitter=0.0)
    assert a.retry_after(EXHAUSTED, 0.5) == pytest.approx(0.5)


def test_gives_up_when_the_delay_does_not_fit_the_deadline():
    a, clock = attempts(2.0)
    assert a.retry_after(EXHAUSTED, 2.0) is None
    clock.t = 1.6
    assert a.retry_after(EXHAUSTED, 0.5) is None
    # The jitter never takes a wait that fits past the deadline.
    a, clock = attempts(2.0, jitter=1.0)
    clock.t = 1.0
    assert a.retry_after(EXHAUSTED, 0.95) == pytest.approx(0.95)


def test_without_retry_info_or_retries_left_there_is_no_retry():
    a, _ = attempts(10.0)
    assert a.retry_after(EXHAUSTED, None) is None  # e.g. a request over the size limit
    a, _ = attempts(10.0, retries=0)
    assert a.retry_after(EXHAUSTED, 0.1) is None
    a, _ = attempts(10.0)
    for _ in range(3):
        assert a.retry_after(EXHAUSTED, 0.1) is not None
        a.start()
    assert a.retry_after(EXHAUSTED, 0.1) is None


def test_a_refused_stream_reopens_after_the_servers_delay():
    r = Reconnects(RetryPolicy(), 30.0, clock=Clock(), rand=lambda: 0.0)
    assert r.retry_after(EXHAUSTED, 1.0) == pytest.approx(1.0)
    assert r.retry_after(EXHAUSTED, None) is None
    r = Reconnects(RetryPolicy(), 0.5, clock=Clock(), rand=lambda: 0.0)
    assert r.retry_after(EXHAUSTED, 1.0) == pytest.approx(0.5)  # never past the deadline
