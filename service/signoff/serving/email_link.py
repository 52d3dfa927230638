"""`POST /email/redeem`: an e-mail link's token, once, for a session on that one review.

The link itself (`/email#<token>`) is a plain GET of the console, which acts on nothing:
mail scanners that follow links see a page. When the reviewer presses "Open the review",
the console posts the token here; this
checks it (signature, expiry, single use, the review still pending at the version mailed)
and answers a session token scoped to that review (auth/review_links.py, api/scope.py).

Single use is kept in the store (store/notify_state.py), so it holds across `serve
--workers`, replicas and restarts: of two redeems of one link, wherever they arrive, exactly
one gets a session. A link is used up by its first redeem that passes the signature and
expiry, even when the review then turns out settled or changed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable
from typing import Final, TypeVar

from aiohttp import web

from signoff import errors, pb
from signoff.app.reviews.desk import ReviewDesk
from signoff.auth.identity import Authenticator
from signoff.auth.review_links import (
    ReviewClaim,
    ReviewSessionAuthenticator,
    issue,
    new_nonce,
    session_identity,
    verify,
)
from signoff.logs import event
from signoff.notify import Notifier
from signoff.notify.email import EmailSender
from signoff.notify.email_config import EmailSettings
from signoff.settings.model import ConfigError, Settings
from signoff.store.notify_state import MAX_KEY_CHARS, NotifyState

log = logging.getLogger("signoff.email")
A = TypeVar("A", bound=Authenticator)

PATH: Final = "/email/redeem"
MAX_BODY: Final = 4096
NONCE_KIND: Final = "email.link"
LAST_EXPIRY: Final = int(dt.datetime(9999, 1, 1, tzinfo=dt.UTC).timestamp())
STATUS: Final[dict[type[errors.SignoffError], int]] = {
    errors.InvalidArgument: 400,
    errors.Unauthenticated: 401,
    errors.PermissionDenied: 403,
    errors.NotFound: 404,
    errors.FailedPrecondition: 409,
    errors.ResourceExhausted: 429,
    errors.Unavailable: 503,
}


class EmailLinks:
    """Redeems link tokens: checks them against the review, marks them used in the store."""

    def __init__(
        self,
        settings: EmailSettings,
        desk: ReviewDesk,
        now: Callable[[], float],
        used: NotifyState,
    ) -> None:
        self._secret = settings.link_secret.get_secret_value().encode()
        self._session_ttl = settings.session_ttl_s
        self._desk = desk
        self._now = now
        self._used = used  # the store: which link nonces were redeemed, until they expire

    async def handle(self, request: web.Request) -> web.Response:
        """POST PATH (HttpServer.posts, which took the address's rate token): JSON in, JSON
        out, errors as {"error": message}."""
        try:
            token = await _token_of(request)
            body = await self.redeem(token)
        except errors.SignoffError as exc:
            status = STATUS.get(type(exc), 500)
            event(log, "email.redeem_refused", logging.WARNING, status=status, error=exc.message)
            wait = getattr(exc, "retry_after", None)
            headers = {"Retry-After": str(max(1, math.ceil(wait)))} if wait else {}
            return _json({"error": exc.message}, status, headers)
        return _json(body, 200)

    async def redeem(self, token: str) -> dict[str, str]:
        """The session for a valid, unused link to a review still as mailed."""
        now = self._now()
        claim = verify(self._secret, "link", token, now)
        await self._use(claim, now)  # first: of two racing redeems, one passes
        who = session_identity(claim)
        review = await self._desk.get(who, claim.review_id)
        if review.state != pb.review.REVIEW_STATE_PENDING:
            state = pb.review.ReviewState.Name(review.state).removeprefix("REVIEW_STATE_")
            raise errors.FailedPrecondition(
                f"review {claim.review_id} is already settled ({state.lower()})"
            )
        if review.version != claim.version or review.reviewer_group != claim.group:
            raise errors.FailedPrecondition(
                f"review {claim.review_id} changed since the e-mail was sent (version "
                f"{claim.version}, now {review.version}); open it from the console"
            )
        expires = int(now) + self._session_ttl
        if review.expires_at.seconds:
            expires = min(expires, review.expires_at.seconds)
        session = ReviewClaim(
            claim.reviewer, claim.group, claim.review_id, claim.version, expires, new_nonce()
        )
        event(log, "email.link_redeemed", review_id=claim.review_id, reviewer=claim.reviewer)
        return {
            "session": issue(self._secret, "session", session),
            "review_id": claim.review_id,
            "reviewer": claim.reviewer,
            "expires_at": dt.datetime.fromtimestamp(expires, dt.UTC).isoformat(),
            # The console shows time left on the server's clock; it has no queue to learn it from.
            "server_time": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(),
        }

    async def _use(self, claim: ReviewClaim, now: float) -> None:
        """Mark the link used, in the store; Unauthenticated if it was used before."""
        if not 0 < len(claim.nonce) <= MAX_KEY_CHARS:  # ours are 16; only our key signs
            raise errors.Unauthenticated("e-mail link token: unreadable payload")
        # Kept until the link is dead; a link signed to outlive the calendar, until its end.
        until = dt.datetime.fromtimestamp(min(claim.expires_at, LAST_EXPIRY), dt.UTC)
        first = await self._used.use_nonces(
            [(NONCE_KIND, claim.nonce)], until, dt.datetime.fromtimestamp(now, dt.UTC)
        )
        if not first:
            raise errors.Unauthenticated(
                "this e-mail link was already used; open the review from the console"
            )


async def _token_of(request: web.Request) -> str:
    """The `token` of a small JSON body; InvalidArgument for anything else."""
    if request.content_type != "application/json":
        # Also makes a cross-site form post impossible without a CORS preflight.
        raise errors.InvalidArgument("body", "must be application/json")
    if (request.content_length or 0) > MAX_BODY:
        raise errors.InvalidArgument("body", f"exceeds {MAX_BODY} bytes")
    data = await request.content.read(MAX_BODY + 1)
    if len(data) > MAX_BODY:
        raise errors.InvalidArgument("body", f"exceeds {MAX_BODY} bytes")
    try:
        token = json.loads(data)["token"]
    except (ValueError, KeyError, TypeError):
        raise errors.InvalidArgument("body", 'must be {"token": "<the link token>"}') from None
    if not isinstance(token, str):
        raise errors.InvalidArgument("token", "must be a string")
    return token


def _json(body: object, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def wire(
    settings: Settings, desk: ReviewDesk, notifier: Notifier, authenticator: A
) -> tuple[A | ReviewSessionAuthenticator, EmailLinks | None]:
    """With e-mail configured: the mailer fed by `notifier`, the authenticator that also takes
    review sessions, and the redeem endpoint; without, the authenticator as it was."""
    email = settings.notify.email
    if email is None:
        return authenticator, None
    if not settings.http_listen:
        # The links open the console, which only the HTTP port serves.
        raise ConfigError("notify.email: the links need the console; set http_listen")

    def now() -> float:
        # The server's clock (tests move it): links expire on the time reviews run on.
        return desk.clock.now().timestamp()

    notifier.attach(EmailSender(email, now, settings.notify.email_recipients()))
    secret = email.link_secret.get_secret_value().encode()
    links = EmailLinks(email, desk, now, desk.store)
    return ReviewSessionAuthenticator(secret, authenticator, now), links
