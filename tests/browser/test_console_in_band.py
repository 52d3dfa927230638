"""The person an agent acts for settles an `in_band: requester` review in the console:
approve or reject only (editing is the group's), and only on such a rule's reviews."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signoff_client import ReviewState

from ..e2e.conftest import policy_dir  # noqa: F401
from ..e2e.test_reviews_in_band import POLICY  # "small" (< 1000) is in band, "big" is not
from .conftest import PEOPLE, Console, MakeServer, write_tokens

# carl has no reviewer role: the agent acts for him, and only an in-band rule lets him settle.
CARL = {**PEOPLE, "tok-carl": ("carl", [])}
DIRECTORY = {"support-bot": {"kind": "agent", "on_behalf_of": ["carl"]}}


def _as_carl(c: Console, path: str) -> Any:
    context = c.browser.new_context(viewport={"width": 1280, "height": 800})
    c.contexts.append(context)
    page = context.new_page()
    page.on("pageerror", lambda e: c.errors.append(str(e)))
    page.goto(c.url + path)
    page.get_by_label("Access token").fill("tok-carl")
    page.get_by_role("button", name="Sign in").click()
    return page


def _refund(c: Console, amount: float) -> str:
    principal = {"id": "support-bot", "kind": "agent", "on_behalf_of": "carl"}
    decision = c.refund(amount, principal=principal)
    assert decision.review_id
    return decision.review_id


@pytest.fixture
def c(make_server: MakeServer, browser: Any, tmp_path: Path, policy_dir) -> Iterator[Console]:  # noqa: F811
    """A console whose server has POLICY and a support bot vouched to act for carl."""
    console = Console(make_server, browser, write_tokens(tmp_path, CARL, principals=DIRECTORY))
    console.start(policies=policy_dir({"refunds.yaml": POLICY}))
    try:
        yield console
    finally:
        console.close()


def test_the_requester_approves_an_in_band_review_but_may_not_edit_it(c: Console):
    from playwright.sync_api import expect

    review_id = _refund(c, 300)
    page = _as_carl(c, f"/reviews/{review_id}")
    expect(page).to_have_url(re.compile(f"/reviews/{review_id}$"))
    expect(page.get_by_role("button", name="Approve", exact=True)).to_be_enabled()
    expect(page.get_by_role("button", name="Edit params")).to_be_disabled()
    page.keyboard.press("e")  # the shortcut does not open the editor either
    expect(page.get_by_label("Edited params (JSON)")).to_have_count(0)
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Approved")
    with c.client("tok-alice") as alice:
        review = alice.get_review(review_id)
    assert review.state is ReviewState.APPROVED
    [act] = review.acts
    assert act.reviewer == "carl"


def test_the_requester_is_refused_on_a_review_its_rule_keeps_for_the_group(c: Console):
    from playwright.sync_api import expect

    review_id = _refund(c, 5000)
    page = _as_carl(c, f"/reviews/{review_id}")
    # Not an in-band review: the server does not even show it to him.
    expect(page.get_by_role("heading", level=1)).to_have_text("Not yours to review")
    expect(page.get_by_text(f"carl may not see review {review_id}")).to_be_visible()
    expect(page.get_by_role("button", name="Approve", exact=True)).to_have_count(0)
    with c.client("tok-alice") as alice:
        assert alice.get_review(review_id).state is ReviewState.PENDING
