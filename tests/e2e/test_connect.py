"""The API over the Connect protocol, as a browser speaks it: a real server, plain HTTP."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from signoff import pb
from signoff.api.connect import ConnectHandler
from signoff.api.errors import Guard
from signoff.auth import DevAuthenticator
from signoff.serving.build import authenticator_for
from signoff.serving.http import HttpServer
from signoff.settings.model import ConfigError, Settings, load_settings
from signoff_client._gen import review_pb2_grpc

from .conftest import EXAMPLE_POLICIES, ServerHandle, write_tokens

R = pb.review
EVALUATE = "/signoff.v1.DecisionService/Evaluate"
GET_REVIEW = "/signoff.v1.ReviewService/GetReview"
SUBMIT = "/signoff.v1.ReviewService/SubmitReview"
WATCH = "/signoff.v1.ReviewService/WatchReview"
JSON = {"Content-Type": "application/json", "Connect-Protocol-Version": "1"}
STREAM_JSON = {"Content-Type": "application/connect+json", "Connect-Protocol-Version": "1"}
SECURITY = {
    "content-security-policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
INDEX = (Path(__file__).parents[2] / "service/signoff/console/static/index.html").read_bytes()


def _refund(amount: float = 750, who: str = "bot") -> dict:
    return {
        "principal": {"id": who},
        "action": {"name": "refund.issue", "params": {"amount": amount, "currency": "EUR"}},
    }


def _call(server: ServerHandle, path: str, body: dict, who: str | None = "bot") -> httpx.Response:
    headers = dict(JSON)
    if who is not None:
        headers["Authorization"] = f"Bearer {who}"
    return httpx.post(f"{server.http_url}{path}", json=body, headers=headers, timeout=30)


def _envelope(data: bytes, flags: int = 0) -> bytes:
    return bytes([flags]) + len(data).to_bytes(4, "big") + data


class Frames:
    """Reads enveloped messages off a streaming response as they arrive."""

    def __init__(self, response: httpx.Response) -> None:
        self.chunks: Iterator[bytes] = response.iter_raw()
        self.buf = b""

    def next(self) -> tuple[int, bytes]:
        """The next (flags, message)."""
        while len(self.buf) < 5 or len(self.buf) < 5 + int.from_bytes(self.buf[1:5], "big"):
            self.buf += next(self.chunks)
        size = int.from_bytes(self.buf[1:5], "big")
        flags, data, self.buf = self.buf[0], self.buf[5 : 5 + size], self.buf[5 + size :]
        return flags, data

    def json(self) -> dict:
        """The next message, which must not be the end of the stream."""
        flags, data = self.next()
        assert flags == 0, data
        return json.loads(data)

    def end(self) -> dict:
        """The end-stream message, which must be the last thing in the body."""
        flags, data = self.next()
        assert flags == 0x02, data
        assert self.buf == b""
        assert b"".join(self.chunks) == b""
        return json.loads(data)


def _watch(server: ServerHandle, review_id: str, who: str = "bot", **headers: str):
    body = _envelope(json.dumps({"reviewId": review_id}).encode())
    return httpx.stream(
        "POST",
        f"{server.http_url}{WATCH}",
        content=body,
        headers={**STREAM_JSON, "Authorization": f"Bearer {who}", **headers},
        timeout=30,
    )


# --- unary calls -------------------------------------------------------------------------


def test_evaluate_in_json_answers_in_lower_camel_case(server):
    small = _call(server, EVALUATE, _refund(20))
    assert small.status_code == 200
    assert small.headers["content-type"] == "application/json"
    assert small.json()["outcome"] == "OUTCOME_AUTO_ALLOW"
    large = _call(server, EVALUATE, _refund(750)).json()
    assert large["outcome"] == "OUTCOME_REQUIRE_REVIEW"
    assert large["reviewerGroup"] == "finance"
    assert large["reviewId"]


def test_evaluate_in_binary_protobuf(server):
    req = pb.common.ActionRequest()
    req.action.name = "refund.issue"
    req.action.params.update({"amount": 750})
    req.principal.id = "bot"
    r = httpx.post(
        f"{server.http_url}{EVALUATE}",
        content=req.SerializeToString(),
        headers={"Content-Type": "application/proto", "Authorization": "Bearer bot"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/proto"
    decision = pb.common.Decision.FromString(r.content)
    assert decision.outcome == pb.common.OUTCOME_REQUIRE_REVIEW


def test_get_and_submit_review(server):
    review_id = _call(server, EVALUATE, _refund()).json()["reviewId"]
    got = _call(server, GET_REVIEW, {"reviewId": review_id}, who="alice").json()
    assert got["state"] == "REVIEW_STATE_PENDING"
    assert got["version"] == "1"  # int64 is a string in proto3 JSON
    act = {"reviewId": review_id, "verdict": "VERDICT_APPROVE", "expectedVersion": got["version"]}
    done = _call(server, SUBMIT, act, who="alice")
    assert done.status_code == 200
    assert done.json()["state"] == "REVIEW_STATE_APPROVED"
    again = _call(server, SUBMIT, act, who="alice")  # the review changed since version 1
    assert (again.status_code, again.json()["code"]) == (400, "failed_precondition")


def test_a_missing_review_is_not_found(server):
    r = _call(server, GET_REVIEW, {"reviewId": "nope"}, who="alice")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["code"] == "not_found"


# --- server streams ------------------------------------------------------------------------


@pytest.mark.parametrize("approve_over", ["grpc", "connect"])
def test_watch_review_streams_each_change_then_ends(server, approve_over):
    review_id = _call(server, EVALUATE, _refund()).json()["reviewId"]
    with _watch(server, review_id) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/connect+json"
        frames = Frames(response)
        assert frames.json()["state"] == "REVIEW_STATE_PENDING"
        if approve_over == "grpc":
            req = R.SubmitReviewRequest(
                review_id=review_id, verdict=R.VERDICT_APPROVE, expected_version=1
            )
            review_pb2_grpc.ReviewServiceStub(server.channel()).SubmitReview(
                req, metadata=(("authorization", "Bearer alice"),)
            )
        else:
            act = {"reviewId": review_id, "verdict": "VERDICT_APPROVE", "expectedVersion": "1"}
            assert _call(server, SUBMIT, act, who="alice").status_code == 200
        approved = frames.json()
        assert approved["state"] == "REVIEW_STATE_APPROVED"
        assert approved["acts"][0]["reviewer"] == "alice"
        assert frames.end() == {}


def test_watch_review_in_binary_protobuf(server):
    review_id = _call(server, EVALUATE, _refund()).json()["reviewId"]
    # Cancelled by the agent: the stream's first message is already the final one.
    _call(server, "/signoff.v1.ReviewService/CancelReview", {"reviewId": review_id})
    body = _envelope(R.WatchReviewRequest(review_id=review_id).SerializeToString())
    headers = {"Content-Type": "application/connect+proto", "Authorization": "Bearer bot"}
    with httpx.stream("POST", f"{server.http_url}{WATCH}", content=body, headers=headers) as r:
        frames = Frames(r)
        flags, data = frames.next()
        assert flags == 0
        assert R.Review.FromString(data).state == R.REVIEW_STATE_CANCELLED
        assert frames.end() == {}


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (_envelope(b'{"reviewId": "nope"}'), "not_found", "nope"),
        (b"", "invalid_argument", "expected one enveloped message"),
        (_envelope(b"{}") + _envelope(b"{}"), "invalid_argument", "exactly one message"),
        (_envelope(b"{}", flags=1), "invalid_argument", "envelope flags 0x01"),
        (_envelope(b'{"reviewID": "x"}'), "invalid_argument", "reviewID"),
    ],
)
def test_stream_errors_arrive_in_the_end_stream_message(server, body, code, message):
    headers = {**STREAM_JSON, "Authorization": "Bearer bot"}
    with httpx.stream("POST", f"{server.http_url}{WATCH}", content=body, headers=headers) as r:
        assert r.status_code == 200  # Connect streams report errors in-band
        error = Frames(r).end()["error"]
    assert error["code"] == code
    assert message in error["message"]


def test_connect_timeout_ends_a_stream_with_deadline_exceeded(server):
    review_id = _call(server, EVALUATE, _refund()).json()["reviewId"]
    with _watch(server, review_id, **{"Connect-Timeout-Ms": "300"}) as response:
        frames = Frames(response)
        assert frames.json()["state"] == "REVIEW_STATE_PENDING"
        assert frames.end()["error"]["code"] == "deadline_exceeded"


def test_connect_timeout_of_zero_fails_a_unary_call_at_once(server):
    r = httpx.post(
        f"{server.http_url}{EVALUATE}",
        json=_refund(20),
        headers={**JSON, "Authorization": "Bearer bot", "Connect-Timeout-Ms": "0"},
    )
    assert (r.status_code, r.json()["code"]) == (504, "deadline_exceeded")


def test_a_client_that_leaves_ends_its_stream_on_the_server(server):
    connect = server.running.http.connect
    review_id = _call(server, EVALUATE, _refund()).json()["reviewId"]
    with _watch(server, review_id) as response:
        # Held in a name: a dropped reader closes its response, and the stream with it.
        frames = Frames(response)
        assert frames.json()["state"] == "REVIEW_STATE_PENDING"
        assert connect.open_streams == 1
    # The connection is closed: the handler is cancelled and the watch closed.
    server.call(asyncio.wait_for(connect.idle.wait(), 10))
    assert connect.open_streams == 0


def test_server_stops_promptly_with_a_stream_open(make_server):
    server = make_server(shutdown_grace=30.0)
    review_id = _call(server, EVALUATE, _refund()).json()["reviewId"]
    with _watch(server, review_id) as response:
        frames = Frames(response)
        assert frames.json()["state"] == "REVIEW_STATE_PENDING"
        started = time.monotonic()
        server.call(server.running.stop())
        assert time.monotonic() - started < 10  # not the 30 s grace
        end = frames.end()
    assert end["error"]["code"] == "unavailable"
    assert "shutting down" in end["error"]["message"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.http_url}/healthz")


# --- protocol errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content", "headers", "status", "code", "message"),
    [
        (EVALUATE, b'{"action": {"parms": {}}}', JSON, 400, "invalid_argument", '"parms"'),
        (EVALUATE, b'{"action": {"name": 5}}', JSON, 400, "invalid_argument", "name field"),
        (EVALUATE, b'{"action": ', JSON, 400, "invalid_argument", "line 1"),
        (EVALUATE, b"[1]", JSON, 400, "invalid_argument", "expected a JSON object"),
        (EVALUATE, b'{"context": {"x": NaN}}', JSON, 400, "invalid_argument", "NaN"),
        (EVALUATE, b"\xff\xff", {"Content-Type": "application/proto"}, 400,
         "invalid_argument", "cannot decode ActionRequest"),
        ("/signoff.v1.DecisionService/Nope", b"{}", JSON, 404, "unimplemented", "no such method"),
        ("/acme.v1.Other/Call", b"{}", JSON, 404, "unimplemented", "no such method"),
        (EVALUATE, b"{}", {"Content-Type": "text/plain"}, 415, "unimplemented",
         "application/json"),
        (EVALUATE, b"{}", STREAM_JSON, 415, "unimplemented", "application/proto"),
        (WATCH, b"{}", JSON, 415, "unimplemented", "application/connect+json"),
        (EVALUATE, b"{}", {**JSON, "Connect-Protocol-Version": "2"}, 400, "invalid_argument",
         "Connect-Protocol-Version"),
        (EVALUATE, b"{}", {**JSON, "Connect-Timeout-Ms": "soon"}, 400, "invalid_argument",
         "Connect-Timeout-Ms"),
        (EVALUATE, b"{}", {**JSON, "Content-Encoding": "gzip"}, 501, "unimplemented", "identity"),
    ],
)  # fmt: skip
def test_bad_calls_get_a_connect_error_and_its_http_status(
    server, path, content, headers, status, code, message
):
    headers = {**headers, "Authorization": "Bearer bot"}
    r = httpx.post(f"{server.http_url}{path}", content=content, headers=headers)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["code"] == code
    assert message in r.json()["message"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_api_paths_take_only_post(server):
    r = httpx.get(f"{server.http_url}{EVALUATE}")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert r.json()["code"] == "unimplemented"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_max_message_bytes_is_resource_exhausted(make_server, chunked):
    server = make_server(max_message_bytes=64 * 1024)
    big = json.dumps({"context": {"blob": "x" * 70_000}}).encode()
    content = iter([big[:40_000], big[40_000:]]) if chunked else big
    r = httpx.post(f"{server.http_url}{EVALUATE}", content=content, headers=JSON)
    assert (r.status_code, r.json()["code"]) == (429, "resource_exhausted")
    assert "65536-byte limit (max_message_bytes)" in r.json()["message"]
    fits = _call(server, EVALUATE, {**_refund(20), "context": {"blob": "x" * 1000}})
    assert fits.status_code == 200


# --- authentication ------------------------------------------------------------------------


PEOPLE = {
    "bot-token": ("support-bot", "agent"),
    "alice-token": ("alice", "reviewer:finance"),
    "dave-token": ("dave", "reviewer:comms"),
}


@pytest.fixture
def secured(make_server, tmp_path: Path) -> ServerHandle:
    people = {token: (who, [role]) for token, (who, role) in PEOPLE.items()}
    return make_server(auth={"tokens_file": write_tokens(tmp_path, people)})


def _denials(server: ServerHandle) -> list:
    entries = server.call(server.running.app.store.read_audit(1, 10_000))
    return [e for e in entries if e.type == "access.denied"]


@pytest.mark.parametrize(
    ("authorization", "message"),
    [(None, "missing bearer token"), ("Bearer nope", "unknown token"), ("Basic abc", "Bearer")],
)
def test_unauthenticated_calls_are_refused_and_audited(secured, authorization, message):
    headers = dict(JSON) if authorization is None else {**JSON, "Authorization": authorization}
    # Malformed JSON too: a caller without a token learns nothing about the request.
    r = httpx.post(f"{secured.http_url}{EVALUATE}", content=b'{"parms": 1}', headers=headers)
    assert (r.status_code, r.json()["code"]) == (401, "unauthenticated")
    assert message in r.json()["message"]
    denied = _denials(secured)[-1]
    assert denied.payload["method"] == "signoff.v1.DecisionService/Evaluate"
    assert "nope" not in str(denied.payload)


def test_a_valid_token_is_served_and_the_wrong_role_denied_and_audited(secured):
    ok = httpx.post(
        f"{secured.http_url}{EVALUATE}",
        json=_refund(750, who="support-bot"),
        headers={**JSON, "Authorization": "Bearer bot-token"},
    )
    assert ok.status_code == 200
    act = {"reviewId": ok.json()["reviewId"], "verdict": "VERDICT_APPROVE", "expectedVersion": "1"}
    r = httpx.post(
        f"{secured.http_url}{SUBMIT}",
        json=act,
        headers={**JSON, "Authorization": "Bearer dave-token"},
    )
    assert (r.status_code, r.json()["code"]) == (403, "permission_denied")
    assert "reviewer:finance" in r.json()["message"]
    assert _denials(secured)[-1].actor == "dave"
    r = httpx.post(
        f"{secured.http_url}{SUBMIT}",
        json=act,
        headers={**JSON, "Authorization": "Bearer alice-token"},
    )
    assert r.json()["state"] == "REVIEW_STATE_APPROVED"


def test_a_stream_without_a_token_ends_unauthenticated_and_is_audited(secured):
    body = _envelope(b'{"reviewId": "x"}')
    with httpx.stream("POST", f"{secured.http_url}{WATCH}", content=body, headers=STREAM_JSON) as r:
        assert Frames(r).end()["error"]["code"] == "unauthenticated"
    assert _denials(secured)[-1].payload["method"] == "signoff.v1.ReviewService/WatchReview"


def test_dev_mode_answers_only_requests_addressed_to_localhost(server):
    # DNS rebinding: a page on evil.example reaching 127.0.0.1 still sends its own Host.
    evil = httpx.post(
        f"{server.http_url}{EVALUATE}", json=_refund(20), headers={**JSON, "Host": "evil.example"}
    )
    assert evil.status_code == 403
    port = server.http_url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        ok = httpx.post(f"{server.http_url}{EVALUATE}", json=_refund(20), headers={"Host": host})
        assert ok.status_code == 200, host


def test_with_authentication_any_host_is_served(secured):
    r = httpx.get(f"{secured.http_url}/healthz", headers={"Host": "signoff.example.com"})
    assert r.status_code == 200


# --- console files and health --------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/reviews/abc", "/audit", "/index.html"])
def test_console_routes_get_index_html_with_the_security_headers(server, path):
    r = httpx.get(f"{server.http_url}{path}")
    assert r.status_code == 200
    assert r.content == INDEX
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache"
    for name, value in SECURITY.items():
        assert r.headers[name] == value


@pytest.mark.parametrize(
    "target",
    [
        "/assets/../../http_server.py",
        "/../../../pyproject.toml",
        "/assets/%2e%2e/%2e%2e/http_server.py",
        "/%2e%2e%2f%2e%2e%2fhttp_server.py",
        "/assets/..%5c..%5chttp_server.py",
        "/assets/missing-1234.js",
        "/assets/",
    ],
)
def test_traversal_and_missing_assets_are_not_found(server, target):
    # http.client sends the target as written; httpx would resolve the dot segments first.
    host, port = server.http_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", target)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    assert r.status == 404
    assert b"import" not in body
    assert r.getheader("x-content-type-options") == "nosniff"


async def _denied(method: str, who: str, message: str, peer: str) -> None:
    raise AssertionError("no method, so nobody is denied")


async def test_hashed_assets_are_immutable_and_nothing_else_leaves_the_directory(tmp_path):
    static = tmp_path / "static"
    (static / "assets").mkdir(parents=True)
    (static / "sub").mkdir()
    (static / "index.html").write_text("<p>console</p>")
    (static / "assets" / "app-3f2a9c.js").write_text("console.log(1)")
    (static / "favicon.svg").write_text("<svg/>")
    (tmp_path / "secret.txt").write_text("secret")
    (static / "assets" / "leak.js").symlink_to(tmp_path / "secret.txt")
    connect = ConnectHandler([], Guard(DevAuthenticator(), _denied), 1024)
    http = HttpServer(connect, grace=0, static=static)
    port = await http.start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            js = await client.get("/assets/app-3f2a9c.js")
            assert js.text == "console.log(1)"
            assert js.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert "javascript" in js.headers["content-type"]
            assert js.headers["x-content-type-options"] == "nosniff"
            icon = await client.get("/favicon.svg")
            assert icon.headers["cache-control"] == "no-cache"
            assert (await client.get("/assets/leak.js")).status_code == 404  # symlink out
            assert (await client.get("/assets")).status_code == 404  # no listing
            sub = await client.get("/sub/")  # a directory is an app route, not a listing
            assert (sub.text, sub.headers["cache-control"]) == ("<p>console</p>", "no-cache")
            (static / "index.html").unlink()
            missing = await client.get("/reviews/abc")
            assert missing.status_code == 404
            assert "not built" in missing.text
    finally:
        await http.stop()


def test_healthz(server):
    r = httpx.get(f"{server.http_url}/healthz")
    assert (r.status_code, r.text.strip()) == (200, "ok")
    assert httpx.head(f"{server.http_url}/healthz").status_code == 200
    assert httpx.delete(f"{server.http_url}/healthz").status_code == 405


def test_an_empty_http_listen_opens_no_http_port(make_server):
    server = make_server(http_listen="")
    assert server.running.http_port is None
    assert server.http_url is None


def test_a_taken_http_port_stops_start_up(make_server):
    first = make_server()
    with pytest.raises(OSError, match="cannot listen on http_listen"):
        make_server(http_listen=f"127.0.0.1:{first.running.http_port}")


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("127.0.0.1:8080", None),
        ("[::1]:0", None),
        ("", None),
        ("8080", "http_listen (SIGNOFF_HTTP_LISTEN): must be HOST:PORT"),
        ("localhost:80000", "port 0-65535, or empty for no HTTP port"),
    ],
)
def test_http_listen_setting(value, error):
    if error is None:
        assert load_settings({"http_listen": value}).http_listen == value
    else:
        with pytest.raises(ConfigError, match=re.escape(error)):
            load_settings({"http_listen": value})


def test_dev_mode_refuses_an_http_port_beyond_loopback(tmp_path):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(
        ConfigError, match=r"http_listen 0\.0\.0\.0:8080: .* only listens on loopback"
    ):
        authenticator_for(Settings(http_listen="0.0.0.0:8080", db=db))
    authenticator_for(Settings(http_listen="", db=db))  # no HTTP port, nothing to refuse


async def test_serve_logs_the_console_url(tmp_path: Path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "signoff.cli.main", "serve", "--listen", "127.0.0.1:0",
        "--http-listen", "127.0.0.1:0", "--policies", str(EXAMPLE_POLICIES),
        "--db", f"sqlite:///{tmp_path / 'db.sqlite'}", "--log-format", "json",
        stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    assert proc.stderr is not None
    url = None
    while url is None:
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        assert line, "server exited before it started"
        if '"console.ready"' in line:
            url = json.loads(line)["url"]
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{url}healthz")).text.strip() == "ok"
    proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(proc.stderr.read(), 60)
    assert await proc.wait() == 0
