"""The reviewer console in Chromium against a real server: what a reviewer and an auditor do
and see, and what goes wrong (bad token, wrong group, a race, bad JSON, a server restart).

Every wait is one of Playwright's auto-waiting expectations (bounded, never a sleep).
"""

from __future__ import annotations

import re
from typing import Any

from signoff_client import ReviewState, Verdict

from .conftest import CARD, WAIT, Console

try:
    from playwright.sync_api import expect
except ImportError:  # conftest skips these tests (or fails them under SIGNOFF_REQUIRE_BROWSER)
    expect = None


def _row(page: Any, review_id: str) -> Any:
    return page.locator(f'tr[data-review-id="{review_id}"]')


def _precedents(console: Console) -> None:
    """Three earlier refunds under the same rule, decided three ways by bob."""
    approved = console.refund(800)
    console.act(approved.review_id, Verdict.APPROVE)
    console.clock.advance(hours=2)
    edited = console.refund(1200)
    console.act(
        edited.review_id,
        Verdict.MODIFY,
        params={"amount": 1000, "currency": "EUR", "card_number": "[REDACTED]"},
        comment="Cap at 1,000 until the invoice is checked.",
    )
    console.clock.advance(hours=3)
    rejected = console.refund(650)
    console.act(rejected.review_id, Verdict.REJECT, comment="Duplicate of T-1041.")


# --- the reviewer's path --------------------------------------------------------------------


