"""Standing approvals in the console: granting one while approving a review (with the scope
the server proposes, edited), the refusal where a rule forbids it, the server's refusal of a
bad bound next to the form, and revoking from the grants page. What a grant does is checked
through the Python client: the decisions it allows and the reviews it no longer stands in for.
Every wait is a bounded expectation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signoff import pb
from signoff.app.grants.desk import value
from signoff_client import Outcome
from signoff_client._gen import review_pb2_grpc

from .conftest import Console, tokens_file

try:
    from playwright.sync_api import expect
except ImportError:  # conftest skips these tests (or fails them under SIGNOFF_REQUIRE_BROWSER)
    expect = None

R = pb.review
REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"
WIRES = """\
name: wires
actions: ["wire.send"]
rules:
  - name: every-wire
    when: "true"
    decision: review
    reviewers: finance
    grants: false
    reason: Every wire is looked at.
"""
SCOPE = 'refund.issue by principal support-bot where amount <= 750, currency == "EUR"'


@pytest.fixture
def console(make_server: Any, browser: Any, tmp_path: Path) -> Iterator[Console]:
    """The example refunds policy, plus a wire rule that forbids standing approvals."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "refunds.yaml").write_text((REPO_POLICIES / "refunds.yaml").read_text())
    (policies / "wires.yaml").write_text(WIRES)
    c = Console(make_server, browser, tokens_file(tmp_path))
    c.start(policies=policies)
    try:
        yield c
    finally:
        c.close()


def _stub(console: Console) -> review_pb2_grpc.ReviewServiceStub:
    assert console.server is not None
    return review_pb2_grpc.ReviewServiceStub(console.server.channel())


def _grants(console: Console, inactive: bool = False) -> list[R.Grant]:
    req = R.ListGrantsRequest(reviewer_group="finance", include_inactive=inactive)
    md = (("authorization", "Bearer tok-bob"),)
    return list(_stub(console).ListGrants(req, metadata=md).grants)


def _open(console: Console, review_id: str) -> Any:
    page = console.page("tok-alice", f"/reviews/{review_id}")
    expect(page.get_by_role("button", name="Approve", exact=True)).to_be_enabled()
    return page


def test_approve_with_an_edited_grant_then_matching_requests_are_allowed(
    console: Console, screenshot: Any
):
    page = _open(console, console.refund(750).review_id)
    page.get_by_label("Also allow similar actions (standing approval)").check()
    preview = page.get_by_test_id("grant-preview")
    expect(preview).to_have_text(f"Approving also allows: {SCOPE}, for 1 hour, at most 10 times.")
    # The card number is redacted: no bound is proposed on what nobody saw.
    expect(page.get_by_test_id("bound-card_number")).to_have_count(0)
    page.get_by_label("amount value").fill("800")
    page.get_by_label("Grant duration").select_option(label="8 hours")
    page.get_by_label("Max uses").fill("3")
    edited = SCOPE.replace("750", "800")
    expect(preview).to_have_text(f"Approving also allows: {edited}, for 8 hours, at most 3 times.")
    screenshot(page, "grant")
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text(f"Standing approval granted: {edited}")

    (grant,) = _grants(console)
    assert grant.description == edited  # the console's words are the server's
    assert (grant.created_by, grant.max_uses) == ("alice", 3)
    assert grant.expires_at.ToSeconds() - grant.created_at.ToSeconds() == 8 * 3600
    inside = console.refund(780)
    assert inside.outcome is Outcome.AUTO_ALLOW
    assert inside.reason == f"standing approval {grant.grant_id} granted by alice"
    assert not inside.review_id
    outside = console.refund(900)
    assert outside.outcome is Outcome.REQUIRE_REVIEW
    assert _grants(console)[0].uses == 1


def test_a_rule_that_forbids_grants_offers_none_and_says_why(console: Console):
    with console.client("tok-bot") as bot:
        d = bot.evaluate("wire.send", params={"amount": 10}, principal={"id": "support-bot"})
    assert d.outcome is Outcome.REQUIRE_REVIEW
    page = _open(console, d.review_id)
    expect(page.get_by_test_id("grant-refusal")).to_have_text(
        "No standing approval here: rule wires/every-wire forbids standing approvals "
        "(grants: false)."
    )
    expect(page.get_by_label("Also allow similar actions (standing approval)")).to_have_count(0)


