"""Network names: whether a host is this machine's loopback, the one check that dev mode, plain
http JWKS URLs and the HTTP port's Host check share."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """True for "localhost" and loopback addresses (IPv6 with or without brackets)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