def test_a_review_arrives_live_and_an_edited_approval_reaches_the_agent(
    console: Console, screenshot
):
    _precedents(console)
    # An older review, close to its deadline (the refund rule's timeout is 1 day).
    console.clock.advance(hours=1)
    older = console.refund(980, account="acct_7", justification="Late delivery refund.")
    console.clock.advance(hours=23, minutes=50)

    page = console.page("tok-alice")
    expect(page.get_by_test_id("queue-count")).to_have_text("1 pending")
    expect(_row(page, older.review_id)).to_contain_text("Urgent")

    # The agent asks now and blocks until a person decides.
    agent = console.require(750)
    rows = page.locator("table.queue tbody tr")
    expect(rows).to_have_count(2)  # arrived live: no reload
    expect(page.get_by_test_id("queue-count")).to_have_text("2 pending")
    expect(page.locator(".group-card")).to_contain_text("finance")
    new = rows.nth(1)
    expect(new).to_contain_text("refund.issue")
    expect(new).to_contain_text("support-bot")
    expect(new).to_contain_text("Refund above 500 needs a finance reviewer.")
    expect(new).to_contain_text("23h 59m left")
    screenshot(page, "queue")
    review_id = new.get_attribute("data-review-id")
    assert review_id
    assert not agent.done()

    new.click()
    expect(page).to_have_url(re.compile(f"/reviews/{review_id}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("refund.issue")
    params = page.locator("section", has=page.get_by_role("heading", name="Params"))
    expect(params).to_contain_text("redacted")  # the card number, masked by the policy
    expect(page.get_by_text(CARD)).to_have_count(0)
    expect(page.get_by_text("large-refund")).to_be_visible()
    expect(page.get_by_text("refunds.yaml:")).to_be_visible()
    expect(page.get_by_text("Customer was charged twice")).to_be_visible()
    expect(page.get_by_test_id("precedent-summary")).to_have_text(
        "Last 3: 1 approved · 1 approved with edits · 1 rejected"
    )
    expect(page.get_by_text("Duplicate of T-1041.")).to_be_visible()
    expect(page.get_by_text("amount: 1200 → 1000")).to_be_visible()

    page.get_by_role("button", name="Edit params").click()
    editor = page.get_by_label("Edited params (JSON)")
    expect(editor).to_be_focused()
    editor.fill(editor.input_value().replace('"amount": 750', '"amount": 500'))
    page.get_by_label("Comment").fill("500 now; the rest once the invoice is checked.")
    diff = page.get_by_test_id("params-diff")
    expect(diff).to_contain_text("amount")
    expect(diff.locator("code.before")).to_have_text("750")
    expect(diff.locator("code.after")).to_have_text("500")
    screenshot(page, "review")

    page.get_by_role("button", name="Approve with edits").click()
    expect(page.get_by_role("alert")).to_contain_text("Approved with edits")
    approval = agent.result(timeout=WAIT)
    assert approval.review.state is ReviewState.MODIFIED
    # The reviewer's amount, and the card number the reviewer never saw, restored.
    assert approval.params == {"amount": 500, "currency": "EUR", "card_number": CARD}
    assert approval.review.acts[-1].comment == "500 now; the rest once the invoice is checked."
    page.get_by_role("link", name="Queue").first.click()
    expect(page.get_by_test_id("queue-count")).to_have_text("1 pending")


def test_keyboard_approve_and_the_other_reviewer_sees_it_live(console: Console):
    first = console.refund(980)
    decision = console.refund(750)
    path = f"/reviews/{decision.review_id}"
    bob = console.page("tok-bob", path)
    expect(bob.get_by_role("button", name="Approve", exact=True)).to_be_enabled()

    # j/k move through the queue, Enter opens; on a review, k and n go to its neighbours.
    alice = console.page("tok-alice")
    expect(alice.locator("table.queue tbody tr")).to_have_count(2)
    for key in ("j", "j", "Enter"):
        alice.keyboard.press(key)
    expect(alice).to_have_url(re.compile(f"{path}$"))
    alice.keyboard.press("k")
    expect(alice).to_have_url(re.compile(f"/reviews/{first.review_id}$"))
    expect(alice.get_by_role("heading", level=1)).to_be_focused()
    alice.keyboard.press("n")
    expect(alice).to_have_url(re.compile(f"{path}$"))
    expect(alice.get_by_role("button", name="Approve", exact=True)).to_be_enabled()

    alice.keyboard.press("?")
    help_dialog = alice.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_dialog).to_contain_text("Approve the open review")
    alice.keyboard.press("a")  # the dialog swallows the page's keys
    alice.keyboard.press("Escape")
    expect(help_dialog).to_have_count(0)
    expect(alice.get_by_role("button", name="Approve", exact=True)).to_be_enabled()

    # Typing an "a" in the comment is text, not a shortcut.
    comment = alice.get_by_label("Comment")
    comment.type("a")
    expect(comment).to_have_value("a")
    comment.fill("")
    alice.get_by_role("heading", level=1).click()  # out of the field
    alice.keyboard.press("a")
    expect(alice.get_by_role("alert")).to_contain_text("Approved: the review is approved")
    with console.client("tok-bot") as bot:
        assert bot.get_review(decision.review_id).state is ReviewState.APPROVED

    # Bob's page follows by itself (WatchReview) and no longer offers to act.
    expect(bob.get_by_role("alert")).to_contain_text(
        "alice approved this review while you had it open"
    )
    expect(bob.get_by_role("button", name="Approve", exact=True)).to_have_count(0)


# --- bad input, each on its own -------------------------------------------------------------


def test_a_wrong_token_is_refused_and_stays_on_sign_in(console: Console):
    page = console.page(None)
    page.get_by_label("Access token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Signoff did not accept this token")
    expect(page.get_by_label("Access token")).to_be_visible()
    expect(page.get_by_test_id("whoami")).to_have_count(0)
    assert page.evaluate("sessionStorage.getItem('signoff.token')") is None

    page.get_by_label("Access token").fill("tok-alice")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("whoami")).to_contain_text("alice")
    expect(page.get_by_test_id("whoami")).to_contain_text("reviews for finance")
    page.reload()  # the token lives in this tab's session storage
    expect(page.get_by_test_id("whoami")).to_contain_text("alice")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Access token")).to_be_visible()


def test_a_reviewer_of_another_group_opening_the_link_is_told_why(console: Console):
    decision = console.refund(750)
    page = console.page("tok-dave", f"/reviews/{decision.review_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not yours to review")
    expect(page.get_by_test_id("permission-denied")).to_contain_text("you review for comms")
    # ...and the queue shows only dave's group, which is empty.
    page.get_by_role("link", name="Back to the queue").click()
    expect(page.get_by_test_id("queue-count")).to_have_text("0 pending")

    missing = console.page("tok-alice", "/reviews/no-such-review")
    expect(missing.get_by_role("heading", level=1)).to_have_text("Review not found")


