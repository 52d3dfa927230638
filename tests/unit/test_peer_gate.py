"""The pre-authentication gate per peer address (issue 19 item 5)."""

from __future__ import annotations

import pytest

from signoff import errors
from signoff.limits.ingress import PeerLimits
from signoff.limits.peers import PeerGate, peer_address


@pytest.mark.parametrize(
    ("grpc_peer", "address"),
    [
        ("ipv4:127.0.0.1:51234", "127.0.0.1"),
        ("ipv6:[::1]:51234", "::1"),
        ("ipv6:%5B2001:db8::1%5D:443", "2001:db8::1"),
        ("unix:/tmp/s.sock", "unix:/tmp/s.sock"),
    ],
)
def test_the_address_of_a_grpc_peer_leaves_out_the_port(grpc_peer, address):
    assert peer_address(grpc_peer) == address


def test_a_peer_over_its_burst_is_refused_with_the_wait():
    now = [0.0]
    gate = PeerGate(PeerLimits(rate=2, burst=3), clock=lambda: now[0])
    for _ in range(3):
        gate.admit("10.0.0.1")
    with pytest.raises(errors.ResourceExhausted) as refused:
        gate.admit("10.0.0.1")
    assert refused.value.retry_after == pytest.approx(0.5)
    gate.admit("10.0.0.2")  # another address has its own bucket
    now[0] += 0.5
    gate.admit("10.0.0.1")


def test_the_peers_tracked_stay_within_max_peers():
    now = [0.0]
    gate = PeerGate(PeerLimits(rate=1, burst=5, max_peers=100), clock=lambda: now[0])
    for i in range(10_000):
        gate.admit(f"2001:db8::{i:x}")
    assert len(gate.buckets) <= 100
