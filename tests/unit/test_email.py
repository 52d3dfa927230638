"""E-mail approvals' parts: the rendering (escaped), the link tokens, the settings, and the
sender's retries against a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy

import pytest
from aiosmtpd.controller import Controller
from pydantic import ValidationError

from signoff import pb
from signoff.auth.identity import Identity
from signoff.auth.review_links import (
    ReviewClaim,
    ReviewSessionAuthenticator,
    issue,
    session_identity,
    verify,
)
from signoff.errors import Unauthenticated
from signoff.notify.email import EmailSender
from signoff.notify.email_config import EmailRecipient, EmailSettings
from signoff.notify.email_render import MAX_PARAMS_CHARS, message
from signoff.notify.payloads import review_to_dict

from ..e2e.conftest import free_port

SECRET = b"x" * 32
HOSTILE = '<script>alert(1)</script> & "quoted"\r\nBcc: victim@example.com'


def _review(**params: object) -> pb.review.Review:
    r = pb.review.Review(
        review_id="rev-1",
        reviewer_group="finance",
        reason=HOSTILE,
        version=1,
        approvals_required=1,
        state=pb.review.REVIEW_STATE_PENDING,
    )
    r.request.action.name = "refund.issue"
    r.request.principal.id = "support-bot"
    r.request.action.params.update(params or {"note": HOSTILE})
    r.created_at.FromDatetime(dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC))
    r.expires_at.FromDatetime(dt.datetime(2026, 1, 2, 12, tzinfo=dt.UTC))
    return r


TO = {"finance": [EmailRecipient(address="alice@example.com", reviewer="alice")]}


def _settings(port: int = 25, **more: object) -> EmailSettings:
    return EmailSettings(
        host="127.0.0.1",
        port=port,
        security="none",
        from_address="signoff@example.com",
        console_url="https://signoff.example.com",
        link_secret="y" * 32,
        **more,
    )


# --- rendering ---------------------------------------------------------------------------


def test_the_html_part_escapes_everything_the_agent_wrote():
    msg = message(review_to_dict(_review()), "https://x/email#t", 60, "a@b.c", "d@e.f")
    html = msg.get_body(("html",)).get_content()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot;" in html
    text = msg.get_body(("plain",)).get_content()
    assert "<script>alert(1)</script>" in text  # plain text shows it as it is, harmlessly


def test_no_agent_text_reaches_a_header():
    review = _review()
    review.request.action.name = "refund.issue\r\nBcc: victim@example.com"
    msg = message(review_to_dict(review), "https://x/email#t", 60, "a@b.c", "d@e.f")
    raw = msg.as_bytes()
    assert b"\r\nBcc:" not in raw.split(b"\r\n\r\n", 1)[0].replace(b"\n", b"\r\n")
    assert msg["Bcc"] is None
    assert msg["Subject"] == "Review needed (finance): refund.issue Bcc: victim@example.com"


def test_long_params_are_cut_with_a_pointer_to_the_console():
    msg = message(review_to_dict(_review(blob="z" * 10_000)), "l", 60, "a@b.c", "d@e.f")
    text = msg.get_body(("plain",)).get_content()
    assert "(cut; the console shows all of it)" in text
    assert text.count("z") < MAX_PARAMS_CHARS + 100


# --- tokens ------------------------------------------------------------------------------

CLAIM = ReviewClaim("alice", "finance", "rev-1", 3, 2_000_000_000, "n1")


def test_a_token_verifies_as_its_own_kind_only():
    link = issue(SECRET, "link", CLAIM)
    assert verify(SECRET, "link", link, now=1_000_000_000) == CLAIM
    with pytest.raises(Unauthenticated, match="not a review session token"):
        verify(SECRET, "session", link, now=1_000_000_000)
    # The same payload under the other prefix: the MAC covers the prefix.
    swapped = "sos1." + link.removeprefix("sol1.")
    with pytest.raises(Unauthenticated, match="bad signature"):
        verify(SECRET, "session", swapped, now=1_000_000_000)


def test_a_token_expires_and_names_no_secret():
    link = issue(SECRET, "link", CLAIM)
    with pytest.raises(Unauthenticated, match="expired") as err:
        verify(SECRET, "link", link, now=2_000_000_000)
    assert link not in str(err.value)


def test_a_session_identity_reviews_one_group_and_is_scoped():
    who = session_identity(CLAIM)
    assert who.id == "alice"
    assert who.roles == frozenset({"reviewer:finance"})
    assert who.scope is not None
    assert (who.scope.review_id, who.scope.version, who.scope.channel) == ("rev-1", 3, "email")
    assert not who.act_for_others


def test_the_session_authenticator_passes_other_tokens_on():
    class Inner:
        def authenticate(self, token, certificate=None):
            return Identity(f"inner:{token}", frozenset())

    auth = ReviewSessionAuthenticator(SECRET, Inner(), now=lambda: 1_000_000_000)
    assert auth.authenticate("tok-bob").id == "inner:tok-bob"
    session = issue(SECRET, "session", CLAIM)
    assert auth.authenticate(session).scope is not None
    with pytest.raises(Unauthenticated):
        auth.authenticate(issue(b"other" * 8, "session", CLAIM))


# --- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["a@b.c, evil@x.y", "a@b.c\r\nBcc: evil@x.y", "Alice <a@b.c>", "no-at-sign", "a b@c.d"],
)
def test_an_address_is_one_plain_address(address):
    with pytest.raises(ValidationError, match="is not a plain e-mail address"):
        EmailSettings(**_settings().model_dump() | {"from_address": address})


def test_the_link_secret_is_long():
    with pytest.raises(ValidationError, match="link_secret"):
        EmailSettings(**_settings().model_dump() | {"link_secret": "short"})


def test_no_smtp_password_goes_out_in_clear_text():
    plain = _settings().model_dump() | {"username": "u", "password": "p"}
    EmailSettings(**plain)  # to a relay on localhost: fine
    with pytest.raises(ValidationError, match=r"in clear text to smtp\.example\.com"):
        EmailSettings(**plain | {"host": "smtp.example.com"})
    EmailSettings(**plain | {"host": "smtp.example.com", "security": "starttls"})


# --- sending -----------------------------------------------------------------------------


class Flaky:
    """An SMTP handler answering `replies` in turn (then 250), keeping what it accepted."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.accepted: list[email.message.EmailMessage] = []
        self.attempts = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.attempts += 1
        if self.replies:
            return self.replies.pop(0)
        self.accepted.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        return "250 OK"