def test_two_reviewers_approve_at_once_and_the_second_is_told_clearly(console: Console):
    decision = console.refund(750)
    path = f"/reviews/{decision.review_id}"
    alice = console.page("tok-alice", path)
    # Bob's live updates are held back (a slow network), so his page still shows the review
    # as pending when he clicks: the server's answer is all he has to go on.
    held: list[Any] = []
    bob_context = console.browser.new_context(viewport={"width": 1280, "height": 800})
    console.contexts.append(bob_context)
    bob_context.route("**/signoff.v1.ReviewService/WatchReview", lambda route: held.append(route))
    bob = bob_context.new_page()
    bob.on("pageerror", lambda e: console.errors.append(str(e)))
    bob.goto(console.url + path)
    bob.get_by_label("Access token").fill("tok-bob")
    bob.get_by_role("button", name="Sign in").click()
    expect(bob.get_by_role("button", name="Approve", exact=True)).to_be_enabled()

    alice.get_by_role("button", name="Approve", exact=True).click()
    expect(alice.get_by_role("alert")).to_contain_text("Approved")
    assert held  # bob's watch was asked for and never answered

    bob.get_by_role("button", name="Approve", exact=True).click()
    alert = bob.get_by_role("alert")
    expect(alert).to_contain_text("Not recorded: someone else got there first")
    expect(alert).to_contain_text("alice approved it")
    expect(bob.get_by_role("button", name="Approve", exact=True)).to_have_count(0)
    with console.client("tok-bot") as bot:
        review = bot.get_review(decision.review_id)
    assert [a.reviewer for a in review.acts] == ["alice"]


def test_invalid_json_in_the_params_editor_is_shown_and_blocks_submit(console: Console):
    decision = console.refund(750)
    page = console.page("tok-alice", f"/reviews/{decision.review_id}")
    expect(page.get_by_role("button", name="Edit params")).to_be_enabled()
    page.keyboard.press("e")
    editor = page.get_by_label("Edited params (JSON)")
    expect(editor).to_be_focused()
    submit = page.get_by_role("button", name="Approve with edits")
    expect(submit).to_be_disabled()  # nothing edited yet

    editor.fill('{\n  "amount": 500,\n  "currency": "EUR",\n}')
    error = page.get_by_test_id("json-error")
    expect(error).to_have_text("Invalid JSON at line 4, column 1: trailing comma before '}'")
    expect(editor).to_have_attribute("aria-invalid", "true")
    expect(submit).to_be_disabled()

    editor.fill('{"amount": 500 "currency": "EUR"}')
    expect(error).to_contain_text("line 1, column 16")
    expect(submit).to_be_disabled()

    editor.fill('["not", "an", "object"]')
    expect(error).to_contain_text("params must be a JSON object")

    editor.fill('{"amount": 500, "currency": "EUR", "card_number": "[REDACTED]"}')
    expect(error).to_have_count(0)
    expect(submit).to_be_enabled()
    editor.press("Escape")  # leaves the editor, nothing sent
    expect(page.get_by_role("button", name="Edit params")).to_be_visible()
    with console.client("tok-bot") as bot:
        assert bot.get_review(decision.review_id).state is ReviewState.PENDING


def test_an_edit_the_policy_denies_is_refused_and_the_editor_stays_open(console: Console):
    decision = console.refund(750)
    page = console.page("tok-alice", f"/reviews/{decision.review_id}")
    page.get_by_role("button", name="Edit params").click()
    editor = page.get_by_label("Edited params (JSON)")
    expect(editor).to_be_focused()
    editor.fill(editor.input_value().replace('"amount": 750', '"amount": 25000'))
    submit = page.get_by_role("button", name="Approve with edits")
    submit.click()
    alert = page.get_by_role("alert")
    # The server's reason, not "this review changed": nobody else acted.
    expect(alert).to_contain_text(
        "Not recorded: edit refused: the policy would deny the edited action "
        "(rule refunds/refund-over-hard-limit (refunds.yaml:"
    )
    with console.client("tok-bot") as bot:
        review = bot.get_review(decision.review_id)
    assert (review.state, review.version, review.acts) == (ReviewState.PENDING, 1, ())
    # Still editing: bring the amount within the policy and approve.
    editor.fill(editor.input_value().replace('"amount": 25000', '"amount": 600'))
    submit.click()
    expect(alert).to_contain_text("Approved with edits")


