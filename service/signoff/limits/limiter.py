"""Per-identity token buckets and counters of calls in flight: checked by the Guard before
every handler, on the event loop, so a dict lookup and some arithmetic and no locks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from signoff import errors
from signoff.limits.config import LimitSettings, RateSettings
from signoff.logs import event

log = logging.getLogger("signoff.limits")

# What a caller refused for want of a free slot is told to wait: slots free up as calls end,
# typically within milliseconds, and no one can say which will end first.
BUSY_RETRY_S = 0.1
STREAM_RETRY_S = 1.0
# Buckets are swept (full ones dropped) once there are this many, then at twice the number
# left, so memory follows the identities active within a bucket's refill time.
SWEEP_AT = 1024
LOG_EVERY_S = 1.0  # per identity: a flood must not turn into a flood of log lines


@dataclass(frozen=True, slots=True)
class _Cap:
    """A cap on places in use: its refusal reason, what it counts, its setting, the retry."""

    reason: str
    what: str
    setting: str
    retry_s: float


_CALLS = _Cap("concurrency", "concurrent calls", "limits.max_concurrent", BUSY_RETRY_S)
_STREAMS = _Cap("streams", "open streams", "limits.max_streams", STREAM_RETRY_S)
_CALLS_EACH = _Cap(
    "identity_concurrency",
    "concurrent calls",
    "limits.max_concurrent_per_identity",
    BUSY_RETRY_S,
)
_STREAMS_EACH = _Cap(
    "identity_streams", "open streams", "limits.max_streams_per_identity", STREAM_RETRY_S
)


class Bucket:
    """The tokens one identity has left, and when they were last counted."""

    __slots__ = ("capacity", "logged", "rate", "roles", "suppressed", "tokens", "updated")

    def __init__(self, rate: RateSettings, roles: frozenset[str], now: float) -> None:
        self.rate = rate.rate
        self.capacity = rate.capacity
        self.roles = roles  # those the rate was chosen for; other roles, choose again
        self.tokens = self.capacity
        self.updated = now
        self.logged = -LOG_EVERY_S
        self.suppressed = 0

    def take(self, now: float) -> float:
        """Take one token; return 0, or the seconds until one is available (none taken)."""
        tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        # The epsilon: a client that waited exactly the delay it was given must get through,
        # whatever the rounding of the clock's floats.
        if tokens >= 1.0 - 1e-9:
            self.tokens = max(0.0, tokens - 1.0)
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / self.rate

    def full(self, now: float) -> bool:
        """True when the bucket is as good as a new one, so forgetting it changes nothing."""
        return self.tokens + (now - self.updated) * self.rate >= self.capacity


class Limiter:
    """Admits or refuses calls by the limits; `leave`/`close_stream` after each admitted one."""

    def __init__(
        self, settings: LimitSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.in_flight = 0
        self.streams = 0
        self.refused = 0  # calls refused by any limit since start
        self.expired = 0  # calls refused because their deadline had passed, since start
        # Refusals by reason since start, for the signoff.rpc.refused metric.
        self.refusals = dict.fromkeys(
            (
                "rate",
                "concurrency",
                "streams",
                "identity_concurrency",
                "identity_streams",
                "deadline",
            ),
            0,
        )
        # Places in use by identity id; an identity with none has no entry, so these hold at
        # most one entry per call or stream in flight.
        self.calls_of: dict[str, int] = {}
        self.streams_of: dict[str, int] = {}
        self._calls_each = settings.concurrent_per_identity
        self._streams_each = settings.streams_per_identity
        self._expired_logged = -LOG_EVERY_S
        self._expired_unlogged = 0
        self.buckets: dict[str, Bucket] = {}
        self._sweep_at = SWEEP_AT
        self._rates_on = not (
            settings.rate.unlimited
            and all(r.unlimited for r in (*settings.roles.values(), *settings.identities.values()))
        )

    def check_deadline(self, left: float | None) -> None:
        """Refuse a call whose deadline passed (`left` seconds remain) before it was served."""
        if left is None or left > 0:
            return
        # The caller has already been told DEADLINE_EXCEEDED (it waited while the server was
        # busy): deciding and recording the call now would record a decision nobody gets.
        self.expired += 1
        self.refusals["deadline"] += 1
        self._expired_unlogged += 1
        now = self.clock()
        if now - self._expired_logged >= LOG_EVERY_S:
            event(
                log,
                "rpc.deadline_passed",
                logging.WARNING,
                late_by=round(-left, 3),
                refused=self._expired_unlogged,  # since the previous line
            )
            self._expired_logged, self._expired_unlogged = now, 0
        raise errors.DeadlineExceeded(
            f"the deadline passed {-left:.3f} s before the call was served; nothing was done"
        )

    def enter(self, identity: Any) -> None:
        """Admit a unary call of `identity` (taking a slot), or raise ResourceExhausted."""
        mine = self.calls_of.get(identity.id, 0)
        self._admit(identity, mine, self._calls_each, _CALLS_EACH)
        self._admit(identity, self.in_flight, self.settings.max_concurrent, _CALLS)
        self._rate(identity)
        self.in_flight += 1
        self.calls_of[identity.id] = mine + 1

    def leave(self, identity: Any) -> None:
        """Give back the slot of a unary call of `identity` admitted by `enter`."""
        self.in_flight -= 1
        _give_back(self.calls_of, identity.id)

    def open_stream(self, identity: Any) -> None:
        """Admit a stream of `identity`, or raise ResourceExhausted."""
        mine = self.streams_of.get(identity.id, 0)
        self._admit(identity, mine, self._streams_each, _STREAMS_EACH)
        self._admit(identity, self.streams, self.settings.max_streams, _STREAMS)
        self._rate(identity)
        self.streams += 1
        self.streams_of[identity.id] = mine + 1

    def close_stream(self, identity: Any) -> None:
        """Give back the place of a stream of `identity` admitted by `open_stream`."""
        self.streams -= 1
        _give_back(self.streams_of, identity.id)

    def rate_for(self, identity: Any) -> RateSettings:
        """The rate that applies to `identity`: its own, else its roles' most generous one."""
        own = self.settings.identities.get(identity.id)
        if own is not None:
            return own
        by_role = [r for role, r in self.settings.roles.items() if role in identity.roles]
        if not by_role:
            return self.settings.rate
        if any(r.unlimited for r in by_role):
            return RateSettings()
        return max(by_role, key=lambda r: (r.rate, r.capacity))

    def _admit(self, identity: Any, taken: int, most: int, cap: _Cap) -> None:
        """Refuse the call if `taken` places of `most` (0: no cap) are in use."""
        if not most or taken < most:
            return
        self.refused += 1
        self.refusals[cap.reason] += 1
        # The identity's own cap is checked first and named as such: it is the caller's own
        # doing, and no other identity's calls count against it.
        whose = (
            f"{identity.id} is at its limit of {most} {cap.what} per identity"
            if cap in (_CALLS_EACH, _STREAMS_EACH)
            else f"the server is at its limit of {most} {cap.what}"
        )
        raise errors.ResourceExhausted(
            f"{whose} ({cap.setting}); retry in {cap.retry_s:g} s", retry_after=cap.retry_s
        )

    def _rate(self, identity: Any) -> None:
        """Take a token of `identity`'s bucket, or raise ResourceExhausted."""
        if self._rates_on:
            self._take(identity)

    def _take(self, identity: Any) -> None:
        now = self.clock()
        bucket = self.buckets.get(identity.id)
        # `is` first: a tokens file hands out the same Identity every call; a JWT, equal ones.
        roles = identity.roles
        if bucket is None or (bucket.roles is not roles and bucket.roles != roles):
            if len(self.buckets) >= self._sweep_at:
                self._sweep(now)
            bucket = Bucket(self.rate_for(identity), identity.roles, now)
            self.buckets[identity.id] = bucket
        if not bucket.rate:
            return
        wait = bucket.take(now)
        if not wait:
            return
        self.refused += 1
        self.refusals["rate"] += 1
        bucket.suppressed += 1
        if now - bucket.logged >= LOG_EVERY_S:
            event(
                log,
                "rpc.rate_limited",
                logging.WARNING,
                who=identity.id,
                rate=bucket.rate,
                burst=bucket.capacity,
                refused=bucket.suppressed,  # since this identity's previous line
            )
            bucket.logged, bucket.suppressed = now, 0
        raise errors.ResourceExhausted(
            f"rate limit of {bucket.rate:g} calls/s (burst {bucket.capacity:g}) for "
            f"{identity.id} exceeded; retry in {_seconds(wait)} s",
            retry_after=wait,
        )

    def _sweep(self, now: float) -> None:
        self.buckets = {k: b for k, b in self.buckets.items() if not b.full(now)}
        self._sweep_at = max(SWEEP_AT, 2 * len(self.buckets))


def _give_back(counts: dict[str, int], who: str) -> None:
    left = counts.get(who, 0) - 1
    if left > 0:
        counts[who] = left
    else:
        counts.pop(who, None)


def _seconds(s: float) -> str:
    return f"{s:.3f}".rstrip("0").rstrip(".") if s >= 0.001 else "0.001"
