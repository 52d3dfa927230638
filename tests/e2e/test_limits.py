"""Limits and back-pressure against a real server: per-identity rates, concurrent calls,
deadlines that passed before a call was served, and what both transports and the Python
client make of a RESOURCE_EXHAUSTED with RetryInfo."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client.parser import text_string_to_metric_families

from signoff import pb
from signoff_client import AsyncClient, Client
from signoff_client._gen import decision_pb2_grpc, review_pb2_grpc
from signoff_client.errors import ResourceExhausted

from .conftest import ServerHandle, write_tokens
from .test_connect import Frames, _watch

EVALUATE = "/signoff.v1.DecisionService/Evaluate"
JSON = {"Content-Type": "application/json", "Connect-Protocol-Version": "1"}
PEOPLE = {
    "flood-token": ("flood-bot", ["agent"]),
    "calm-token": ("calm-bot", ["agent"]),
    "lead-token": ("lead", ["reviewer:finance-leads"]),
}
# One call per 10 s after a burst of 5; the tests that use it also stop the limiter's clock
# (_stop_clock), so nothing refills while they flood however slow the machine is.
SLOW_AGENTS = {"roles": {"agent": {"rate": 0.1, "burst": 5}}}


def _req(who: str, request_id: str = "", amount: float = 20) -> pb.common.ActionRequest:
    r = pb.common.ActionRequest(request_id=request_id)
    r.action.name = "refund.issue"
    r.action.params.update({"amount": amount, "currency": "EUR"})
    r.principal.id = who
    return r


def _auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _stub(server: ServerHandle) -> decision_pb2_grpc.DecisionServiceStub:
    return decision_pb2_grpc.DecisionServiceStub(server.channel())


def _decided(server: ServerHandle, who: str, request_id: str) -> bool:
    store = server.running.app.store
    return server.call(store.find_decision(who, request_id)) is not None


def _retry_delay(err: grpc.RpcError) -> float:
    """The RetryInfo delay of a failed call, read from its trailer as any gRPC client would."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "no grpc-status-details-bin trailer"
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    (detail,) = status.details
    info = error_details_pb2.RetryInfo()
    assert detail.Unpack(info), detail.type_url
    return info.retry_delay.ToNanoseconds() / 1e9


def _scrape(server: ServerHandle) -> dict[tuple[str, frozenset], float]:
    """The server's /metrics, by (name, labels)."""
    text = httpx.get(f"{server.http_url}/metrics", timeout=30).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _until(server: ServerHandle, condition: Callable[[], bool], what: str) -> None:
    """Wait for a condition of the server's state, checked once per turn of its loop (the
    deadline only bounds a failure: it is no guess of how long the server takes)."""
    deadline = time.monotonic() + 60
    while not server.call(_turn(condition)):
        assert time.monotonic() < deadline, f"timed out waiting until {what}"


async def _turn(condition: Callable[[], bool]) -> bool:
    return condition()


def _stop_clock(server: ServerHandle) -> None:
    """Stop the limiter's clock: buckets never refill, so what a test counts does not depend
    on how long its calls take."""
    stopped = time.monotonic()
    server.running.limiter.clock = lambda: stopped


def _stop_clock_until_refused(server: ServerHandle) -> None:
    """Stop the limiter's clock until it refuses a call, then let it run from that call on.

    Nothing refills before the refusal, however slow the machine (with a running clock, a
    call that came a token's refill time after the previous one was not refused: the flake
    of issue 19); after it, a client that waits the delay it was given finds the token."""
    limiter = server.running.limiter
    stopped = last = time.monotonic()

    def clock() -> float:
        nonlocal last
        now = time.monotonic()
        if not limiter.refused:
            last = now  # the reading of what may be the call to be refused
            return stopped
        return stopped + (now - last)

    limiter.clock = clock


@pytest.fixture
def tokens(tmp_path: Path) -> dict[str, Any]:
    return {"tokens_file": write_tokens(tmp_path, dict(PEOPLE))}


# --- per-identity rates --------------------------------------------------------------------