def test_rejecting_needs_a_comment(console: Console):
    decision = console.refund(750)
    page = console.page("tok-alice", f"/reviews/{decision.review_id}")
    expect(page.get_by_role("button", name="Reject")).to_be_enabled()
    page.keyboard.press("r")
    expect(page.get_by_role("alert")).to_contain_text("Say why you reject")
    expect(page.get_by_label("Comment")).to_be_focused()
    page.get_by_label("Comment").fill("Not our customer.")
    page.get_by_role("button", name="Reject").click()
    expect(page.get_by_role("alert")).to_contain_text("Rejected: the review is rejected")


def test_a_review_that_expires_while_open_says_so_and_offers_nothing(console: Console):
    decision = console.refund(750)
    page = console.page("tok-alice", f"/reviews/{decision.review_id}")
    expect(page.get_by_role("button", name="Approve", exact=True)).to_be_enabled()
    expect(page.locator(".head-deadline")).to_contain_text("23h")

    server = console.server
    assert server is not None
    console.clock.advance(days=1, seconds=1)
    assert server.call(server.running.app.reviews.sweep()) == 1
    expect(page.get_by_role("alert")).to_contain_text("This review expired while you had it open")
    expect(page.get_by_role("button", name="Approve", exact=True)).to_have_count(0)
    page.keyboard.press("a")  # nothing to approve: no request, no error
    expect(page.get_by_role("alert")).to_have_count(1)


# --- the server goes away ---------------------------------------------------------------------


def test_the_console_reconnects_when_the_server_comes_back(console: Console):
    first = console.server
    assert first is not None
    assert first.http_url
    before = console.refund(750)
    page = console.page("tok-alice")
    expect(page.get_by_test_id("queue-count")).to_have_text("1 pending")
    banner = page.get_by_test_id("disconnected")
    expect(banner).to_have_count(0)

    first.call(first.running.stop(0))
    expect(banner).to_have_text(
        "Disconnected from Signoff — reconnecting… What you see may be out of date."
    )

    # A new server on the same ports and the same database.
    console.start(
        db=first.db, listen=first.target, http_listen=first.http_url.removeprefix("http://")
    )
    assert console.url == first.http_url
    expect(banner).to_have_count(0)
    expect(_row(page, before.review_id)).to_be_visible()
    after = console.refund(900)  # and the queue is live again
    expect(_row(page, after.review_id)).to_be_visible()
    expect(page.get_by_test_id("queue-count")).to_have_text("2 pending")


# --- auditors -----------------------------------------------------------------------------------


def test_the_auditor_view_queries_and_shows_one_actions_timeline(console: Console, screenshot):
    _precedents(console)
    decision = console.refund(1500, account="acct_99")
    console.clock.advance(minutes=12)
    console.act(
        decision.review_id,
        Verdict.MODIFY,
        token="tok-alice",
        params={"amount": 900, "currency": "EUR", "card_number": "[REDACTED]"},
        comment="Only the second charge.",
    )
    reviewer = console.page("tok-alice")
    expect(reviewer.get_by_role("link", name="Audit")).to_have_count(0)  # not an auditor

    page = console.page("tok-ann")
    page.get_by_role("link", name="Audit").click()
    expect(page).to_have_url(re.compile("/audit$"))
    results = page.locator("table.entries tbody tr")
    expect(results.first).to_be_visible()

    page.get_by_label("review.modified").check()
    page.get_by_label("Reviewer", exact=True).fill("alice")
    page.get_by_role("button", name="Search").click()
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("review.modified")
    results.first.get_by_role("link", name=re.compile("^Timeline")).click()

    timeline = page.get_by_test_id("timeline")
    steps = timeline.locator(":scope > li .story-head .type")
    expect(steps).to_have_text(["decision", "review.opened", "review.modified"])
    expect(timeline).to_contain_text("refund.issue by support-bot: require review")
    expect(timeline).to_contain_text("Only the second charge.")
    expect(timeline.locator("code.before")).to_have_text("1500")
    expect(timeline.locator("code.after")).to_have_text("900")
    expect(page).to_have_url(re.compile(r"/audit\?story="))
    screenshot(page, "audit")

    # Paging through everything, 10 entries a page.
    page.get_by_role("button", name="Clear").click()
    page.get_by_label("Per page").select_option("10")
    page.get_by_role("button", name="Search").click()
    expect(results).to_have_count(10)
    newer, older = (page.get_by_role("button", name=n) for n in ("← Newer", "Older →"))
    expect(newer).to_be_disabled()
    older.click()
    expect(page.get_by_text("page 2,")).to_be_visible()
    expect(newer).to_be_enabled()
    first_of_page_2 = results.first.locator("td").first.inner_text()
    newer.click()
    expect(page.get_by_text("page 1,")).to_be_visible()
    assert int(results.first.locator("td").first.inner_text()) > int(first_of_page_2)


