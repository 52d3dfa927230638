"""Slack and e-mail approvals served by two servers on one database (what `serve --workers`
and replicas are), and across a restart: a link opens one session wherever it is redeemed,
a Slack request is acted on once whichever server it reaches, and a message posted by one
server is updated when another settles its review. Slack is a local fake, e-mail a local
SMTP server; on each backend."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from signoff import pb
from signoff.auth.review_links import verify
from signoff.errors import Unavailable
from signoff.notify.slack_blocks import parse_value
from signoff.serving import server as server_module
from signoff_client._gen import decision_pb2_grpc, review_pb2_grpc

from ..slack_fake import FakeSlack, button, form, press, sign
from .conftest import FakeClock, ServerHandle, free_port, write_tokens
from .email_inbox import Inbox, email_settings, link_of, smtp_inbox  # noqa: F401 (a fixture)

pytest.importorskip("slack_sdk")

R = pb.review
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
LINK_SECRET = "s" * 40
POLICY = """
name: payouts
actions: ["payout.*"]
rules:
  - name: payout
    when: "true"
    decision: review
    reviewers: finance
    timeout: 1h
    reason: Every payout needs a finance reviewer.
"""
PEOPLE = {
    "bot": ("bot", ["agent"]),
    "alice": ("alice", ["reviewer:finance"]),
    "bob": ("bob", ["reviewer:finance"]),
    "audra": ("audra", ["auditor"]),
}
RECIPIENTS = [
    {"address": "alice@example.com", "reviewer": "alice"},
    {"address": "bob@example.com", "reviewer": "bob"},
]


@dataclass
class Cluster:
    """Servers on one database, the Slack and SMTP fakes they all talk to, one clock."""

    a: ServerHandle
    b: ServerHandle
    start: Callable[[], ServerHandle]  # another server on the same database
    slack: FakeSlack
    inbox: Inbox
    clock: FakeClock


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def cluster(make_server, policy_dir, tmp_path, slack, inbox, backend) -> Cluster:
    clock = FakeClock()
    policies = policy_dir({"payouts.yaml": POLICY})
    tokens = write_tokens(tmp_path, PEOPLE)
    db: list[str] = []

    def start() -> ServerHandle:
        port = free_port()
        notify = {
            "slack": {
                "bot_token": "xoxb-test",
                "signing_secret": SLACK_SECRET,
                "console_url": "https://signoff.example.com/",
                "team_id": "T0SIGNOFF",
                "users": {"UALICE": "alice", "UBOB": "bob"},
                "api_url": slack.url,
            },
            "email": email_settings(inbox, port, LINK_SECRET),
            "routes": {
                "finance": {"slack": {"channels": ["CFINANCE"]}, "email": {"to": RECIPIENTS}}
            },
        }
        server = make_server(
            policies,
            clock=clock,
            backend=backend,
            auth={"tokens_file": tokens},
            http_listen=f"127.0.0.1:{port}",
            notify=notify,
            sweep_interval=3600,
            **({"db": db[0]} if db else {}),
        )
        db[:] = [server.db]
        return server

    a = start()
    return Cluster(a, start(), start, slack, inbox, clock)


def _open_review(server: ServerHandle) -> str:
    req = pb.common.ActionRequest()
    req.action.name = "payout.send"
    req.action.params.update({"amount": 100})
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    d = stub.Evaluate(req, metadata=(("authorization", "Bearer bot"),))
    assert d.outcome == pb.common.OUTCOME_REQUIRE_REVIEW
    return d.review_id


def _approve(server: ServerHandle, review_id: str, who: str) -> R.Review:
    req = R.SubmitReviewRequest(review_id=review_id, verdict=R.VERDICT_APPROVE, expected_version=1)
    stub = review_pb2_grpc.ReviewServiceStub(server.channel())
    return stub.SubmitReview(req, metadata=(("authorization", f"Bearer {who}"),))


def _state(server: ServerHandle, review_id: str) -> int:
    stub = review_pb2_grpc.ReviewServiceStub(server.channel())
    req = R.GetReviewRequest(review_id=review_id)
    return stub.GetReview(req, metadata=(("authorization", "Bearer audra"),)).state


def _links(inbox: Inbox) -> dict[str, str]:
    """The link tokens of the next two e-mails (a review opened for finance), by recipient."""
    return {to: link_of(msg)[1] for to, msg in inbox.for_each(2).items()}


def _redeem(server: ServerHandle, token: str) -> httpx.Response:
    return httpx.post(f"{server.http_url}/email/redeem", json={"token": token}, timeout=30)


async def _redeem_at_once(servers: list[ServerHandle], token: str, each: int) -> list[int]:
    """Statuses of `each` redeems of `token` on every server, all in flight together."""
    async with httpx.AsyncClient(timeout=30) as client:
        calls = [
            client.post(f"{s.http_url}/email/redeem", json={"token": token})
            for _ in range(each)
            for s in servers
        ]
        return [r.status_code for r in await asyncio.gather(*calls)]


def _posted(server: ServerHandle, slack: FakeSlack, n: int = 1) -> dict:
    """The `n`th message posted, once `server` (which posted it) has noted it in the store."""
    message = slack.wait("chat.postMessage", n)[n - 1]
    server.call(server.running.slack.idle())  # type: ignore[union-attr]
    return message


def _text(call: dict) -> str:
    return str(call["blocks"])


def test_one_link_redeemed_on_two_servers_at_once_opens_one_session(cluster: Cluster):
    _open_review(cluster.a)
    links = _links(cluster.inbox)
    for token in links.values():
        statuses = asyncio.run(_redeem_at_once([cluster.a, cluster.b], token, each=4))
        assert sorted(statuses) == [200] + [401] * 7, statuses
    # Used up on every server, not only where it was redeemed.
    for server in (cluster.a, cluster.b):
        again = _redeem(server, links["alice@example.com"])
        assert again.status_code == 401
        assert "already used" in again.json()["error"]


def test_a_message_posted_by_one_server_is_updated_when_another_settles_the_review(
    cluster: Cluster,
):
    rid = _open_review(cluster.a)
    posted = _posted(cluster.a, cluster.slack)
    assert cluster.b.call(cluster.b.running.app.store.slack_messages(rid)) == {
        "CFINANCE": "1700000000.000001"
    }
    _approve(cluster.b, rid, "alice")  # B never posted nor saw a button of this message
    update = cluster.slack.wait("chat.update")[0]
    assert (update["channel"], update["ts"]) == (posted["channel"], "1700000000.000001")
    assert "Approved* by *alice*" in _text(update)
    # Settled: nothing will change, so the note is dropped (by the server that updated it).
    cluster.b.call(cluster.b.running.slack.idle())  # type: ignore[union-attr]
    assert cluster.a.call(cluster.a.running.app.store.slack_messages(rid)) == {}


def test_a_review_expired_by_another_servers_sweep_updates_the_message(cluster: Cluster):
    rid = _open_review(cluster.a)
    posted = _posted(cluster.a, cluster.slack)
    cluster.clock.advance(hours=2)
    assert cluster.b.call(cluster.b.running.app.reviews.sweep()) == 1
    update = cluster.slack.wait("chat.update")[0]
    assert (update["channel"], update["ts"]) == (posted["channel"], "1700000000.000001")
    assert "Expired*" in _text(update)
    assert _state(cluster.a, rid) == R.REVIEW_STATE_EXPIRED


def test_a_slack_request_replayed_to_another_server_is_refused(cluster: Cluster):
    rid = _open_review(cluster.a)
    message = _posted(cluster.a, cluster.slack)
    body = form(press(message, "1700000000.000001", "UALICE", "signoff.approve"))
    headers = sign(SLACK_SECRET, body)
    first = httpx.post(f"{cluster.a.http_url}/slack/interactivity", content=body, headers=headers)
    assert first.status_code == 200, first.text
    replay = httpx.post(f"{cluster.b.http_url}/slack/interactivity", content=body, headers=headers)
    assert replay.status_code == 409, replay.text
    assert _state(cluster.b, rid) == R.REVIEW_STATE_APPROVED
    # The same press, signed anew (same trigger id), is a replay too.
    resigned = sign(SLACK_SECRET, body, timestamp=int(headers["X-Slack-Request-Timestamp"]) + 1)
    again = httpx.post(f"{cluster.b.http_url}/slack/interactivity", content=body, headers=resigned)
    assert again.status_code == 409, again.text


def test_a_restart_keeps_used_links_and_which_message_shows_which_review(cluster: Cluster):
    rid = _open_review(cluster.a)
    posted = _posted(cluster.a, cluster.slack)
    links = _links(cluster.inbox)
    assert _redeem(cluster.a, links["alice@example.com"]).status_code == 200
    for server in (cluster.a, cluster.b):  # every process of the deployment goes
        server.call(server.running.stop(0))
    restarted = cluster.start()
    refused = _redeem(restarted, links["alice@example.com"])
    assert refused.status_code == 401
    assert "already used" in refused.json()["error"]
    assert _redeem(restarted, links["bob@example.com"]).status_code == 200  # unused: works
    _approve(restarted, rid, "bob")
    update = cluster.slack.wait("chat.update")[0]
    assert (update["channel"], update["ts"]) == (posted["channel"], "1700000000.000001")
    assert "Approved* by *bob*" in _text(update)


def test_a_message_posted_while_another_server_settled_its_review_is_caught_up(
    cluster: Cluster,
):
    """B settles the review while A waits for Slack to answer its post: B may find no message
    to update yet, so A, once it noted its message, re-reads the review and updates it."""
    settled_by_b: list[R.Review] = []

    def settle_while_posting(method: str, data: dict) -> None:
        if method == "chat.postMessage" and not settled_by_b:
            target = parse_value(button(data, "signoff.approve")["value"])
            assert target is not None
            settled_by_b.append(_approve(cluster.b, target[0], "alice"))

    cluster.slack.before_reply = settle_while_posting
    rid = _open_review(cluster.a)
    _posted(cluster.a, cluster.slack)
    assert [r.state for r in settled_by_b] == [R.REVIEW_STATE_APPROVED]
    cluster.b.call(cluster.b.running.slack.idle())  # type: ignore[union-attr]
    update = cluster.slack.wait("chat.update")[0]
    assert update["ts"] == "1700000000.000001"
    assert "Approved* by *alice*" in _text(update)
    cluster.a.call(cluster.a.running.slack.idle())  # type: ignore[union-attr]
    assert cluster.a.call(cluster.a.running.app.store.slack_messages(rid)) == {}
    # B's own job runs before or after A notes its message (B's worker is not ordered with
    # A's post): the message is updated once or twice, always to the settled review.
    updates = cluster.slack.of("chat.update")
    assert 1 <= len(updates) <= 2
    assert all("Approved* by *alice*" in _text(u) for u in updates)


def test_a_late_job_draws_the_review_as_it_stands_not_as_it_was(cluster: Cluster):
    """A job that waited (here: one published with an old state) draws the stored review:
    an older state never overwrites a newer one, and a settled review is not posted again."""
    rid = _open_review(cluster.a)
    _posted(cluster.a, cluster.slack)
    stub = review_pb2_grpc.ReviewServiceStub(cluster.a.channel())
    opened = stub.GetReview(
        R.GetReviewRequest(review_id=rid), metadata=(("authorization", "Bearer audra"),)
    )
    _approve(cluster.b, rid, "alice")
    cluster.b.call(cluster.b.running.slack.idle())  # type: ignore[union-attr]
    assert "Approved* by *alice*" in _text(cluster.slack.wait("chat.update")[0])
    cluster.a.running.slack.publish("review.opened", opened)  # type: ignore[union-attr]
    cluster.a.call(cluster.a.running.slack.idle())  # type: ignore[union-attr]
    assert len(cluster.slack.of("chat.postMessage")) == 1
    assert len(cluster.slack.of("chat.update")) == 1


def test_with_the_store_failing_links_and_slack_requests_are_refused_not_let_through(
    cluster: Cluster,
):
    _open_review(cluster.a)
    message = _posted(cluster.a, cluster.slack)
    links = _links(cluster.inbox)
    store = cluster.a.running.app.store

    async def down(*args: object) -> bool:
        raise Unavailable("audit store unavailable: injected")

    store.use_nonces = down  # type: ignore[method-assign]
    try:
        refused = _redeem(cluster.a, links["alice@example.com"])
        assert refused.status_code == 503, refused.text
        body = form(press(message, "1700000000.000001", "UALICE", "signoff.approve"))
        headers = sign(SLACK_SECRET, body)
        url = f"{cluster.a.http_url}/slack/interactivity"
        assert httpx.post(url, content=body, headers=headers).status_code == 503
    finally:
        del store.use_nonces
    # Nothing was used up or done: with the store back, both work.
    assert _redeem(cluster.a, links["alice@example.com"]).status_code == 200
    assert httpx.post(url, content=body, headers=headers).status_code == 200


def test_the_sweep_drops_used_links_once_expired_and_notes_of_settled_reviews(
    cluster: Cluster,
):
    opened_at = cluster.clock.now()
    rid = _open_review(cluster.a)
    _posted(cluster.a, cluster.slack)
    token = _links(cluster.inbox)["alice@example.com"]
    assert _redeem(cluster.a, token).status_code == 200
    nonce = verify(LINK_SECRET.encode(), "link", token, cluster.clock.now().timestamp()).nonce
    _approve(cluster.b, rid, "bob")
    cluster.b.call(cluster.b.running.slack.idle())  # type: ignore[union-attr]
    store = cluster.b.running.app.store
    # A note the poster never dropped (its process died after updating the message).
    cluster.b.call(store.add_slack_message(rid, "CGONE", "1", cluster.clock.now()))
    sweep = server_module._sweep_notify_state

    cluster.b.call(sweep(cluster.b.running.app))  # nothing is due yet: the link lives an hour
    assert cluster.b.call(store.slack_messages(rid)) == {"CGONE": "1"}
    assert cluster.b.call(store.use_nonces([("email.link", nonce)], opened_at, opened_at)) is False
    cluster.clock.advance(minutes=61)
    cluster.b.call(sweep(cluster.b.running.app))

    assert cluster.b.call(store.slack_messages(rid)) == {}
    # The row is gone: asked as of before the link expired, the nonce counts as unused.
    key = [("email.link", nonce)]
    later = opened_at + dt.timedelta(hours=2)
    assert cluster.b.call(store.use_nonces(key, later, opened_at)) is True
    assert cluster.b.call(store.use_nonces(key, later, opened_at)) is False
