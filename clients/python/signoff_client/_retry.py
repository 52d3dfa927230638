"""When to retry a call and how long to wait: pure, shared by the sync and async clients.

The rules (README, "Retries and idempotency"):

- only UNAVAILABLE and DEADLINE_EXCEEDED are retried. The server promises that
  UNAVAILABLE means nothing was decided or stored, and every Evaluate carries a
  request_id, so a retry that reaches a server which did decide replays that decision;
- a call has one overall deadline. Each attempt gets what is left of it, so an attempt
  that times out on our side has used it all and is not retried; a DEADLINE_EXCEEDED
  the server returned early is retried while time remains;
- the wait before retry n (0-based) is drawn from [d/2, d] with d = min(cap, base * 2**n):
  exponential so a restarting server is not hammered, jittered so that many agents that
  failed together do not come back together, never below d/2 so that a retry is never
  immediate;
- RESOURCE_EXHAUSTED is retried only when the server said how long to wait (RetryInfo: a
  rate limit, all slots busy), after that wait plus up to 10% jitter, and only if the wait
  fits what is left of the deadline; else the caller gets ResourceExhausted with
  `retry_after`, to wait or shed load as it sees fit. Without RetryInfo (a request too
  large) a retry cannot help and none is made.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to retry and the backoff bounds, in seconds."""

    retries: int = 3
    base: float = 0.1
    cap: float = 2.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if not 0 < self.base <= self.cap:
            raise ValueError(f"backoff needs 0 < base <= cap, got {self.base}, {self.cap}")


def backoff(policy: RetryPolicy, retry: int, jitter: float) -> float:
    """Return the wait before retry number `retry` (0-based), for `jitter` in [0, 1]."""
    ceiling = min(policy.cap, policy.base * 2.0**retry)
    return ceiling * (0.5 + 0.5 * jitter)


class Attempts:
    """The retry state of one call: its deadline and how many attempts it has made."""

    def __init__(
        self,
        policy: RetryPolicy,
        timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._rand = rand
        self._start = clock()
        self._deadline = self._start + timeout
        self.made = 0

    def remaining(self) -> float:
        """Return the seconds left until the overall deadline (at least 0)."""
        return max(0.0, self._deadline - self._clock())

    def elapsed(self) -> float:
        """Return the seconds since the call started."""
        return self._clock() - self._start

    def start(self) -> float:
        """Count one attempt and return its timeout: what is left of the deadline."""
        self.made += 1
        return self.remaining()

    def retry_after(self, code: grpc.StatusCode, server_delay: float | None = None) -> float | None:
        """Return how long to wait before retrying after `code` (with the server's RetryInfo
        delay, if it sent one), or None to give up."""
        retry = self.made - 1  # the number of this retry, 0-based
        if retry >= self._policy.retries:
            return None
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and server_delay is not None:
            if server_delay >= self.remaining():
                return None
            jittered = server_delay * (1.0 + 0.1 * self._rand())
            return jittered if jittered < self.remaining() else server_delay
        if code not in RETRYABLE:
            return None
        delay = backoff(self._policy, retry, self._rand())
        # Waiting past the deadline only to fail with DEADLINE_EXCEEDED would hide the
        # real cause; give up now and report the error we have.
        if delay >= self.remaining():
            return None
        return delay


class Reconnects:
    """The reconnect state of a long wait on a stream: bounded by a deadline, not a count.

    A stream that drops is reopened after `backoff()`; the backoff starts over once a
    message arrives (the server was reachable again), so a wait of hours survives any
    number of server restarts. `timeout` None waits without a deadline.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        timeout: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._rand = rand
        self._start = clock()
        self._deadline = None if timeout is None else self._start + timeout
        self._failures = 0

    def remaining(self) -> float | None:
        """Return the seconds left until the deadline (at least 0), None without one."""
        return None if self._deadline is None else max(0.0, self._deadline - self._clock())

    def elapsed(self) -> float:
        """Return the seconds since the wait started."""
        return self._clock() - self._start

    def received(self) -> None:
        """Note that the stream delivered a message: the next drop backs off from the start."""
        self._failures = 0

    def retry_after(
        self, code: grpc.StatusCode | None, server_delay: float | None = None
    ) -> float | None:
        """Return the wait before reopening after `code` (None: a clean end), or None to stop;
        a stream refused with the server's RetryInfo (too many open) waits that long."""
        limited = code == grpc.StatusCode.RESOURCE_EXHAUSTED and server_delay is not None
        if code is not None and code not in RETRYABLE and not limited:
            return None
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            return None
        delay = backoff(self._policy, self._failures, self._rand())
        if limited:
            assert server_delay is not None
            delay = max(delay, server_delay)
        self._failures += 1
        # Sleeping past the deadline would only delay the timeout; stop at it instead.
        return delay if remaining is None else min(delay, remaining)
