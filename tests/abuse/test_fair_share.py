"""One identity cannot make another's call fail (issue 19 item 2): an agent that opens
WatchReview streams or unary calls without end is stopped at its own cap, naming it, while
another agent's WatchReview (what the client's `require()` waits on) and a reviewer's
WatchQueue and calls are still served."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import grpc
import pytest

from signoff import pb
from signoff_client._gen import decision_pb2_grpc, review_pb2_grpc

from ..e2e import conftest as e2e
from ..e2e.conftest import ServerHandle, write_tokens
from ..e2e.test_connect import Frames, _watch
from ..e2e.test_limits import _hold_writer, _until

# The real servers of tests/e2e (tests/abuse's own conftest serves subprocesses).
make_server = e2e.make_server
_any_free_http_port = e2e._any_free_http_port

PEOPLE = {
    "hog-token": ("hog-bot", ["agent"]),
    "calm-token": ("calm-bot", ["agent"]),
    "lead-token": ("lead", ["reviewer:finance-leads"]),
}


def _auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _refund(who: str, request_id: str = "", amount: float = 750) -> pb.common.ActionRequest:
    r = pb.common.ActionRequest(request_id=request_id)
    r.action.name = "refund.issue"
    r.action.params.update({"amount": amount, "currency": "EUR"})
    r.principal.id = who
    return r


def _connection(server: ServerHandle) -> grpc.Channel:
    """A channel on a connection of its own (one connection carries at most 100 streams)."""
    return grpc.insecure_channel(server.target, options=[("grpc.use_local_subchannel_pool", 1)])


def _review_of(server: ServerHandle, who: str) -> str:
    """A pending review of `who`'s own (750 EUR goes to finance-leads)."""
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    review_id = stub.Evaluate(_refund(who), metadata=_auth(f"{who.split('-')[0]}-token")).review_id
    assert review_id
    return review_id


@pytest.fixture
def tokens(tmp_path: Path) -> dict[str, Any]:
    return {"tokens_file": write_tokens(tmp_path, dict(PEOPLE))}


def test_a_thousand_watch_review_streams_of_one_agent_starve_no_one(make_server, tokens):
    server = make_server(auth=tokens)  # the default caps: 1000 streams, 100 per identity
    limiter = server.running.limiter
    hogs_review, calms_review = _review_of(server, "hog-bot"), _review_of(server, "calm-bot")
    # The hog spreads its streams over connections, as an attacker would, so that only the
    # server's limits stop it; the others come on connections of their own.
    hog_stubs = [review_pb2_grpc.ReviewServiceStub(_connection(server)) for _ in range(20)]
    reviews = review_pb2_grpc.ReviewServiceStub(_connection(server))
    watch = pb.review.WatchReviewRequest(review_id=hogs_review)
    held, refused = [], []
    for i in range(1000):
        stream = hog_stubs[i % 20].WatchReview(watch, metadata=_auth("hog-token"), timeout=60)
        try:
            assert next(stream).review_id == hogs_review  # open: its current state came first
            held.append(stream)
        except grpc.RpcError as err:
            refused.append(err)
    try:
        assert len(held) == 100
        assert len(refused) == 900
        assert {e.code() for e in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert refused[0].details() == (
            "hog-bot is at its limit of 100 open streams per identity "
            "(limits.max_streams_per_identity); retry in 1 s"
        )
        # Another agent waits on its own review, as require() does; a reviewer watches the
        # queue; on both ports.
        calm = reviews.WatchReview(
            pb.review.WatchReviewRequest(review_id=calms_review), metadata=_auth("calm-token")
        )
        assert next(calm).review_id == calms_review
        queue = reviews.WatchQueue(pb.review.WatchQueueRequest(), metadata=_auth("lead-token"))
        assert next(queue).HasField("server_time")  # its first snapshot
        with _watch(server, calms_review, who="calm-token") as connect:
            frames = Frames(connect)  # kept in a name: a dropped reader closes the stream
            assert frames.json()["state"] == "REVIEW_STATE_PENDING"
            # The hog's cap holds on the Connect port too: both ports share the count.
            with _watch(server, hogs_review, who="hog-token") as more:
                error = Frames(more).end()["error"]
            assert error["code"] == "resource_exhausted"
            assert "(limits.max_streams_per_identity)" in error["message"]
            assert limiter.streams_of == {"hog-bot": 100, "calm-bot": 2, "lead": 1}
        calm.cancel()
        queue.cancel()
    finally:
        for stream in held:
            stream.cancel()
    _until(server, lambda: limiter.streams == 0, "every stream is counted out")
    assert limiter.streams_of == {}  # nothing is kept for identities with no stream
    assert limiter.refusals["identity_streams"] == 901
    assert limiter.refusals["streams"] == 0


def test_one_agents_calls_in_flight_leave_room_for_everyone_else(make_server, tokens):
    # A small server: 20 calls at once, 2 per identity.
    server = make_server(auth=tokens, limits={"max_concurrent": 20})
    limiter = server.running.limiter
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    release = threading.Event()
    hold = _hold_writer(server, release)  # every decision stays in flight until released
    try:
        hog = [
            stub.Evaluate.future(
                _refund("hog-bot", f"hog-{i}", 20), metadata=_auth("hog-token"), timeout=60
            )
            for i in range(20)
        ]
        _until(
            server,
            lambda: limiter.calls_of.get("hog-bot") == 2 and limiter.refused == 18,
            "the hog holds its two slots and the rest of its calls are refused",
        )
        calm = stub.Evaluate.future(
            _refund("calm-bot", "calm", 20), metadata=_auth("calm-token"), timeout=60
        )
        _until(server, lambda: limiter.calls_of.get("calm-bot") == 1, "the calm agent is served")
    finally:
        release.set()
    hold.result(timeout=30)
    assert calm.result().decision_id
    outcomes = [f.exception() for f in hog]
    admitted = [f for f, e in zip(hog, outcomes, strict=True) if e is None]
    assert len(admitted) == 2
    refusals = {e.code(): e.details() for e in outcomes if e is not None}  # type: ignore[union-attr]
    assert refusals == {
        grpc.StatusCode.RESOURCE_EXHAUSTED: (
            "hog-bot is at its limit of 2 concurrent calls per identity "
            "(limits.max_concurrent_per_identity); retry in 0.1 s"
        )
    }
    # A reviewer's calls were never in the hog's way either.
    reviews = review_pb2_grpc.ReviewServiceStub(server.channel())
    reviews.ListReviews(pb.review.ListReviewsRequest(), metadata=_auth("lead-token"))
    _until(server, lambda: limiter.in_flight == 0, "every slot is given back")
    assert limiter.calls_of == {}
