"""Slack interactive approvals through a real server: a message per review, acts from its
buttons and modal, the message updated in place however the review was settled, and every
bad input refused with its reason. Slack is a local fake (tests/slack_fake.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from signoff import pb
from signoff_client._gen import decision_pb2_grpc, review_pb2_grpc

from ..slack_fake import FakeSlack, form, press, sign, submit_view
from .conftest import FakeClock, write_tokens

pytest.importorskip("slack_sdk")

R = pb.review
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T0SIGNOFF"
POLICY = """
name: payouts
actions: ["payout.*"]
rules:
  - name: odd-payout
    when: double(action.params.amount) == 7.0
    decision: review
    reviewers: finance
    timeout: 1h
    on_timeout: escalate:finance-leads
    reason: An odd payout; the leads decide if finance does not.
  - name: big-payout
    when: double(action.params.amount) > 1000
    decision: review
    reviewers: finance
    approvals: 2
    timeout: 1h
    reason: Payout above 1,000 needs two finance reviewers.
  - name: payout
    when: "true"
    decision: review
    reviewers: finance
    timeout: 1h
    reason: Every payout needs a finance reviewer.
redact: ["action.params.iban"]
"""
IBAN = "DE89370400440532013000"
# Slack user -> what the deployment says about it (tests/slack_fake users).
PEOPLE = {
    "bot": ("bot", ["agent"]),
    "alice": ("alice", ["reviewer:finance"]),
    "bob": ("bob", ["reviewer:finance"]),
    "carol": ("carol", ["reviewer:ops"]),
    "dave": ("dave", ["agent", "reviewer:finance"]),
    "audra": ("audra", ["auditor"]),
}
USERS = {"UALICE": "alice", "UBOB": "bob", "UCAROL": "carol", "UDAVE": "dave"}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(emails={"UERIN": "Erin@Example.com", "UNOBODY": "x@example.com"}) as fake:
        yield fake


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(make_server, policy_dir, tmp_path, slack, clock):
    tokens = write_tokens(
        tmp_path,
        {**PEOPLE, "erin": ("erin", ["reviewer:finance"])},
        principals={"erin": {"kind": "user", "attributes": {"email": "erin@example.com"}}},
    )
    notify = {
        "slack": {
            "bot_token": "xoxb-test",
            "signing_secret": SECRET,
            "console_url": "https://signoff.example.com/",
            "team_id": TEAM,
            "users": USERS,
            "match_email": True,
            "api_url": slack.url,
            "max_body_bytes": 16 * 1024,
        },
        "routes": {
            "finance": {"slack": {"channels": ["CFINANCE"]}},
            "finance-leads": {"slack": {"channels": ["CLEADS"]}},
        },
    }
    return make_server(
        policy_dir({"payouts.yaml": POLICY}),
        clock=clock,
        auth={"tokens_file": tokens},
        notify=notify,
        sweep_interval=3600,
    )


def _evaluate(server, amount: float = 500, who: str = "bot") -> pb.common.Decision:
    req = pb.common.ActionRequest()
    req.action.name = "payout.send"
    req.action.params.update({"amount": amount, "iban": IBAN})
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    return stub.Evaluate(req, metadata=(("authorization", f"Bearer {who}"),))


def _get(server, review_id: str) -> pb.review.Review:
    stub = review_pb2_grpc.ReviewServiceStub(server.channel())
    req = R.GetReviewRequest(review_id=review_id)
    return stub.GetReview(req, metadata=(("authorization", "Bearer audra"),))


def _post(server, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.http_url}/slack/interactivity", content=body, headers=headers)


def _act(server, payload: dict) -> httpx.Response:
    body = form(payload)
    return _post(server, body, sign(SECRET, body))


def _posted(slack: FakeSlack, n: int = 1) -> tuple[dict, str]:
    message = slack.wait("chat.postMessage", n)[n - 1]
    return message, f"1700000000.{n:06d}"


def _text(message: dict) -> str:
    return json.dumps(message["blocks"])


def test_a_review_is_posted_with_the_shown_params_and_buttons(server, slack):
    d = _evaluate(server)
    message, _ = _posted(slack)
    assert message["channel"] == "CFINANCE"
    text = _text(message)
    assert "payout.send" in text
    assert "Every payout needs a finance reviewer." in text
    assert "<!date^" in text  # the deadline, in each reader's time zone
    assert IBAN not in text  # redaction applies: chat sees the shown request
    assert "Redacted: `action.params.iban`" in text
    ids = [e["action_id"] for b in message["blocks"] for e in b.get("elements", ())]
    assert ids[-3:] == ["signoff.approve", "signoff.reject", "signoff.open"]
    assert f"https://signoff.example.com/reviews/{d.review_id}" in text
    headers = next(h for m, _, h in slack.calls if m == "chat.postMessage")
    assert headers["Authorization"] == "Bearer xoxb-test"


def test_approve_from_slack_goes_through_submit_and_updates_the_message(server, slack):
    d = _evaluate(server)
    message, ts = _posted(slack)
    assert _act(server, press(message, ts, "UALICE", "signoff.approve")).status_code == 200
    r = _get(server, d.review_id)
    assert r.state == R.REVIEW_STATE_APPROVED
    assert (r.acts[0].reviewer, r.acts[0].channel) == ("alice", "slack")
    update = slack.wait("chat.update")[0]
    assert (update["channel"], update["ts"]) == ("CFINANCE", ts)
    assert "Approved* by *alice*" in _text(update)
    assert "via slack" in _text(update)
    assert "signoff.approve" not in _text(update)  # no buttons once settled


def test_open_in_console_is_a_link_and_does_nothing_else(server, slack):
    d = _evaluate(server)
    message, ts = _posted(slack)
    assert _act(server, press(message, ts, "UMALLORY", "signoff.open")).status_code == 200
    assert _get(server, d.review_id).state == R.REVIEW_STATE_PENDING
    assert slack.of("chat.postEphemeral") == []
    assert slack.of("views.open") == []


def test_the_audit_entry_records_the_slack_channel(server, slack):
    d = _evaluate(server)
    message, ts = _posted(slack)
    _act(server, press(message, ts, "UALICE", "signoff.approve"))
    entries = server.call(server.running.app.store.read_audit(1, 100))
    approved = [e for e in entries if e.type == "review.approved"]
    assert [(e.review_id, e.actor) for e in approved] == [(d.review_id, "alice")]
    assert approved[0].payload["act"]["channel"] == "slack"
    assert approved[0].payload["channel"] == "slack"


def test_reject_opens_a_modal_and_its_comment_is_recorded(server, slack):
    d = _evaluate(server)
    message, ts = _posted(slack)
    assert _act(server, press(message, ts, "UALICE", "signoff.reject")).status_code == 200
    view = slack.wait("views.open")[0]["view"]
    assert view["blocks"][-1]["type"] == "input"
    assert "Reject *payout.send*?" in json.dumps(view["blocks"][0])
    resp = _act(server, submit_view(view, "UALICE", "wrong account"))
    assert resp.status_code == 200
    assert resp.content == b""
    r = _get(server, d.review_id)
    assert r.state == R.REVIEW_STATE_REJECTED
    assert (r.acts[0].comment, r.acts[0].channel) == ("wrong account", "slack")
    update = slack.wait("chat.update")[0]
    assert "Rejected* by *alice*" in _text(update)
    assert "wrong account" in _text(update)


def test_one_of_two_approvals_updates_the_buttons_to_the_new_version(server, slack):
    d = _evaluate(server, amount=5000)
    message, ts = _posted(slack)
    _act(server, press(message, ts, "UALICE", "signoff.approve"))
    update = slack.wait("chat.update")[0]
    assert "1 of 2" in _text(update)
    assert _get(server, d.review_id).state == R.REVIEW_STATE_PENDING
    # Bob presses the updated message's button: the second, settling approval.
    _act(server, press({**update, "text": message["text"]}, ts, "UBOB", "signoff.approve", n=1))
    assert _get(server, d.review_id).state == R.REVIEW_STATE_APPROVED
    assert "Approved* by *alice*, *bob*" in _text(slack.wait("chat.update", 2)[1])


def test_settled_in_the_console_or_cli_updates_the_message(server, slack):
    d = _evaluate(server)
    _, ts = _posted(slack)
    approve = R.SubmitReviewRequest(
        review_id=d.review_id, verdict=R.VERDICT_APPROVE, expected_version=1
    )
    review_pb2_grpc.ReviewServiceStub(server.channel()).SubmitReview(
        approve, metadata=(("authorization", "Bearer bob"),)
    )
    update = slack.wait("chat.update")[0]
    assert update["ts"] == ts
    assert "Approved* by *bob*" in _text(update)
    assert "via" not in _text(update)  # the API act has no channel


def test_one_of_two_approvals_in_the_console_updates_the_buttons_too(server, slack):
    d = _evaluate(server, amount=5000)
    message, ts = _posted(slack)
    approve = R.SubmitReviewRequest(
        review_id=d.review_id, verdict=R.VERDICT_APPROVE, expected_version=1
    )
    review_pb2_grpc.ReviewServiceStub(server.channel()).SubmitReview(
        approve, metadata=(("authorization", "Bearer alice"),)
    )
    update = slack.wait("chat.update")[0]
    assert update["ts"] == ts
    assert "1 of 2" in _text(update)
    # Its buttons carry the new version: Bob's press settles the review.
    _act(server, press({**update, "text": message["text"]}, ts, "UBOB", "signoff.approve", n=1))
    assert _get(server, d.review_id).state == R.REVIEW_STATE_APPROVED


def test_settled_by_timeout_updates_the_message(server, slack, clock):
    d = _evaluate(server)
    _posted(slack)
    clock.advance(hours=2)
    assert server.call(server.running.app.reviews.sweep()) == 1
    update = slack.wait("chat.update")[0]
    assert "Expired*" in _text(update)
    assert _get(server, d.review_id).state == R.REVIEW_STATE_EXPIRED


def test_an_escalated_review_moves_to_the_new_groups_channel(server, slack, clock):
    d = _evaluate(server, amount=7)
    _, ts = _posted(slack)
    clock.advance(hours=2)
    assert server.call(server.running.app.reviews.sweep()) == 1
    update = slack.wait("chat.update")[0]
    assert (update["channel"], update["ts"]) == ("CFINANCE", ts)
    assert "Escalated to *finance-leads*" in _text(update)
    assert "signoff.approve" not in _text(update)  # finance may no longer act on it
    moved, _ = _posted(slack, 2)
    assert moved["channel"] == "CLEADS"
    assert "signoff.approve" in _text(moved)
    assert _get(server, d.review_id).reviewer_group == "finance-leads"


def test_a_slack_user_is_mapped_by_email_through_the_tokens_file(server, slack):
    d = _evaluate(server)
    message, ts = _posted(slack)
    assert _act(server, press(message, ts, "UERIN", "signoff.approve")).status_code == 200
    assert _get(server, d.review_id).acts[0].reviewer == "erin"
    assert slack.of("users.info")[0]["user"] == "UERIN"


@pytest.mark.parametrize(
    ("user", "why"),
    [
        ("UMALLORY", "Slack user UMALLORY is not mapped to a Signoff reviewer"),
        ("UNOBODY", "Slack user UNOBODY is not mapped to a Signoff reviewer"),  # e-mail unknown
        ("UCAROL", "carol may not review for group 'finance' (needs role reviewer:finance)"),
        ("UDAVE", "separation of duties: dave requested this action"),
    ],
)
def test_an_act_that_is_not_allowed_is_refused_with_its_reason(server, slack, user, why):
    d = _evaluate(server, who="dave" if user == "UDAVE" else "bot")
    message, ts = _posted(slack)
    assert _act(server, press(message, ts, user, "signoff.approve")).status_code == 200
    told = slack.wait("chat.postEphemeral")[0]
    assert (told["channel"], told["user"]) == ("CFINANCE", user)
    assert why in told["text"], told["text"]
    assert _get(server, d.review_id).state == R.REVIEW_STATE_PENDING


def test_a_button_pressed_after_the_review_was_settled_is_refused(server, slack):
    d = _evaluate(server)
    message, ts = _posted(slack)
    _act(server, press(message, ts, "UALICE", "signoff.approve"))
    slack.wait("chat.update")
    # A copy of the message from before the update (a client that had not refreshed yet).
    _act(server, press(message, ts, "UBOB", "signoff.approve", n=2))
    told = slack.wait("chat.postEphemeral")[0]
    assert f"review {d.review_id} is APPROVED: resolved reviews cannot change" in told["text"]
    assert _get(server, d.review_id).acts[-1].reviewer == "alice"


def test_reject_on_a_settled_review_opens_no_modal_and_says_why(server, slack):
    d = _evaluate(server)
    message, ts = _posted(slack)
    _act(server, press(message, ts, "UALICE", "signoff.approve"))
    _act(server, press(message, ts, "UBOB", "signoff.reject", n=1))
    told = slack.wait("chat.postEphemeral")[0]
    assert f"review {d.review_id} is APPROVED: resolved reviews cannot change" in told["text"]
    assert slack.of("views.open") == []


def test_a_slack_that_fails_never_fails_a_decision_or_an_act(make_server, policy_dir, tmp_path):
    tokens = write_tokens(tmp_path, PEOPLE)
    notify = {
        "slack": {
            "bot_token": "xoxb-test",
            "signing_secret": SECRET,
            "console_url": "https://signoff.example.com/",
            "api_url": "http://127.0.0.1:9/api/",
            "timeout_s": 0.5,
        },
        "routes": {"*": {"slack": {"channels": ["CALL"]}}},
    }
    server = make_server(
        policy_dir({"payouts.yaml": POLICY}), auth={"tokens_file": tokens}, notify=notify
    )
    d = _evaluate(server)
    approve = R.SubmitReviewRequest(
        review_id=d.review_id, verdict=R.VERDICT_APPROVE, expected_version=1
    )
    r = review_pb2_grpc.ReviewServiceStub(server.channel()).SubmitReview(
        approve, metadata=(("authorization", "Bearer alice"),)
    )
    assert r.state == R.REVIEW_STATE_APPROVED


def test_a_refused_rejection_keeps_the_modal_open_with_the_reason(server, slack):
    _evaluate(server)
    message, ts = _posted(slack)
    _act(server, press(message, ts, "UALICE", "signoff.reject"))
    view = slack.wait("views.open")[0]["view"]
    resp = _act(server, submit_view(view, "UCAROL", "no"))
    assert resp.status_code == 200
    body = resp.json()
    assert body["response_action"] == "errors"
    assert "carol may not review for group 'finance'" in body["errors"]["comment"]


def test_bad_requests_are_refused_before_anything_is_done(server, slack):
    d = _evaluate(server)
    message, ts = _posted(slack)
    body = form(press(message, ts, "UALICE", "signoff.approve"))
    good = sign(SECRET, body)
    cases = {
        "wrong secret": (body, sign("not-the-secret", body), 401),
        "stale timestamp": (
            body,
            sign(SECRET, body, timestamp=int(good["X-Slack-Request-Timestamp"]) - 600),
            401,
        ),
        "future timestamp": (
            body,
            sign(SECRET, body, timestamp=int(good["X-Slack-Request-Timestamp"]) + 600),
            401,
        ),
        "timestamp not a number": (body, {**good, "X-Slack-Request-Timestamp": "soon"}, 401),
        "no signature": (body, {k: v for k, v in good.items() if k != "X-Slack-Signature"}, 401),
        "non-ASCII signature": (body, {**good, "X-Slack-Signature": "v0=é".encode()}, 401),
        "body changed after signing": (body + b"&x=1", good, 401),
        "other workspace": (
            form(press(message, ts, "UALICE", "signoff.approve", team="TOTHER", n=5)),
            None,
            403,
        ),
        "not a payload": (b"payload=%7Bnot-json", None, 400),
        "oversize": (b"payload=" + b"x" * 20_000, None, 413),
    }
    for name, (b, headers, status) in cases.items():
        resp = _post(server, b, headers if headers is not None else sign(SECRET, b))
        assert resp.status_code == status, (name, resp.status_code, resp.text)
    assert _get(server, d.review_id).state == R.REVIEW_STATE_PENDING
    assert slack.of("chat.postEphemeral") == []
    # The same body, properly signed, is acted on once; sent again it is a replay.
    assert _post(server, body, good).status_code == 200
    assert _post(server, body, good).status_code == 409
    r = _get(server, d.review_id)
    assert r.state == R.REVIEW_STATE_APPROVED
    assert len(r.acts) == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "block_actions", "team": {"id": TEAM}},
        {"type": "block_actions", "team": {"id": TEAM}, "user": "UALICE", "actions": "x"},
        {"type": "block_actions", "team": {"id": TEAM}, "actions": [{"action_id": 5}]},
        {
            "type": "block_actions",
            "team": {"id": TEAM},
            "user": {"id": "UALICE"},
            "actions": [{"action_id": "signoff.approve", "value": '{"review_id": 1}'}],
        },
        {"type": "view_submission", "team": {"id": TEAM}, "view": "x"},
        {
            "type": "view_submission",
            "team": {"id": TEAM},
            "user": ["UALICE"],
            "view": {"callback_id": "signoff.reject_view", "private_metadata": "[]"},
        },
        {"type": "shortcut", "team": {"id": TEAM}},
    ],
)
def test_odd_but_signed_payloads_are_answered_not_crashed_on(server, slack, payload):
    resp = _act(server, payload)
    assert resp.status_code == 200, resp.text
    assert _get_none_acted(server)


def _get_none_acted(server) -> bool:
    entries = server.call(server.running.app.store.read_audit(1, 100))
    return not [e for e in entries if e.type in ("review.approved", "review.rejected")]


def test_an_oversize_body_is_refused_without_a_content_length(server, slack):
    def chunks():
        yield b"payload="
        for _ in range(40):
            yield b"x" * 1024

    resp = httpx.post(
        f"{server.http_url}/slack/interactivity", content=chunks(), headers=sign(SECRET, b"")
    )
    assert resp.status_code == 413


def test_without_slack_configured_the_path_is_not_an_endpoint(make_server):
    server = make_server()
    resp = httpx.post(f"{server.http_url}/slack/interactivity", content=b"payload=%7B%7D")
    assert resp.status_code == 404, resp.text  # Connect's answer to an unknown path


def test_the_endpoint_takes_posts_only_and_counts_against_the_peer_rate(
    make_server, policy_dir, tmp_path, slack
):
    notify = {
        "slack": {"bot_token": "xoxb-test", "signing_secret": SECRET, "team_id": TEAM,
                  "console_url": "https://signoff.example.com/", "api_url": slack.url},
        "routes": {"finance": {"slack": {"channels": ["CFINANCE"]}}},
    }  # fmt: skip
    server = make_server(
        policy_dir({"payouts.yaml": POLICY}),
        auth={"tokens_file": write_tokens(tmp_path, PEOPLE)},
        notify=notify,
        limits={"peers": {"rate": 0.001, "burst": 2}},
    )
    url = f"{server.http_url}/slack/interactivity"
    assert httpx.get(url).status_code == 405
    # Unsigned: refused by the signature check, yet each took a token of the address's rate.
    codes = [httpx.post(url, content=b"payload=%7B%7D") for _ in range(3)]
    assert [c.status_code for c in codes] == [401, 401, 429]
    assert int(codes[2].headers["retry-after"]) >= 1
