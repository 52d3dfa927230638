"""E-mail links in the console, in Chromium: the link opens the review signed in for it
alone, the reviewer approves (or edits) there, and a used link says so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signoff_client import ReviewState

from ..e2e.conftest import free_port
from ..e2e.email_inbox import Inbox, email_notify, link_of, smtp_inbox  # noqa: F401
from .conftest import VIEWPORT, Console, tokens_file

SECRET = "k" * 40
RECIPIENTS = {"finance": [{"address": "alice@example.com", "reviewer": "alice"}]}


@pytest.fixture
def mailing(make_server, browser, tmp_path: Path, inbox: Inbox) -> Iterator[Console]:
    """The console's server with e-mail on, its links pointing at its own HTTP port."""
    c = Console(make_server, browser, tokens_file(tmp_path))
    port = free_port()
    c.start(
        http_listen=f"127.0.0.1:{port}",
        notify=email_notify(inbox, port, SECRET, RECIPIENTS),
    )
    try:
        yield c
    finally:
        c.close()


def _open(c: Console, link: str) -> Any:
    context = c.browser.new_context(viewport=VIEWPORT)
    c.contexts.append(context)
    page = context.new_page()
    page.on("pageerror", lambda e: c.errors.append(str(e)))
    page.goto(link)
    return page


def test_an_email_link_opens_the_review_and_the_reviewer_approves_there(
    mailing: Console,
    inbox: Inbox,
    screenshot,
):
    from playwright.sync_api import expect

    d = mailing.refund()
    _, msg = inbox.next()
    link, token = link_of(msg)
    mail = _open(mailing, "about:blank")
    mail.set_content(msg.get_body(("html",)).get_content())
    screenshot(mail, "email-review")

    page = _open(mailing, link)
    expect(page.get_by_role("heading", name="Open the review from your e-mail")).to_be_visible()
    expect(page.get_by_text("signs you in as alice for review")).to_be_visible()
    screenshot(page, "email-landing")
    page.get_by_role("button", name="Open the review").click()
    expect(page.get_by_test_id("whoami")).to_contain_text("alice")
    expect(page.get_by_test_id("whoami")).to_contain_text("for this review only")
    expect(page).to_have_url(f"{mailing.url}/reviews/{d.review_id}")
    assert token not in page.url
    expect(page.get_by_role("heading", name="Decision")).to_be_visible()
    # Nothing of the rest of the console: no queue, no precedents, no standing approval.
    expect(page.get_by_role("link", name="Queue")).to_have_count(0)
    expect(page.get_by_text("Next review")).to_have_count(0)
    # Time left on the server's (fake) clock, told by the redeem answer: a day, not overdue.
    expect(page.get_by_text("23h 59m left")).to_be_visible()
    with mailing.client("tok-alice") as alice:
        assert alice.get_review(d.review_id).state == ReviewState.PENDING  # opening decided nothing
    screenshot(page, "email-review-console")

    page.get_by_label("Comment").fill("checked the order, ok")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("alert").filter(has_text="pproved")).to_be_visible()
    with mailing.client("tok-alice") as alice:
        r = alice.get_review(d.review_id)
    assert r.state == ReviewState.APPROVED
    assert [a.reviewer for a in r.acts] == ["alice"]
    assert mailing.server is not None
    entries = mailing.server.call(mailing.server.running.app.store.read_audit())
    acts = [(e.type, e.payload.get("channel")) for e in entries if e.review_id == d.review_id]
    assert acts[-1] == ("review.approved", "email")
    assert r.acts[0].channel == "email"
    # Another reviewer's console says where the act came from, on the review and its story.
    bob = mailing.page("tok-bob", f"/reviews/{d.review_id}")
    expect(bob.get_by_role("list", name="Acts so far")).to_contain_text("(from an e-mail link)")
    ann = mailing.page("tok-ann", f"/audit?story={d.review_id}")  # the auditor
    expect(ann.get_by_test_id("timeline")).to_contain_text("from an e-mail link")

    # Elsewhere in the console, this session sees nothing but a way back to its review.
    page.goto(f"{mailing.url}/audit")
    expect(page.get_by_text("is for one review only")).to_be_visible()


def test_a_used_link_says_so_and_offers_to_sign_in(mailing: Console, inbox: Inbox):
    from playwright.sync_api import expect

    mailing.refund()
    link, _ = link_of(inbox.next()[1])
    # A mail scanner that loads the page, scripts and all, uses nothing up.
    scanner = _open(mailing, link)
    expect(scanner.get_by_role("button", name="Open the review")).to_be_visible()
    first = _open(mailing, link)
    first.get_by_role("button", name="Open the review").click()
    expect(first.get_by_test_id("whoami")).to_contain_text("alice")
    assert "#" not in first.url
    second = _open(mailing, link)
    second.get_by_role("button", name="Open the review").click()
    expect(second.get_by_text("This e-mail link cannot be used")).to_be_visible()
    expect(second.get_by_text("already used")).to_be_visible()
    expect(second.get_by_label("Access token")).to_be_visible()