def test_a_bad_bound_shows_the_servers_refusal_and_keeps_the_form(console: Console):
    review_id = console.refund(750).review_id
    page = _open(console, review_id)
    page.get_by_label("Comment").fill("Double charge, ticket T-88.")
    page.get_by_label("Also allow similar actions (standing approval)").check()
    page.get_by_label("amount value").fill("100")  # below the approved 750
    page.get_by_label("Max uses").fill("4")
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.get_by_test_id("grant-error")).to_have_text(
        "Signoff refused the standing approval: grant.bounds[0] (amount): amount <= 100 does "
        "not hold for the approved action (amount = 750)"
    )
    # Nothing was recorded, and nothing the reviewer typed is lost.
    with console.client("tok-bob") as bob:
        assert bob.get_review(review_id).acts == ()
    expect(page.get_by_label("amount value")).to_have_value("100")
    expect(page.get_by_label("Max uses")).to_have_value("4")
    expect(page.get_by_label("Comment")).to_have_value("Double charge, ticket T-88.")
    expect(page.get_by_test_id("bound-amount")).to_have_class("bound-refused")

    page.get_by_label("amount value").fill("750")
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Standing approval granted")
    assert [g.max_uses for g in _grants(console)] == [4]


def test_revoke_from_the_grants_page_then_requests_are_reviewed_again(console: Console):
    d = console.refund(750)
    spec = R.GrantSpec(ttl_seconds=3600, max_uses=5)
    spec.bounds.add(path="amount", op="<=", value=value(750))
    req = R.SubmitReviewRequest(
        review_id=d.review_id, verdict=R.VERDICT_APPROVE, expected_version=1, grant=spec
    )
    _stub(console).SubmitReview(req, metadata=(("authorization", "Bearer tok-bob"),))
    assert console.refund(700).outcome is Outcome.AUTO_ALLOW

    page = console.page("tok-alice")
    page.get_by_role("link", name="Standing approvals").click()
    row = page.locator("table.grants tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("refund.issue by principal support-bot where amount <= 750")
    expect(row).to_contain_text("1 / 5")
    expect(row).to_contain_text("bob")
    row.get_by_role("button", name="Revoke").click()
    row.get_by_label("Reason for revoking").fill("refund fraud wave")
    row.get_by_role("button", name="Revoke now").click()
    expect(page.get_by_role("alert")).to_contain_text("Revoked: refund.issue by principal")
    expect(page.get_by_text("No active standing approvals in this group.")).to_be_visible()

    assert console.refund(700).outcome is Outcome.REQUIRE_REVIEW
    (revoked,) = _grants(console, inactive=True)
    assert revoked.revoked_by == "alice"
    page.get_by_label("Include inactive (expired, used up, revoked)").check()
    expect(row).to_contain_text("revoked by alice")
    expect(row.get_by_role("button", name="Revoke")).to_have_count(0)

    # The auditor finds both ends of the grant through the audit page's type filter.
    audit = console.page("tok-ann", "/audit")
    results = audit.locator("table.entries tbody tr")
    expect(results.first).to_be_visible()
    for kind in ("grant.created", "grant.revoked"):
        audit.get_by_role("button", name="Clear").click()
        audit.get_by_label(kind, exact=True).check()
        audit.get_by_role("button", name="Search").click()
        expect(results).to_have_count(1)
        expect(results.first).to_contain_text(kind)


def test_a_grant_must_bound_the_amount_and_a_list_is_bound_as_json(console: Console):
    def params(amount: float, items: list[int]) -> dict[str, Any]:
        return {"amount": amount, "currency": "EUR", "items": items}

    page = _open(console, console.refund(params=params(750, [1, 2])).review_id)
    page.get_by_label("Also allow similar actions (standing approval)").check()
    expect(page.get_by_label("items value")).to_have_value("[1,2]")
    page.get_by_role("button", name="Remove bound amount").click()
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.get_by_test_id("grant-error")).to_contain_text(
        "Signoff refused the standing approval: grant.bounds: param 'amount' is a number "
        "(750) without an upper bound: add e.g. amount <= 750"
    )
    page.get_by_role("button", name="Restore suggested bounds").click()
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Standing approval granted")

    (grant,) = _grants(console)
    assert list(grant.param_paths) == ["amount", "currency", "items"]
    assert console.refund(params=params(700, [1, 2])).outcome is Outcome.AUTO_ALLOW
    assert console.refund(params=params(700, [1, 3])).outcome is Outcome.REQUIRE_REVIEW
    extra = {**params(700, [1, 2]), "iban": "DE89"}
    assert console.refund(params=extra).outcome is Outcome.REQUIRE_REVIEW