def test_the_insights_page_shows_each_rules_reviews_and_flags(console: Console):
    reviewer = console.page("tok-alice")
    expect(reviewer.get_by_role("link", name="Insights")).to_have_count(0)  # not an auditor

    page = console.page("tok-ann")
    page.get_by_role("link", name="Insights").click()
    expect(page).to_have_url(re.compile("/insights$"))
    expect(page.get_by_test_id("insights-empty")).to_contain_text("no reviews in the window")

    _precedents(console)  # approved, edited, rejected by bob over five hours
    console.clock.advance(minutes=1)  # the window ends before the server's now
    page.get_by_role("button", name="Show").click()
    row = page.locator("table[data-testid=insights] tbody tr")
    expect(row).to_have_count(1)
    expect(row.first.locator("th")).to_contain_text("refunds/large-refund")
    expect(row.first.locator("th")).to_contain_text("refunds.yaml:")
    expect(row.first.locator("td")).to_have_text(
        # Acted on at once, by bob alone; one rejection against two approvals: 1 of 3.
        ["3", "1", "1", "1", "0", "0", "0", "0s", "0s", "1", "33%"]
    )
    page.get_by_label("Group").fill("comms")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("insights-empty")).to_contain_text("0 reviews opened")
    assert not console.errors


def test_insights_opened_before_the_servers_time_is_known_waits_for_it(console: Console):
    # The server's clock is months from the browser's (FakeClock starts 2026-01-01): a window
    # computed from the browser's "now" would hold none of these reviews.
    _precedents(console)
    console.clock.advance(minutes=1)
    held: list[Any] = []
    context = console.browser.new_context(viewport={"width": 1280, "height": 800})
    console.contexts.append(context)
    context.route("**/signoff.v1.ReviewService/WatchQueue", lambda route: held.append(route))
    page = context.new_page()
    page.on("pageerror", lambda e: console.errors.append(str(e)))
    page.goto(console.url + "/insights")
    page.get_by_label("Access token").fill("tok-ann")
    page.get_by_role("button", name="Sign in").click()
    # The page is loading its window (Show is disabled while it does), and the queue stream
    # that would tell the server's time is held back.
    expect(page.get_by_role("button", name="Show")).to_be_disabled()
    for _ in range(1000):  # each evaluate is a round trip that lets the route handler run
        if held:
            break
        page.evaluate("1")
    assert held, "the queue stream was never asked for"
    row = page.locator("table[data-testid=insights] tbody tr")
    expect(row).to_have_count(0)
    for route in held:
        route.continue_()
    expect(row).to_have_count(1)
    expect(row.first.locator("td").first).to_have_text("3")
    assert not console.errors


def test_a_reviewer_the_agent_only_claims_to_act_for_is_told_why_and_sees_the_claim(
    console: Console,
):
    # Nothing vouches for support-bot acting for alice, so the server keeps it as a claim
    # (principal.claimed.on_behalf_of); it still bars alice, and the page says why.
    decision = console.refund(
        750, principal={"id": "support-bot", "kind": "agent", "on_behalf_of": "alice"}
    )
    page = console.page("tok-alice", f"/reviews/{decision.review_id}")
    expect(page.get_by_text("Separation of duties")).to_be_visible()
    expect(page.get_by_role("button", name="Approve", exact=True)).to_have_count(0)
    expect(page.get_by_test_id("claims")).to_contain_text("on behalf of alice")
    # bob may act; he sees the same claim, labelled as the agent's word.
    other = console.page("tok-bob", f"/reviews/{decision.review_id}")
    expect(other.get_by_role("button", name="Approve", exact=True)).to_be_enabled()
    expect(other.get_by_test_id("claims")).to_contain_text("not vouched for")
