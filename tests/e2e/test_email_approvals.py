"""E-mail approvals through a real server: e-mails caught by a local SMTP server (aiosmtpd),
their links followed with a real HTTP client, sessions used over the Connect API."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass

import httpx
import pytest

from signoff.auth.review_links import PREFIX, ReviewClaim, issue, new_nonce

from .conftest import FakeClock, free_port, write_tokens
from .email_inbox import Inbox, email_notify, link_of, smtp_inbox  # noqa: F401 (a fixture)

SECRET = "s" * 40
WAIT = 15.0
JSON = {"Content-Type": "application/json", "Connect-Protocol-Version": "1"}
SVC = "/signoff.v1.ReviewService"
PEOPLE = {
    "tok-bot": ("support-bot", ["agent"]),
    "tok-alice": ("alice", ["reviewer:finance"]),
    "tok-bob": ("bob", ["reviewer:finance"]),
    "tok-dave": ("dave", ["reviewer:comms"]),
}
RECIPIENTS = {
    "finance": [
        {"address": "alice@example.com", "reviewer": "alice"},
        {"address": "bob@example.com", "reviewer": "bob"},
        # The requester is never mailed a link to their own request.
        {"address": "bot@example.com", "reviewer": "support-bot"},
    ],
    "comms": [{"address": "dave@example.com", "reviewer": "dave"}],
}
CARD = "4111 1111 1111 1111"
LINK_RE = re.compile(r"(http://\S+/email#(\S+))")


@dataclass
class Env:
    server: object
    inbox: Inbox
    clock: FakeClock

    @property
    def url(self) -> str:
        return self.server.http_url  # type: ignore[attr-defined]

    def call(self, method: str, body: dict, token: str | None) -> httpx.Response:
        headers = dict(JSON)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(f"{self.url}{method}", json=body, headers=headers, timeout=30)

    def refund(self, amount: float = 750) -> str:
        """A refund that needs finance's review; its review id."""
        body = {
            "principal": {"id": "support-bot"},
            "action": {
                "name": "refund.issue",
                "params": {"amount": amount, "currency": "EUR", "card_number": CARD},
            },
        }
        r = self.call("/signoff.v1.DecisionService/Evaluate", body, "tok-bot")
        assert r.status_code == 200, r.text
        assert r.json()["outcome"] == "OUTCOME_REQUIRE_REVIEW"
        return r.json()["reviewId"]

    def redeem(self, token: str) -> httpx.Response:
        return httpx.post(f"{self.url}/email/redeem", json={"token": token}, timeout=30)

    def session(self, token: str) -> str:
        r = self.redeem(token)
        assert r.status_code == 200, r.text
        return r.json()["session"]

    def review(self, review_id: str, token: str = "tok-alice") -> dict:
        r = self.call(f"{SVC}/GetReview", {"reviewId": review_id}, token)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def env(make_server, inbox: Inbox, tmp_path, backend) -> Env:
    """A server with e-mail on, on each backend (the review's version lives in the store)."""
    return start(make_server, inbox, tmp_path)


def start(make_server, inbox: Inbox, tmp_path, policies=None, **email) -> Env:
    clock = FakeClock()
    port = free_port()
    server = make_server(
        policies=policies,
        clock=clock,
        auth={"tokens_file": write_tokens(tmp_path, PEOPLE)},
        http_listen=f"127.0.0.1:{port}",
        notify=email_notify(inbox, port, SECRET, RECIPIENTS, **email),
    )
    return Env(server, inbox, clock)


def audit_channels(env: Env, review_id: str) -> list[tuple[str, str]]:
    """(type, channel) of the review's audit entries."""
    entries = env.server.call(env.server.running.app.store.read_audit())  # type: ignore[attr-defined]
    return [(e.type, e.payload.get("channel", "")) for e in entries if e.review_id == review_id]


# --- the good path -----------------------------------------------------------------------


