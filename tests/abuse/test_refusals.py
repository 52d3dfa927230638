"""Floods of refused calls: they are counted into a few audit entries, and each peer address
is rate-limited before any credential is looked at (issue 19, "Audit flooding without a
token")."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from signoff import pb
from signoff.settings.model import Settings
from signoff_client._gen import audit_pb2_grpc, decision_pb2_grpc

from ..e2e.conftest import EXAMPLE_POLICIES, ServerHandle, ServerThread, write_tokens
from .conftest import SERVE_PEOPLE, Serve

CALLS = 2000
EVALUATE = "signoff.v1.DecisionService/Evaluate"


def _request() -> pb.common.ActionRequest:
    req = pb.common.ActionRequest(request_id="r1")
    req.action.name = "refund.issue"
    return req


async def _bad_token_calls(target: str, calls: int, token: str = "nope") -> list[grpc.StatusCode]:
    codes: list[grpc.StatusCode] = []
    async with grpc.aio.insecure_channel(target) as channel:
        evaluate = decision_pb2_grpc.DecisionServiceStub(channel).Evaluate
        md = (("authorization", f"Bearer {token}"),)

        async def one() -> None:
            try:
                await evaluate(_request(), metadata=md, timeout=30)
            except grpc.aio.AioRpcError as exc:
                codes.append(exc.code())

        for start in range(0, calls, 50):
            await asyncio.gather(*(one() for _ in range(min(50, calls - start))))
    return codes


async def test_2000_bad_token_calls_leave_a_handful_of_audit_entries(serve: Serve):
    served = serve({"denials": {"interval": 3600}})
    codes = await _bad_token_calls(served.grpc_target, CALLS)
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * CALLS
    served.stop()  # the summary of the repeats is written at shutdown
    denied = [e for e in await served.audit() if e.type == "access.denied"]
    assert 1 <= len(denied) <= 3, [e.payload for e in denied]
    assert sum(e.payload["count"] for e in denied) == CALLS
    first = denied[0].payload
    assert (first["method"], first["peer"], first["count"]) == (EVALUATE, "127.0.0.1", 1)
    assert "unknown token" in first["error"]
    summary = denied[-1].payload
    assert summary["count"] == CALLS - 1
    assert summary["first"] <= summary["last"]
    assert "nope" not in str([e.payload for e in denied])  # tokens never reach the log


class MovableLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock the test moves: its timers (the denials' interval is an
    `asyncio.sleep`) fire when the test says, not when the machine gets round to it."""

    def __init__(self) -> None:
        super().__init__()
        self.offset = 0.0

    def time(self) -> float:
        """The loop's clock: monotonic time plus what the test has added."""
        return super().time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward (from any thread; the loop wakes up and runs what is due)."""

        def move() -> None:
            self.offset += seconds

        self.call_soon_threadsafe(move)


class MovableServerThread(ServerThread):
    """A server in its own thread, on a loop whose clock the test moves."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.loop.close()
        self.loop: MovableLoop = MovableLoop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)


@pytest.fixture
def movable_server(tmp_path: Path) -> Iterator[tuple[ServerHandle, MovableLoop]]:
    """A server whose refusals are summed over an hour of its loop's clock."""
    settings = Settings(
        state_dir=tmp_path,
        policies=EXAMPLE_POLICIES,
        db=f"sqlite:///{tmp_path / 'signoff.db'}",
        listen="127.0.0.1:0",
        http_listen="",
        shutdown_grace=0.0,
        audit={"create_key": True},
        auth={"tokens_file": write_tokens(tmp_path, SERVE_PEOPLE)},
        limits={"denials": {"interval": 3600}},
    )
    thread = MovableServerThread(settings)
    handle = thread.start()
    try:
        yield handle, thread.loop
    finally:
        thread.stop(handle)


async def test_the_summary_is_written_on_the_interval(movable_server):
    server, loop = movable_server
    await _bad_token_calls(server.target, 5)
    async with grpc.aio.insecure_channel(server.target) as channel:
        query = audit_pb2_grpc.AuditServiceStub(channel).QueryAudit
        md = (("authorization", "Bearer auditor-token"),)
        ask = pb.audit.QueryAuditRequest(filter=pb.audit.AuditFilter(types=["access.denied"]))

        async def counts() -> list[int]:
            page = await query(ask, metadata=md, timeout=30)
            return sorted(json.loads(e.payload_json)["count"] for e in page.entries)

        # The first refusal is written as it happens (before its caller hears of it); the
        # four repeats wait for the interval's end, which the stopped clock keeps away.
        assert await counts() == [1]
        loop.advance(3600)

        async def summed() -> list[int]:
            while sum(now := await counts()) < 5:
                pass  # each query is a turn of the server's loop, where the flush runs
            return now

        # The deadline only bounds a failure: without the interval's flush the repeats are
        # never written, however long the server runs.
        assert await asyncio.wait_for(summed(), 60) == [1, 4]


async def test_a_peer_over_its_pre_auth_rate_is_refused_before_its_token_is_read(serve: Serve):
    served = serve({"peers": {"rate": 1, "burst": 5}, "denials": {"interval": 3600}})
    codes = await _bad_token_calls(served.grpc_target, 5)
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 5
    # The bucket is empty: the next call is refused whatever its token, on either port.
    async with grpc.aio.insecure_channel(served.grpc_target) as channel:
        evaluate = decision_pb2_grpc.DecisionServiceStub(channel).Evaluate
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await evaluate(_request(), metadata=(("authorization", "Bearer bot-token"),))
    refused = caught.value
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "peer address 127.0.0.1" in (refused.details() or "")
    assert "limits.peers" in (refused.details() or "")
    async with httpx.AsyncClient(base_url=served.http_url) as client:
        r = await client.post(f"/{EVALUATE}", json={}, headers={"Authorization": "Bearer nope"})
    assert (r.status_code, r.json()["code"]) == (429, "resource_exhausted")
    assert int(r.headers["Retry-After"]) >= 1
    served.stop()
    denied = [e for e in await served.audit() if e.type == "access.denied"]
    # Only the five calls that got as far as their token were refused for it.
    assert sum(e.payload["count"] for e in denied) == 5
