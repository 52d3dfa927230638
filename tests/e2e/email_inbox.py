"""A local SMTP server for the e-mail tests (aiosmtpd): what it receives, in a queue."""

from __future__ import annotations

import email
import email.policy
import queue
import re
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from .conftest import free_port

WAIT = 15.0
LINK_RE = re.compile(r"(http://\S+/email#(\S+))")


class Inbox:
    """aiosmtpd's handler: every message received, in a queue the test waits on."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mail: queue.Queue[tuple[list[str], EmailMessage]] = queue.Queue()

    async def handle_DATA(self, server, session, envelope) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.mail.put((list(envelope.rcpt_tos), msg))
        return "250 OK"

    def next(self) -> tuple[list[str], EmailMessage]:
        """The next e-mail received (fails after WAIT seconds without one)."""
        return self.mail.get(timeout=WAIT)

    def for_each(self, n: int) -> dict[str, EmailMessage]:
        """The next `n` e-mails, by recipient."""
        out = {}
        for _ in range(n):
            to, msg = self.next()
            out[to[0]] = msg
        return out


def link_of(msg: EmailMessage) -> tuple[str, str]:
    """(the link, its token) from the plain-text part."""
    text = msg.get_body(("plain",)).get_content()
    m = LINK_RE.search(text)
    assert m, text
    return m.group(1), m.group(2)


def email_settings(inbox: Inbox, console_port: int, secret: str, **more: object) -> dict:
    """notify.email settings sending to `inbox`, links to the console on `console_port`."""
    return {
        "host": "127.0.0.1",
        "port": inbox.port,
        "security": "none",
        "from_address": "signoff@example.com",
        "console_url": f"http://127.0.0.1:{console_port}",
        "link_secret": secret,
        "max_attempts": 2,
    } | more


def email_notify(
    inbox: Inbox, console_port: int, secret: str, recipients: dict | None = None, **more: object
) -> dict:
    """`notify` settings: e-mail on, and `recipients` (group -> [{address, reviewer}]) routed."""
    routes = {group: {"email": {"to": to}} for group, to in (recipients or {}).items()}
    return {"email": email_settings(inbox, console_port, secret, **more), "routes": routes}


@pytest.fixture(name="inbox")
def smtp_inbox() -> Iterator[Inbox]:
    """A local SMTP server on a free port, stopped after the test."""
    box = Inbox(free_port())
    ctl = Controller(box, hostname="127.0.0.1", port=box.port)
    ctl.start()
    try:
        yield box
    finally:
        ctl.stop()
