"""Admission by peer address, before any credential is looked at: a token bucket per address,
and the request bodies each address (and the whole HTTP port) may have in flight."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import unquote

from signoff import errors
from signoff.limits.config import RateSettings
from signoff.limits.ingress import HttpLimits, PeerLimits
from signoff.limits.limiter import LOG_EVERY_S, Bucket, _seconds
from signoff.logs import event

log = logging.getLogger("signoff.limits")

NO_ROLES: frozenset[str] = frozenset()
BODY_RETRY_S = 0.5  # bodies in flight end within a request's time; a short wait suffices


def peer_address(grpc_peer: str) -> str:
    """The IP address of a gRPC peer string (`ipv4:1.2.3.4:5`, `ipv6:%5B::1%5D:5`)."""
    kind, _, rest = grpc_peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return grpc_peer  # unix sockets and the like: the whole string names the peer
    host = unquote(rest).rpartition(":")[0]
    return host.strip("[]")


class PeerGate:
    """A token bucket per peer address; `admit` is a dict lookup and some arithmetic."""

    def __init__(self, settings: PeerLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        burst = settings.burst if settings.rate else None
        self.rate = RateSettings(rate=settings.rate, burst=burst)
        self.clock = clock
        self.buckets: dict[str, Bucket] = {}
        self.refused = 0

    def admit(self, peer: str) -> None:
        """Take a token for `peer`, or raise ResourceExhausted with the wait."""
        if self.rate.unlimited:
            return
        now = self.clock()
        bucket = self.buckets.get(peer)
        if bucket is None:
            if len(self.buckets) >= self.settings.max_peers:
                self._sweep(now)
            bucket = self.buckets[peer] = Bucket(self.rate, NO_ROLES, now)
        wait = bucket.take(now)
        if not wait:
            return
        self.refused += 1
        bucket.suppressed += 1
        if now - bucket.logged >= LOG_EVERY_S:
            event(
                log,
                "rpc.peer_rate_limited",
                logging.WARNING,
                peer=peer,
                refused=bucket.suppressed,  # since this peer's previous line
            )
            bucket.logged, bucket.suppressed = now, 0
        raise errors.ResourceExhausted(
            f"rate limit of {bucket.rate:g} calls/s (burst {bucket.capacity:g}) for peer "
            f"address {peer} exceeded (limits.peers); retry in {_seconds(wait)} s",
            retry_after=wait,
        )

    def _sweep(self, now: float) -> None:
        """Forget full buckets; if that is not enough, the oldest half."""
        kept = {k: b for k, b in self.buckets.items() if not b.full(now)}
        if len(kept) >= self.settings.max_peers:
            kept = dict(list(kept.items())[len(kept) // 2 :])
        self.buckets = kept


class BodyTicket:
    """One body being read: the bytes it holds count against its peer and the whole port."""

    __slots__ = ("_bodies", "held", "peer")

    def __init__(self, bodies: Bodies, peer: str) -> None:
        self._bodies = bodies
        self.peer = peer
        self.held = 0

    def grow(self, n: int) -> None:
        """Hold `n` more bytes, or raise ResourceExhausted."""
        self._bodies._hold(self, n)

    def __enter__(self) -> BodyTicket:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bodies._release(self)


class Bodies:
    """Counts request bodies in flight and the bytes they hold, per peer and in total."""

    def __init__(self, settings: HttpLimits) -> None:
        self.settings = settings
        self.count = 0
        self.bytes = 0
        self.peer_count: dict[str, int] = {}
        self.peer_bytes: dict[str, int] = {}
        self.refused = 0

    def open(self, peer: str, announced: int | None) -> BodyTicket:
        """Admit one body from `peer` (its Content-Length if announced), or refuse it unread."""
        s = self.settings
        if s.max_bodies and self.count >= s.max_bodies:
            self._refuse(
                f"the server is reading {self.count} request bodies (limits.http.max_bodies)"
            )
        mine = self.peer_count.get(peer, 0)
        if s.max_bodies_per_peer and mine >= s.max_bodies_per_peer:
            self._refuse(
                f"peer address {peer} has {mine} request bodies in flight "
                "(limits.http.max_bodies_per_peer)"
            )
        self.count += 1
        self.peer_count[peer] = mine + 1
        ticket = BodyTicket(self, peer)
        if announced:
            try:
                ticket.grow(announced)
            except errors.ResourceExhausted:
                self._release(ticket)
                raise
        return ticket

    def _hold(self, ticket: BodyTicket, n: int) -> None:
        s, peer = self.settings, ticket.peer
        if s.max_body_bytes and self.bytes + n > s.max_body_bytes:
            self._refuse(
                f"request bodies in flight hold {self.bytes} bytes (limits.http.max_body_bytes)"
            )
        mine = self.peer_bytes.get(peer, 0)
        if s.max_body_bytes_per_peer and mine + n > s.max_body_bytes_per_peer:
            self._refuse(
                f"peer address {peer} has {mine} bytes of request bodies in flight "
                "(limits.http.max_body_bytes_per_peer)"
            )
        self.bytes += n
        self.peer_bytes[peer] = mine + n
        ticket.held += n

    def _release(self, ticket: BodyTicket) -> None:
        peer = ticket.peer
        self.count -= 1
        self.bytes -= ticket.held
        # Entries of idle peers are dropped, so the dicts hold only peers reading a body now.
        if (left := self.peer_count[peer] - 1) > 0:
            self.peer_count[peer] = left
        else:
            del self.peer_count[peer]
        if (held := self.peer_bytes.get(peer, 0) - ticket.held) > 0:
            self.peer_bytes[peer] = held
        else:
            self.peer_bytes.pop(peer, None)
        ticket.held = 0

    def _refuse(self, why: str) -> None:
        self.refused += 1
        raise errors.ResourceExhausted(
            f"{why}; retry in {BODY_RETRY_S:g} s", retry_after=BODY_RETRY_S
        )
