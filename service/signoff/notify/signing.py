"""Webhook signatures: HMAC-SHA256 over `"{timestamp}.{body}"`, sent as `sha256=<hex>`.

How a receiver verifies a delivery (any language; this is the Python version):

1. Read `X-Signoff-Timestamp` (unix seconds) and `X-Signoff-Signature` from the request,
   and the raw request body as bytes, before any JSON parsing (re-encoding changes bytes).
2. Compute `hmac_sha256(secret, timestamp + "." + body)` as lowercase hex and compare it
   with the signature after `sha256=` in constant time.
3. Refuse timestamps further than a few minutes from your clock, so that a captured
   request cannot be replayed later; dedupe on `X-Signoff-Delivery` (the same across
   retries of one delivery) to ignore a retry of a delivery already processed.

`verify_signature(secret, timestamp, body, header, now=time.time())` does 2 and 3.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The `X-Signoff-Signature` header value for a body sent at `timestamp`."""
    # The timestamp is inside the MAC so a receiver can trust it for replay protection.
    message = str(timestamp).encode() + b"." + body
    return PREFIX + hmac.new(_as_bytes(secret), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str | bytes,
    timestamp: str | int,
    body: bytes,
    header: str,
    now: float,
    tolerance_s: float = 300,
) -> bool:
    """True if `header` signs `body` at `timestamp` and `timestamp` is within tolerance of now."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - ts) > tolerance_s or not header.startswith(PREFIX):
        return False
    # Bytes, not str: compare_digest refuses non-ASCII str, and a header is untrusted input.
    return hmac.compare_digest(sign(secret, ts, body).encode(), header.strip().encode())