def test_a_flood_from_one_identity_is_refused_with_retry_info_while_others_are_served(
    make_server, tokens
):
    server = make_server(auth=tokens, limits=SLOW_AGENTS)
    _stop_clock(server)
    stub = _stub(server)
    outcomes: list[grpc.StatusCode] = []
    delays: list[float] = []
    messages: list[str] = []

    def flood(i: int) -> None:
        try:
            stub.Evaluate(_req("flood-bot", f"flood-{i}"), metadata=_auth("flood-token"))
            outcomes.append(grpc.StatusCode.OK)
        except grpc.RpcError as err:
            outcomes.append(err.code())
            delays.append(_retry_delay(err))
            messages.append(err.details())

    with ThreadPoolExecutor(4) as pool:
        flooding = [pool.submit(flood, i) for i in range(60)]
        # While the flood runs, another agent gets every one of its calls through.
        calm = [stub.Evaluate(_req("calm-bot"), metadata=_auth("calm-token")) for _ in range(5)]
        for f in flooding:
            f.result()
    assert len(calm) == 5
    assert outcomes.count(grpc.StatusCode.OK) == 5  # the burst
    assert outcomes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 55
    assert all(0 < d <= 10.0 for d in delays)
    assert all("for flood-bot exceeded; retry in" in m for m in messages)
    assert server.running.limiter.refused == 55
    # A refused call was not evaluated: no decision, no audit entry under its request_id.
    served = sum(_decided(server, "flood-bot", f"flood-{i}") for i in range(60))
    assert served == 5
    metrics = _scrape(server)
    assert metrics[("signoff_rpc_refused_total", frozenset({("reason", "rate")}))] == 55
    assert metrics[("signoff_rpc_refused_total", frozenset({("reason", "concurrency")}))] == 0
    assert metrics[("signoff_rpc_in_flight", frozenset({("kind", "unary")}))] == 0


def test_a_role_override_leaves_other_roles_unlimited(make_server, tokens):
    server = make_server(auth=tokens, limits=SLOW_AGENTS)
    _stop_clock(server)
    decisions = _stub(server)
    for _ in range(5):
        decisions.Evaluate(_req("flood-bot"), metadata=_auth("flood-token"))
    with pytest.raises(grpc.RpcError) as err:
        decisions.Evaluate(_req("flood-bot"), metadata=_auth("flood-token"))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # The reviewer's console is not an agent: however busy the agents, it is not starved.
    reviews = review_pb2_grpc.ReviewServiceStub(server.channel())
    for _ in range(20):
        reviews.ListReviews(pb.review.ListReviewsRequest(), metadata=_auth("lead-token"))


def test_connect_rate_limited_is_429_with_retry_info_details(make_server, tokens):
    server = make_server(auth=tokens, limits=SLOW_AGENTS)
    _stop_clock(server)
    headers = {**JSON, "Authorization": "Bearer flood-token"}
    body = {
        "principal": {"id": "flood-bot"},
        "action": {"name": "refund.issue", "params": {"amount": 20, "currency": "EUR"}},
    }
    url = f"{server.http_url}{EVALUATE}"
    answers = [httpx.post(url, json=body, headers=headers, timeout=30) for _ in range(6)]
    assert [r.status_code for r in answers] == [200] * 5 + [429]
    refused = answers[-1]
    error = refused.json()
    assert error["code"] == "resource_exhausted"
    assert "retry in" in error["message"]
    (detail,) = error["details"]
    assert detail["type"] == "google.rpc.RetryInfo"
    value = detail["value"]
    assert not value.endswith("=")  # Connect's base64 has no padding
    info = error_details_pb2.RetryInfo.FromString(base64.b64decode(value + "=" * (-len(value) % 4)))
    assert 0 < info.retry_delay.ToNanoseconds() / 1e9 <= 10
    assert 1 <= int(refused.headers["Retry-After"]) <= 10
    # gRPC and Connect share the bucket: the same identity is refused on the other port too.
    with pytest.raises(grpc.RpcError) as err:
        _stub(server).Evaluate(_req("flood-bot"), metadata=_auth("flood-token"))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


# --- deadlines -----------------------------------------------------------------------------


def test_a_call_whose_deadline_passed_before_it_was_served_is_not_evaluated(make_server):
    server = make_server()  # dev mode: the same rules
    stub = _stub(server)
    stub.Evaluate(_req("bot"))  # connected, so the next call only waits for the server
    release = threading.Event()
    server.loop.call_soon_threadsafe(release.wait)  # the server's loop is stuck until set
    try:
        with pytest.raises(grpc.RpcError) as err:
            stub.Evaluate(_req("bot", "too-late"), timeout=0.2)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        release.set()
    # The server gets to the call 0.2 s too late and does not decide it (grpcio drops such a
    # call before any handler; the Guard refuses one that reaches it: tests/unit).
    assert stub.Evaluate(_req("bot", "after")).decision_id  # the server has caught up
    assert not _decided(server, "bot", "too-late")
    retry = stub.Evaluate(_req("bot", "too-late"))
    assert not retry.replayed  # a retry is a fresh decision: the late call never was one


