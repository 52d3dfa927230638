"""Batch review in the console: tick reviews of one action and rule in the queue, then
approve or reject them in one act (SubmitReviews). Every wait is a bounded expectation."""

from __future__ import annotations

import re
from typing import Any

from signoff_client import ReviewState, Verdict

from .conftest import Console

try:
    from playwright.sync_api import expect
except ImportError:  # conftest skips these tests (or fails them under SIGNOFF_REQUIRE_BROWSER)
    expect = None


def _tick(page: Any, review_id: str) -> None:
    page.locator(f'tr[data-review-id="{review_id}"]').get_by_role("checkbox").check()


def test_approve_selected_acts_on_the_ticked_reviews_in_one_batch(console: Console):
    ids = [console.refund(700 + i).review_id for i in range(3)]
    alice = console.page("tok-alice")
    expect(alice.locator("table.queue tbody tr")).to_have_count(3)
    _tick(alice, ids[0])
    _tick(alice, ids[1])
    expect(alice.get_by_test_id("batch-count")).to_have_text("2 selected")
    expect(alice).to_have_url(re.compile(r"/$"))  # ticking a row does not open it

    alice.get_by_role("button", name="Reject selected").click()
    expect(alice.get_by_text("Say why you reject")).to_be_visible()
    alice.get_by_label("Batch comment").fill("Same ticket T-88, invoices checked.")
    alice.get_by_role("button", name="Approve selected").click()
    expect(alice.get_by_role("alert")).to_contain_text("2 of 2 approved.")
    expect(alice.locator("table.queue tbody tr")).to_have_count(1)
    expect(alice.get_by_test_id("batch-count")).to_have_count(0)
    with console.client("tok-bot") as bot:
        done = [bot.get_review(r) for r in ids]
    assert [r.state for r in done] == [ReviewState.APPROVED] * 2 + [ReviewState.PENDING]
    assert {r.acts[-1].comment for r in done[:2]} == {"Same ticket T-88, invoices checked."}


def test_a_review_resolved_meanwhile_leaves_the_selection(console: Console):
    ids = [console.refund(800 + i).review_id for i in range(2)]
    alice = console.page("tok-alice")
    expect(alice.locator("table.queue tbody tr")).to_have_count(2)
    _tick(alice, ids[0])
    _tick(alice, ids[1])
    expect(alice.get_by_test_id("batch-count")).to_have_text("2 selected")
    console.act(ids[0], Verdict.APPROVE)  # bob, elsewhere; the live queue drops it
    expect(alice.get_by_test_id("batch-count")).to_have_text("1 selected")
    alice.get_by_label("Batch comment").fill("Duplicate of T-1041.")
    alice.get_by_role("button", name="Reject selected").click()
    # The batch took the last review: the queue empties, and the outcome must outlive it.
    expect(alice.get_by_text("Nothing is waiting for you.")).to_be_visible()
    expect(alice.get_by_role("alert")).to_contain_text("1 of 1 rejected.")
    with console.client("tok-bot") as bot:
        assert bot.get_review(ids[0]).acts[-1].reviewer == "bob"
        assert bot.get_review(ids[1]).state is ReviewState.REJECTED