async def _run(handler: Flaky, max_attempts: int = 4) -> tuple[EmailSender, list[float]]:
    port = free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    try:
        sender = EmailSender(
            _settings(port, max_attempts=max_attempts), lambda: 1_767_268_800, TO, sleep=sleep
        )
        await sender.start()
        sender.publish("review.opened", _review())
        sender.publish("review.resolved", _review())  # not mailed
        await sender.close(timeout=30)
    finally:
        ctl.stop()
    return sender, slept


async def test_a_transient_smtp_refusal_is_retried():
    handler = Flaky("451 4.3.0 try again later", "421 4.7.0 busy")
    sender, slept = await _run(handler)
    assert handler.attempts == 3
    assert len(slept) == 2
    assert sender.sent == 1
    (msg,) = handler.accepted
    assert msg["To"] == "alice@example.com"
    link = msg.get_body(("plain",)).get_content().split("https://signoff.example.com/email#")[1]
    claim = verify(b"y" * 32, "link", link.split()[0], now=1_767_268_800)
    assert (claim.reviewer, claim.review_id, claim.version) == ("alice", "rev-1", 1)
    # An hour after "now", before the review's deadline.
    assert claim.expires_at == 1_767_268_800 + 3600


async def test_a_permanent_smtp_refusal_is_not_retried():
    handler = Flaky("550 5.1.1 no such user")
    sender, slept = await _run(handler)
    assert (handler.attempts, slept, sender.sent) == (1, [], 0)


async def test_an_unreachable_server_is_tried_max_attempts_times():
    sleeps: list[float] = []

    async def sleep(s: float) -> None:
        sleeps.append(s)

    sender = EmailSender(_settings(free_port(), max_attempts=3), lambda: 0, TO, sleep=sleep)
    await sender.start()
    sender.publish("review.opened", _review())
    await sender.close(timeout=30)
    assert (len(sleeps), sender.sent) == (2, 0)


async def test_publish_never_raises_nor_blocks():
    sender = EmailSender(_settings(free_port()), lambda: 0, TO)
    sender.publish("review.opened", "not a review")  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert sender.sent == 0


async def test_an_escalated_review_is_mailed_to_the_group_it_went_to():
    handler = Flaky()
    port = free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    to = {
        "finance": [EmailRecipient(address="alice@example.com", reviewer="alice")],
        "leads": [EmailRecipient(address="lee@example.com", reviewer="lee")],
        "*": [EmailRecipient(address="all@example.com", reviewer="root")],
    }
    try:
        sender = EmailSender(_settings(port), lambda: 1_767_268_800, to)
        await sender.start()
        review = _review()
        review.reviewer_group = "leads"
        review.escalated_from.append("finance")
        review.version = 2
        sender.publish("review.escalated", review)
        await sender.close(timeout=30)
    finally:
        ctl.stop()
    assert sorted(m["To"] for m in handler.accepted) == ["all@example.com", "lee@example.com"]
    for m in handler.accepted:
        token = m.get_body(("plain",)).get_content().split("/email#")[1].split()[0]
        claim = verify(b"y" * 32, "link", token, now=1_767_268_800)
        assert (claim.group, claim.version) == ("leads", 2)


async def test_one_of_two_approvals_mails_a_new_link_to_those_yet_to_act():
    handler = Flaky()
    port = free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    to = {
        "finance": [
            EmailRecipient(address="alice@example.com", reviewer="alice"),
            EmailRecipient(address="bob@example.com", reviewer="bob"),
        ]
    }
    try:
        sender = EmailSender(_settings(port), lambda: 1_767_268_800, to)
        await sender.start()
        review = _review()
        review.approvals_required, review.version = 2, 2
        review.acts.add(reviewer="alice", verdict=pb.review.VERDICT_APPROVE)
        sender.publish("review.changed", review)
        sender.publish("review.resolved", review)  # never mailed
        await sender.close(timeout=30)
    finally:
        ctl.stop()
    [mail] = handler.accepted  # alice approved already: no link for her
    assert mail["To"] == "bob@example.com"
    token = mail.get_body(("plain",)).get_content().split("/email#")[1].split()[0]
    claim = verify(b"y" * 32, "link", token, now=1_767_268_800)
    assert (claim.reviewer, claim.version) == ("bob", 2)