def _hold_writer(server: ServerHandle, release: threading.Event) -> Future[Any]:
    """Hold the store's writer (both backends) until `release` is set, and return once it is
    held: writes submitted from now on wait in its queue."""
    holding = threading.Event()

    def wait() -> None:
        holding.set()
        release.wait()

    if server.backend == "sqlite":
        hold: Any = lambda _conn: wait()  # noqa: E731 (runs in the writer thread)
    else:

        async def hold(_conn: Any) -> None:
            await asyncio.to_thread(wait)

    held = asyncio.run_coroutine_threadsafe(server.running.app.store.maintenance(hold), server.loop)
    assert holding.wait(timeout=10), "the writer did not start the hold"
    return held


def _flush_writer(server: ServerHandle) -> None:
    """Return once every write queued so far is done (maintenance keeps its queue place)."""
    if server.backend == "sqlite":
        server.call(server.running.app.store.maintenance(lambda _conn: None))
    else:

        async def nothing(_conn: Any) -> None:
            return None

        server.call(server.running.app.store.maintenance(nothing))


def _decision_entries(server: ServerHandle) -> int:
    entries = server.call(server.running.app.store.read_audit(1, 10_000))
    return sum(e.type == "decision" for e in entries)


def test_a_deadline_that_passes_while_the_decision_waits_for_the_database(make_server, backend):
    server = make_server(backend=backend)
    stub = _stub(server)
    stub.Evaluate(_req("bot"))
    before = _decision_entries(server)
    release = threading.Event()
    hold = _hold_writer(server, release)
    try:
        with pytest.raises(grpc.RpcError) as err:
            stub.Evaluate(_req("bot", "slow"), timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        release.set()
    hold.result(timeout=30)
    limiter = server.running.limiter
    _until(server, lambda: limiter.in_flight == 0, "the late call has left the server")
    _flush_writer(server)
    # Two endings are possible, and both are safe. The write got far enough: the decision
    # is stored although its caller was told DEADLINE_EXCEEDED, and a retry with the same
    # request_id gets it back, replayed. Or it was dropped from the writer's queue with the
    # cancelled call: the retry is decided afresh. Either way there is exactly one decision.
    stored = _decided(server, "bot", "slow")
    assert stub.Evaluate(_req("bot", "slow")).replayed == stored
    assert _decision_entries(server) == before + 1


# --- concurrent calls ----------------------------------------------------------------------


def test_calls_beyond_max_concurrent_are_refused_at_once_and_slots_come_back(make_server):
    server = make_server(limits={"max_concurrent": 2})
    limiter = server.running.limiter
    stub = _stub(server)
    release = threading.Event()
    hold = _hold_writer(server, release)  # every decision stays in flight until released
    try:
        # Two identities (a dev token is its identity): one alone may hold only one slot.
        held = [
            stub.Evaluate.future(_req(f"bot{i}", f"held-{i}"), timeout=30, metadata=_auth(f"d{i}"))
            for i in range(2)
        ]
        _until(server, lambda: limiter.in_flight == 2, "both calls hold a slot")
        with pytest.raises(grpc.RpcError) as err:
            stub.Evaluate(_req("other", "refused"), timeout=30, metadata=_auth("other"))
        # Refused at once, not queued behind the two: queued, it would wait for the writer,
        # which is held until after this call, and end DEADLINE_EXCEEDED.
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "server is at its limit of 2 concurrent calls (limits.max_concurrent)" in (
            err.value.details()
        )
        assert _retry_delay(err.value) == pytest.approx(0.1)
        # The Connect port shares the slots.
        r = httpx.post(
            f"{server.http_url}{EVALUATE}",
            json={"principal": {"id": "web"}, "action": {"name": "refund.issue"}},
            headers={**JSON, "Authorization": "Bearer web"},
            timeout=30,
        )
        assert (r.status_code, r.json()["code"]) == (429, "resource_exhausted")
    finally:
        release.set()
    hold.result(timeout=30)
    assert all(f.result().decision_id for f in held)
    _until(server, lambda: limiter.in_flight == 0, "the slots are given back")
    assert not _decided(server, "other", "refused")
    assert stub.Evaluate(_req("other", "refused")).decision_id


# --- the Python client ---------------------------------------------------------------------


def test_the_client_waits_as_retry_info_asks_when_it_fits_its_timeout(make_server):
    server = make_server(limits={"rate": {"rate": 4, "burst": 1}})  # a token every 0.25 s
    _stop_clock_until_refused(server)
    with Client(server.target, token="bot", timeout=10) as client:
        client.evaluate("refund.issue", {"amount": 5}, principal="bot")
        started = time.monotonic()
        second = client.evaluate("refund.issue", {"amount": 5}, principal="bot")
        waited = time.monotonic() - started
    assert second.decision_id
    assert server.running.limiter.refused == 1  # the server refused it once, and not again
    assert waited >= 0.25  # the client waited the whole delay it was given


def _record_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The seconds of each time.sleep of the test's own thread (the client's waits), from now."""
    slept: list[float] = []
    sleep = time.sleep

    def recorded(seconds: float) -> None:
        if threading.current_thread() is threading.main_thread():
            slept.append(seconds)
        sleep(seconds)

    monkeypatch.setattr(time, "sleep", recorded)
    return slept


def test_the_client_fails_with_the_delay_when_it_does_not_fit(make_server, monkeypatch):
    server = make_server(limits={"rate": {"rate": 0.01, "burst": 1}})  # a token every 100 s
    _stop_clock(server)
    with Client(server.target, token="bot", timeout=10) as client:
        client.evaluate("refund.issue", {"amount": 5}, principal="bot")
        slept = _record_sleeps(monkeypatch)
        with pytest.raises(ResourceExhausted) as err:
            client.evaluate("refund.issue", {"amount": 5}, principal="bot")
    # No pointless wait for a delay that cannot fit: waiting it would take 100 s.
    assert slept == []
    assert err.value.retry_after == pytest.approx(100)
    assert "retry in" in err.value.message
    assert any("only" in note and "timeout were left" in note for note in err.value.__notes__)
    assert server.running.limiter.refused == 1  # and no retry was sent in vain


def test_a_resource_exhausted_without_retry_info_is_not_retried(make_server):
    server = make_server(max_message_bytes=64 * 1024)
    with (
        Client(server.target, token="bot", timeout=5) as client,
        pytest.raises(ResourceExhausted) as err,
    ):
        client.evaluate("refund.issue", {"note": "x" * 100_000}, principal="bot")
    assert err.value.retry_after is None


def test_streams_beyond_max_streams_are_refused_and_their_place_comes_back(make_server):
    server = make_server(limits={"max_streams": 1})
    limiter = server.running.limiter
    review_id = _stub(server).Evaluate(_req("bot", amount=750)).review_id
    assert review_id
    reviews = review_pb2_grpc.ReviewServiceStub(server.channel())
    watch = pb.review.WatchReviewRequest(review_id=review_id)
    first = reviews.WatchReview(watch, timeout=30)
    assert next(first).review_id == review_id  # open: the current state came first
    with pytest.raises(grpc.RpcError) as err:  # another identity: the server-wide cap
        next(reviews.WatchReview(watch, timeout=30, metadata=_auth("other")))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "server is at its limit of 1 open streams (limits.max_streams)" in err.value.details()
    assert _retry_delay(err.value) == pytest.approx(1.0)
    metrics = _scrape(server)
    assert metrics[("signoff_rpc_in_flight", frozenset({("kind", "stream")}))] == 1
    assert metrics[("signoff_rpc_refused_total", frozenset({("reason", "streams")}))] == 1
    # Unary calls are not counted against streams.
    assert reviews.GetReview(pb.review.GetReviewRequest(review_id=review_id)).review_id
    first.cancel()
    _until(server, lambda: limiter.streams == 0, "the cancelled stream is counted out")
    again = reviews.WatchReview(watch, timeout=30)
    assert next(again).review_id == review_id
    again.cancel()


def test_a_connect_stream_beyond_max_streams_ends_with_retry_info(make_server):
    server = make_server(limits={"max_streams": 1})
    review_id = _stub(server).Evaluate(_req("bot", amount=750)).review_id
    with _watch(server, review_id) as held:
        held_frames = Frames(held)  # kept in a name: a dropped reader closes the stream
        assert held_frames.json()["state"] == "REVIEW_STATE_PENDING"
        with _watch(server, review_id, who="other") as refused:
            assert refused.status_code == 200  # Connect streams report errors at their end
            error = Frames(refused).end()["error"]
    assert error["code"] == "resource_exhausted"
    assert "(limits.max_streams)" in error["message"]
    (detail,) = error["details"]
    assert detail["type"] == "google.rpc.RetryInfo"
    value = detail["value"] + "=" * (-len(detail["value"]) % 4)
    assert error_details_pb2.RetryInfo.FromString(base64.b64decode(value)).retry_delay.seconds == 1


async def test_the_async_client_waits_as_retry_info_asks(make_server):
    server = make_server(limits={"rate": {"rate": 4, "burst": 1}})
    _stop_clock_until_refused(server)
    async with AsyncClient(server.target, token="bot", timeout=10) as client:
        await client.evaluate("refund.issue", {"amount": 5}, principal="bot")
        second = await client.evaluate("refund.issue", {"amount": 5}, principal="bot")
    assert second.decision_id
    assert server.running.limiter.refusals["rate"] == 1
