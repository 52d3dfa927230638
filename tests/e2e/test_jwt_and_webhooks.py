"""OIDC/JWT callers and review webhooks, through a real server."""

from __future__ import annotations

import http.server
import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from signoff import pb
from signoff.notify import verify_signature
from signoff_client._gen import decision_pb2_grpc, review_pb2_grpc

R = pb.review
ISSUER, AUDIENCE = "https://idp.example.com", "signoff"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _token(key, **claims) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "support-bot", "roles": ["agent"]}
    body |= {"exp": now + 300, "iat": now} | claims
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


def _refund(server, token: str, amount: float = 750) -> pb.common.Decision:
    req = pb.common.ActionRequest()
    req.action.name = "refund.issue"
    req.action.params.update({"amount": amount})
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    return stub.Evaluate(req, metadata=(("authorization", f"Bearer {token}"),))


@pytest.fixture
def jwt_server(make_server, tmp_path: Path, key):
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}))
    jwt_settings = {"jwks_file": path, "issuer": ISSUER, "audience": AUDIENCE}
    return make_server(auth={"jwt": jwt_settings})


def test_a_valid_jwt_is_the_caller(jwt_server, key):
    d = _refund(jwt_server, _token(key))
    assert d.outcome == pb.common.OUTCOME_REQUIRE_REVIEW
    approve = R.SubmitReviewRequest(
        review_id=d.review_id, verdict=R.VERDICT_APPROVE, expected_version=1
    )
    alice = _token(key, sub="alice", roles=["reviewer:finance"])
    r = review_pb2_grpc.ReviewServiceStub(jwt_server.channel()).SubmitReview(
        approve, metadata=(("authorization", f"Bearer {alice}"),)
    )
    assert r.acts[0].reviewer == "alice"


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"aud": "someone-else"}, "audience"),
        ({"iss": "https://evil.example.com"}, "issuer"),
    ],
)
def test_bad_jwts_are_unauthenticated(jwt_server, key, claims, message):
    with pytest.raises(grpc.RpcError) as err:
        _refund(jwt_server, _token(key, **claims))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert message in err.value.details()


def test_a_jwt_signed_by_another_key_is_refused(jwt_server):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(grpc.RpcError) as err:
        _refund(jwt_server, _token(other))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


class _Receiver(http.server.BaseHTTPRequestHandler):
    got: queue.Queue[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.got.put((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, queue.Queue]]:
    got: queue.Queue = queue.Queue()
    handler = type("Handler", (_Receiver,), {"got": got})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", got
    httpd.shutdown()


def test_reviews_are_announced_to_the_group_webhook(make_server, receiver):
    url, got = receiver
    hooks = {"finance": [{"url": url, "secret": "s3cret"}]}
    server = make_server(notify={"webhooks": hooks})
    d = _refund(server, "bot")
    headers, body = got.get(timeout=30)
    assert headers["X-Signoff-Event"] == "review.opened"
    ts = headers["X-Signoff-Timestamp"]
    assert verify_signature("s3cret", ts, body, headers["X-Signoff-Signature"], now=int(ts))
    assert json.loads(body)["review"]["review_id"] == d.review_id
    approve = R.SubmitReviewRequest(
        review_id=d.review_id, verdict=R.VERDICT_APPROVE, expected_version=1
    )
    review_pb2_grpc.ReviewServiceStub(server.channel()).SubmitReview(
        approve, metadata=(("authorization", "Bearer alice"),)
    )
    headers, body = got.get(timeout=30)
    assert headers["X-Signoff-Event"] == "review.resolved"
    assert json.loads(body)["review"]["state"] == "APPROVED"


def test_a_dead_webhook_never_fails_a_decision_or_an_act(make_server):
    hooks = {"*": [{"url": "http://127.0.0.1:9/nothing-listens", "timeout_s": 0.2}]}
    server = make_server(notify={"webhooks": hooks})
    d = _refund(server, "bot")
    approve = R.SubmitReviewRequest(
        review_id=d.review_id, verdict=R.VERDICT_APPROVE, expected_version=1
    )
    r = review_pb2_grpc.ReviewServiceStub(server.channel()).SubmitReview(
        approve, metadata=(("authorization", "Bearer alice"),)
    )
    assert r.state == R.REVIEW_STATE_APPROVED
