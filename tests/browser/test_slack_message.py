"""The Slack message of a review, as a real server sent it to (a fake of) Slack, drawn in
Chromium from its Block Kit JSON: the pending message and the same message once approved
from its button. With SIGNOFF_SCREENSHOTS=1 the pictures go to docs/screenshots."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from signoff import pb
from signoff_client._gen import decision_pb2_grpc

from ..e2e.conftest import write_tokens
from ..slack_fake import FakeSlack, form, press, sign
from .block_kit import page

pytest.importorskip("slack_sdk")

SECRET = "render-secret"
CARD = "4111111111111111"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def test_the_review_message_renders_and_updates_in_place(
    make_server, browser, screenshot, slack, tmp_path
):
    tokens = write_tokens(
        tmp_path, {"bot": ("support-bot", ["agent"]), "x": ("alice", ["reviewer:finance"])}
    )
    notify = {
        "slack": {
            "bot_token": "xoxb-render",
            "signing_secret": SECRET,
            "console_url": "https://signoff.example.com",
            "users": {"UALICE": "alice"},
            "api_url": slack.url,
        },
        "routes": {"finance": {"slack": {"channels": ["CFINANCE"]}}},
    }
    server = make_server(auth={"tokens_file": tokens}, notify=notify)
    req = pb.common.ActionRequest(justification="Customer charged twice for order 8812.")
    req.action.name = "refund.issue"
    req.action.params.update({"amount": 750, "currency": "EUR", "card_number": CARD})
    decision_pb2_grpc.DecisionServiceStub(server.channel()).Evaluate(
        req, metadata=(("authorization", "Bearer bot"),)
    )
    message = slack.wait("chat.postMessage")[0]
    assert CARD not in json.dumps(message)

    view = browser.new_page(viewport={"width": 700, "height": 620})
    view.set_content(page(message))
    for label in ("Approve", "Reject…", "Open in console"):
        assert view.get_by_role("button", name=label).is_visible()
    assert view.get_by_text("Refund above 500 needs a finance reviewer.").is_visible()
    assert view.get_by_text("[REDACTED]").is_visible()
    assert CARD not in view.content()
    screenshot(view, "slack-review")

    body = form(press(message, "1700000000.000001", "UALICE", "signoff.approve"))
    resp = httpx.post(
        f"{server.http_url}/slack/interactivity", content=body, headers=sign(SECRET, body)
    )
    assert resp.status_code == 200
    update = slack.wait("chat.update")[0]
    view.set_content(page(update))
    assert view.get_by_role("button", name="Approve").count() == 0
    assert view.get_by_text("✓ Approved by alice").is_visible()
    assert view.get_by_text("approved by alice via slack").is_visible()
    screenshot(view, "slack-approved")
    view.close()