def test_an_email_link_opens_the_review_and_the_reviewer_approves(env: Env):
    rid = env.refund()
    mails = env.inbox.for_each(2)
    assert set(mails) == {"alice@example.com", "bob@example.com"}  # not the requester
    msg = mails["alice@example.com"]
    assert msg["Subject"] == "Review needed (finance): refund.issue"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for part in (text, html):
        assert "refund.issue" in part
        assert "Refund above 500 needs a finance reviewer." in part
        assert rid in part
        assert "2026-01-02T12:00:00Z" in part  # the deadline: a day after the fake now
        assert CARD not in part  # redacted as reviewers see it
    link, token = link_of(msg)
    assert token.startswith(PREFIX["link"])

    # Following the link (as a mail scanner would) shows the console and acts on nothing.
    page = httpx.get(link, timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert env.review(rid)["state"] == "REVIEW_STATE_PENDING"

    session = env.session(token)
    seen = env.call(f"{SVC}/GetReview", {"reviewId": rid}, session)
    assert seen.status_code == 200, seen.text
    me = env.call(f"{SVC}/WhoAmI", {}, session).json()
    assert me["id"] == "alice"
    assert me["roles"] == ["reviewer:finance"]

    done = env.call(
        f"{SVC}/SubmitReview",
        {"reviewId": rid, "verdict": "VERDICT_APPROVE", "comment": "ok by mail"},
        session,
    )
    assert done.status_code == 200, done.text
    review = done.json()
    assert review["state"] == "REVIEW_STATE_APPROVED"
    assert review["acts"][0]["reviewer"] == "alice"
    assert review["acts"][0]["channel"] == "email"
    assert ("review.approved", "email") in audit_channels(env, rid)


def test_a_reviewer_rejects_with_a_comment_from_an_email_link(env: Env):
    rid = env.refund()
    session = env.session(link_of(env.inbox.for_each(2)["bob@example.com"])[1])
    r = env.call(
        f"{SVC}/SubmitReview",
        {"reviewId": rid, "verdict": "VERDICT_REJECT", "comment": "wrong card"},
        session,
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "REVIEW_STATE_REJECTED"
    assert r.json()["acts"][0] == r.json()["acts"][0] | {"reviewer": "bob", "channel": "email"}


# --- bad input ---------------------------------------------------------------------------


def test_a_link_works_once(env: Env):
    env.refund()
    token = link_of(env.inbox.for_each(2)["alice@example.com"])[1]
    assert env.redeem(token).status_code == 200
    again = env.redeem(token)
    assert again.status_code == 401
    assert "already used" in again.json()["error"]


def test_an_expired_link_is_refused(env: Env):
    env.refund()
    token = link_of(env.inbox.for_each(2)["alice@example.com"])[1]
    env.clock.advance(minutes=61)  # link_ttl_s: 3600
    r = env.redeem(token)
    assert r.status_code == 401
    assert "expired" in r.json()["error"]


def test_an_expired_session_is_refused(env: Env):
    rid = env.refund()
    session = env.session(link_of(env.inbox.for_each(2)["alice@example.com"])[1])
    env.clock.advance(minutes=16)  # session_ttl_s: 900
    r = env.call(f"{SVC}/GetReview", {"reviewId": rid}, session)
    assert r.status_code == 401
    assert "expired" in r.json()["message"]


def test_a_link_to_a_review_settled_since_is_refused(env: Env):
    rid = env.refund()
    token = link_of(env.inbox.for_each(2)["bob@example.com"])[1]
    ok = env.call(
        f"{SVC}/SubmitReview",
        {"reviewId": rid, "verdict": "VERDICT_APPROVE", "expectedVersion": 1},
        "tok-alice",
    )
    assert ok.status_code == 200, ok.text
    r = env.redeem(token)
    assert r.status_code == 409
    assert "already settled (approved)" in r.json()["error"]


TWO_APPROVALS = """
name: two
actions: ["wire.*"]
rules:
  - name: two-approvers
    when: "true"
    decision: review
    reviewers: finance
    approvals: 2
    timeout: 1d
    reason: Wires need two.
"""


def test_a_link_or_session_to_a_review_at_another_version_is_refused(
    make_server, inbox, tmp_path, policy_dir
):
    env = start(make_server, inbox, tmp_path, policies=policy_dir({"two.yaml": TWO_APPROVALS}))
    body = {"principal": {"id": "support-bot"}, "action": {"name": "wire.send"}}
    rid = env.call("/signoff.v1.DecisionService/Evaluate", body, "tok-bot").json()["reviewId"]
    mails = env.inbox.for_each(2)
    bob_session = env.session(link_of(mails["bob@example.com"])[1])
    alice_link = link_of(mails["alice@example.com"])[1]
    # Alice approves in the console: the review moves to version 2, one approval short.
    first = env.call(
        f"{SVC}/SubmitReview",
        {"reviewId": rid, "verdict": "VERDICT_APPROVE", "expectedVersion": 1},
        "tok-alice",
    )
    assert first.json()["state"] == "REVIEW_STATE_PENDING"
    r = env.redeem(alice_link)
    assert r.status_code == 409
    assert "changed since the e-mail was sent (version 1, now 2)" in r.json()["error"]
    # Bob's session was opened on version 1: it cannot approve what he has not seen.
    late = env.call(
        f"{SVC}/SubmitReview", {"reviewId": rid, "verdict": "VERDICT_APPROVE"}, bob_session
    )
    assert late.json()["code"] == "failed_precondition", late.text
    assert env.review(rid)["state"] == "REVIEW_STATE_PENDING"
    stated = env.call(
        f"{SVC}/SubmitReview",
        {"reviewId": rid, "verdict": "VERDICT_APPROVE", "expectedVersion": 2},
        bob_session,
    )
    assert stated.json()["code"] == "failed_precondition"
    assert "this link is for version 1, not 2" in stated.json()["message"]


def test_after_one_of_two_approvals_the_other_reviewer_gets_a_link_that_works(
    make_server, inbox, tmp_path, policy_dir
):
    env = start(make_server, inbox, tmp_path, policies=policy_dir({"two.yaml": TWO_APPROVALS}))
    body = {"principal": {"id": "support-bot"}, "action": {"name": "wire.send"}}
    rid = env.call("/signoff.v1.DecisionService/Evaluate", body, "tok-bot").json()["reviewId"]
    first = env.inbox.for_each(2)
    alice = env.session(link_of(first["alice@example.com"])[1])
    approved = env.call(
        f"{SVC}/SubmitReview",
        {"reviewId": rid, "verdict": "VERDICT_APPROVE", "expectedVersion": 1},
        alice,
    )
    assert approved.json()["state"] == "REVIEW_STATE_PENDING", approved.text
    # Bob's first link is for version 1; the review is now at 2: he is mailed a new one.
    to, again = env.inbox.next()
    assert to == ["bob@example.com"]
    assert env.redeem(link_of(first["bob@example.com"])[1]).status_code == 409
    bob = env.session(link_of(again)[1])
    done = env.call(
        f"{SVC}/SubmitReview",
        {"reviewId": rid, "verdict": "VERDICT_APPROVE", "expectedVersion": 2},
        bob,
    )
    assert done.json()["state"] == "REVIEW_STATE_APPROVED", done.text
    assert [a["reviewer"] for a in env.review(rid)["acts"]] == ["alice", "bob"]


def _altered(token: str, field: str, value: object) -> str:
    """The token with one payload field changed and the MAC kept (a forgery)."""
    payload, mac = token.rsplit(".", 1)
    prefix, raw = payload[:5], payload[5:]
    fields = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    fields[field] = value
    body = base64.urlsafe_b64encode(json.dumps(fields).encode()).rstrip(b"=").decode()
    return f"{prefix}{body}.{mac}"


def test_tampered_or_foreign_tokens_are_refused(env: Env):
    rid = env.refund()
    token = link_of(env.inbox.for_each(2)["alice@example.com"])[1]
    claim = ReviewClaim("alice", "finance", rid, 1, 2**40, new_nonce())
    for bad, why in [
        (_altered(token, "r", "bob"), "bad signature"),  # bound to its reviewer
        (_altered(token, "g", "comms"), "bad signature"),
        (_altered(token, "exp", 2**40), "bad signature"),
        (token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"), "bad signature"),
        (issue(b"another-server-secret-of-32-chars!!", "link", claim), "bad signature"),
        (issue(SECRET.encode(), "session", claim), "not a e-mail link token"),
        ("x" * 2000, "not a e-mail link token"),
    ]:
        r = env.redeem(bad)
        assert r.status_code == 401, (bad, r.text)
        assert why in r.json()["error"]
    assert env.review(rid)["state"] == "REVIEW_STATE_PENDING"
    # A link token is not a session: the API refuses it as a bearer token.
    r = env.call(f"{SVC}/GetReview", {"reviewId": rid}, token)
    assert r.status_code == 401
    # ...and the forged session of another secret neither.
    forged = issue(b"another-server-secret-of-32-chars!!", "session", claim)
    assert env.call(f"{SVC}/GetReview", {"reviewId": rid}, forged).status_code == 401


def test_a_session_reaches_its_review_and_nothing_else(env: Env):
    a = env.refund()
    b = env.refund(800)
    mails = env.inbox.for_each(4)  # two reviews, two reviewers each
    del mails
    # The links of review a, alice's: sessions are per review.
    session = issue(SECRET.encode(), "session", ReviewClaim("alice", "finance", a, 1, 2**40, "n"))
    for method, body in [
        ("GetReview", {"reviewId": b}),
        ("SubmitReview", {"reviewId": b, "verdict": "VERDICT_APPROVE"}),
        ("ListReviews", {}),
        ("ListPrecedents", {"reviewId": a}),
        ("CancelReview", {"reviewId": a}),
        ("SubmitReviews", {"verdict": "VERDICT_APPROVE"}),
        ("ListGrants", {}),
    ]:
        r = env.call(f"{SVC}/{method}", body, session)
        assert r.status_code == 403, (method, r.text)
        assert f"is for review {a} only" in r.json()["message"]
    for path in (
        "/signoff.v1.AuditService/VerifyAudit",
        "/signoff.v1.AuditService/QueryAudit",
        "/signoff.v1.PolicyService/GetBundle",
        "/signoff.v1.DecisionService/Evaluate",
    ):
        r = env.call(path, {}, session)
        assert r.status_code == 403, (path, r.text)
    grant = env.call(
        f"{SVC}/SubmitReview",
        {"reviewId": a, "verdict": "VERDICT_APPROVE", "grant": {"ttlSeconds": 3600}},
        session,
    )
    assert grant.status_code == 400
    assert "standing approval cannot be given from an e-mail link" in grant.json()["message"]
    assert env.review(b)["state"] == env.review(a)["state"] == "REVIEW_STATE_PENDING"


def test_a_link_does_not_let_the_requester_approve_their_own_action(env: Env):
    rid = env.refund()
    env.inbox.for_each(2)
    # A link for the requester (never mailed; made with the key) still meets separation of duties.
    claim = ReviewClaim("support-bot", "finance", rid, 1, 2**40, new_nonce())
    session = env.session(issue(SECRET.encode(), "link", claim))
    r = env.call(f"{SVC}/SubmitReview", {"reviewId": rid, "verdict": "VERDICT_APPROVE"}, session)
    assert r.status_code == 403, r.text
    assert env.review(rid)["state"] == "REVIEW_STATE_PENDING"


def test_a_link_of_another_group_opens_nothing(env: Env):
    rid = env.refund()
    env.inbox.for_each(2)
    claim = ReviewClaim("dave", "comms", rid, 1, 2**40, new_nonce())  # dave reviews comms
    r = env.redeem(issue(SECRET.encode(), "link", claim))
    assert r.status_code == 403
    assert "dave may not see review" in r.json()["error"]
    assert env.review(rid)["state"] == "REVIEW_STATE_PENDING"


def test_get_never_acts_and_the_redeem_endpoint_wants_a_json_post(env: Env):
    rid = env.refund()
    link, token = link_of(env.inbox.for_each(2)["alice@example.com"])
    for _ in range(3):
        assert httpx.get(link, timeout=30).status_code == 200
    assert httpx.get(f"{env.url}/email/redeem?token={token}", timeout=30).status_code == 405
    as_form = httpx.post(f"{env.url}/email/redeem", data={"token": token}, timeout=30)
    assert as_form.status_code == 400
    big = httpx.post(
        f"{env.url}/email/redeem", json={"token": token, "pad": "x" * 5000}, timeout=30
    )
    assert big.status_code == 400
    assert "exceeds 4096 bytes" in big.json()["error"]
    for body in (b"{", b"[]", b'{"token": 7}'):
        r = httpx.post(
            f"{env.url}/email/redeem",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert r.status_code == 400, body
    assert env.review(rid)["state"] == "REVIEW_STATE_PENDING"
    assert env.redeem(token).status_code == 200  # none of the above used the link up


def test_email_without_the_http_port_is_a_config_error(make_server, inbox, tmp_path):
    from signoff.settings.model import ConfigError

    with pytest.raises(
        ConfigError, match=r"notify\.email: the links need the console; set http_listen"
    ):
        make_server(
            auth={"tokens_file": write_tokens(tmp_path, PEOPLE)},
            http_listen="",
            notify=email_notify(inbox, 1, SECRET),
        )


def test_the_redeem_endpoint_counts_against_the_peer_rate(make_server, inbox, tmp_path):
    port = free_port()
    server = make_server(
        auth={"tokens_file": write_tokens(tmp_path, PEOPLE)},
        http_listen=f"127.0.0.1:{port}",
        notify=email_notify(inbox, port, SECRET),
        limits={"peers": {"rate": 0.001, "burst": 2}},
    )
    codes = [
        httpx.post(f"{server.http_url}/email/redeem", json={"token": "x"}, timeout=30)
        for _ in range(3)
    ]
    assert [c.status_code for c in codes] == [401, 401, 429]
    assert int(codes[2].headers["retry-after"]) >= 1
