"""Review links: signed, short-lived tokens that each speak for one reviewer on one review.

Two kinds, told apart by their prefix and inside the MAC, so one can never pass for the
other:
- a *link* token (`sol1.`) travels in an e-mail; the console trades it, once, for
- a *session* token (`sos1.`), a bearer token whose identity may read and act on that one
  review, at that one version, and nothing else (the API refuses every other call).

A token is `<prefix><payload>.<mac>`: the payload is base64url compact JSON (reviewer,
group, review id, version, expiry, nonce), the MAC is HMAC-SHA256 over prefix and payload
with the deployment's `notify.email.link_secret`. Stateless, so every worker and replica
verifies what any of them issued; single use is the redeemer's job (serving/email_link.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from signoff.auth.identity import REVIEWER_PREFIX, Authenticator, Identity, ReviewScope
from signoff.errors import Unauthenticated

Kind = Literal["link", "session"]
PREFIX: Final[dict[Kind, str]] = {"link": "sol1.", "session": "sos1."}
# Refused before any decoding or MAC: a real token is about 300 characters.
MAX_TOKEN_CHARS: Final = 1024
CHANNEL: Final = "email"  # the channel acts through a session are recorded with


@dataclass(frozen=True)
class ReviewClaim:
    """What a review token vouches for: who may do what to which review, until when."""

    reviewer: str
    group: str
    review_id: str
    version: int
    expires_at: int  # unix seconds
    nonce: str  # tells two links apart (single use is tracked by it)


def new_nonce() -> str:
    """A fresh random nonce for a link."""
    return secrets.token_urlsafe(12)


def _mac(secret: bytes, signed: bytes) -> str:
    digest = hmac.new(secret, signed, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue(secret: bytes, kind: Kind, claim: ReviewClaim) -> str:
    """The token of `kind` for `claim`, signed with `secret`."""
    body = json.dumps(
        {
            "r": claim.reviewer,
            "g": claim.group,
            "id": claim.review_id,
            "v": claim.version,
            "exp": claim.expires_at,
            "n": claim.nonce,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    payload = PREFIX[kind] + base64.urlsafe_b64encode(body).rstrip(b"=").decode()
    return f"{payload}.{_mac(secret, payload.encode())}"


def verify(secret: bytes, kind: Kind, token: str, now: float) -> ReviewClaim:
    """The claim of a token of `kind` signed with `secret` and unexpired at `now`;
    Unauthenticated saying what is wrong (never echoing the token)."""
    what = "e-mail link" if kind == "link" else "review session"
    if len(token) > MAX_TOKEN_CHARS or not token.startswith(PREFIX[kind]):
        raise Unauthenticated(f"not a {what} token")
    payload, _, mac = token.rpartition(".")
    # Bytes, not str: compare_digest refuses non-ASCII str, and the token is the caller's.
    if not hmac.compare_digest(_mac(secret, payload.encode()).encode(), mac.encode()):
        raise Unauthenticated(f"{what} token: bad signature (altered, or from another server)")
    raw = payload.removeprefix(PREFIX[kind])
    try:
        fields = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        claim = ReviewClaim(
            reviewer=str(fields["r"]),
            group=str(fields["g"]),
            review_id=str(fields["id"]),
            version=int(fields["v"]),
            expires_at=int(fields["exp"]),
            nonce=str(fields["n"]),
        )
    except (binascii.Error, ValueError, KeyError, TypeError):
        # Only our own key signs payloads, so this is a bug or a leaked key, not a typo.
        raise Unauthenticated(f"{what} token: unreadable payload") from None
    if now >= claim.expires_at:
        raise Unauthenticated(f"{what} token expired; open the review from the console")
    return claim


def session_identity(claim: ReviewClaim) -> Identity:
    """The identity a session token stands for: the reviewer, in the review's group only,
    scoped to the review at the version the link was sent for."""
    return Identity(
        claim.reviewer,
        frozenset({f"{REVIEWER_PREFIX}{claim.group}"}),
        source=CHANNEL,
        scope=ReviewScope(claim.review_id, claim.version),
    )


class ReviewSessionAuthenticator:
    """Session tokens of e-mail links first (by their prefix), any other token to `inner`."""

    def __init__(self, secret: bytes, inner: Authenticator, now: Callable[[], float]) -> None:
        self._secret = secret
        self._inner = inner
        self._now = now  # unix seconds, from the server's clock (tests move it)
        # mTLS needs the client certificate on every call; keep asking for it if inner does.
        self.uses_certificates = bool(getattr(inner, "uses_certificates", False))

    def authenticate(self, token: str | None, certificate: bytes | None = None) -> Identity:
        """A scoped reviewer for a session token; whatever `inner` says for anything else."""
        if token and token.startswith(PREFIX["session"]):
            return session_identity(verify(self._secret, "session", token, self._now()))
        if self.uses_certificates:
            return self._inner.authenticate(token, certificate)
        return self._inner.authenticate(token)
