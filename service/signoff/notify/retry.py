"""One delivery-retry loop for every notification channel (webhooks, e-mail).

A sender hands `deliver` a callable that tries once and says how it went (delivered, or
failed and whether trying again can help); `deliver` tries up to `max_attempts` times,
waits a full-jitter backoff between tries (at least what the receiver asked for with
Retry-After), and logs each retry and the outcome under the sender's own event names.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from signoff.logs import event as log_event

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    """How one try went, and what the log says about it (status, error...)."""

    ok: bool
    retryable: bool = False
    retry_after: float | None = None  # seconds the receiver asked us to wait, if it did
    # Logged first in every event about this try, in this order: each channel keeps the
    # fields (and field order) its operators and tests already read.
    fields: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Backoff:
    """How long to wait between tries, and how: full jitter from `base`, capped at `cap`."""

    base: float
    cap: float
    rng: random.Random
    sleep: Sleep  # injected, so tests record the delays instead of waiting them out


@dataclass(frozen=True)
class Events:
    """Where and under which names a channel logs its deliveries."""

    log: logging.Logger
    done: str  # delivered: "notify.delivered", "email.sent"
    retry: str
    failed: str


def backoff_delay(
    attempt: int, base: float, cap: float, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds to wait after failed `attempt` (1-based): full jitter, at least Retry-After."""
    # Full jitter (uniform in [0, base * 2^(attempt-1)]) spreads retries of many deliveries
    # that failed together, instead of hitting a recovering endpoint in waves.
    delay = rng.uniform(0, min(cap, base * 2 ** (attempt - 1)))
    if retry_after is not None:
        delay = max(delay, retry_after)
    # Capped even against Retry-After: a receiver must not park our workers for hours.
    return min(delay, cap)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - now)


async def deliver(
    attempt: Callable[[], Awaitable[Outcome]],
    *,
    max_attempts: int,
    backoff: Backoff,
    events: Events,
    fields: Mapping[str, object],
) -> bool:
    """Try `attempt` until it succeeds, fails for good, or `max_attempts` ran out; logged."""
    # Exceptions from `attempt` are not caught: a failure the sender did not classify is a
    # bug, which its worker logs (and survives) on its own.
    log = events.log
    for n in range(1, max_attempts + 1):
        out = await attempt()
        if out.ok:
            log_event(log, events.done, **out.fields, attempts=n, **fields)
            return True
        if not out.retryable or n == max_attempts:
            log_event(
                log,
                events.failed,
                logging.ERROR,
                **out.fields,
                attempts=n,
                retried=out.retryable,
                **fields,
            )
            return False
        delay = backoff_delay(n, backoff.base, backoff.cap, out.retry_after, backoff.rng)
        log_event(
            log,
            events.retry,
            logging.WARNING,
            **out.fields,
            attempt=n,
            delay_s=round(delay, 3),
            **fields,
        )
        await backoff.sleep(delay)
    return False
