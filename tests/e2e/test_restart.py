"""SIGKILL the server while reviews are pending and agents watch; nothing may be lost."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import sys
from pathlib import Path

import grpc
import pytest

from signoff import pb
from signoff.core.audit import GENESIS, AuditEntry, verify_chain
from signoff.store.sqlite.store import SqliteStore
from signoff_client._gen import decision_pb2_grpc, review_pb2_grpc

from .conftest import EXAMPLE_POLICIES, FakeClock

R = pb.review
FINAL = {R.REVIEW_STATE_APPROVED, R.REVIEW_STATE_REJECTED, R.REVIEW_STATE_MODIFIED}
CYCLES = 3  # kill/restart rounds
PER_CYCLE = 4  # reviews opened (and watched) before each kill


def _md(who: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {who}"),)


async def _serve(db: Path, listen: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "signoff.cli.main", "serve", "--listen", listen,
        "--policies", str(EXAMPLE_POLICIES), "--db", f"sqlite:///{db}", "--log-format", "json",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        assert line, "server exited before it started"
        m = re.search(r'"server.started".*"listen": "([^"]+)"', line)
        if m:
            asyncio.get_running_loop().create_task(proc.stderr.read())  # keep the pipe drained
            return proc, m.group(1)


async def _watch_until_final(target: str, review_id: str) -> tuple[int, int]:
    """Watch a review across server deaths; return (final state, reconnects)."""
    reconnects = 0
    while True:
        try:
            async with grpc.aio.insecure_channel(target) as ch:
                stub = review_pb2_grpc.ReviewServiceStub(ch)
                call = stub.WatchReview(
                    R.WatchReviewRequest(review_id=review_id), metadata=_md("bot")
                )
                async for r in call:
                    if r.state in FINAL:
                        return r.state, reconnects
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
        reconnects += 1
        await asyncio.sleep(0.05)  # reconnect backoff, as a client library does


async def test_pending_reviews_and_watchers_survive_sigkill(tmp_path: Path):
    db = tmp_path / "signoff.db"
    proc, target = await _serve(db, "127.0.0.1:0")
    watchers: dict[str, asyncio.Task[tuple[int, int]]] = {}
    approved_after_restart = 0
    try:
        for _ in range(CYCLES):
            async with grpc.aio.insecure_channel(target) as ch:
                decide = decision_pb2_grpc.DecisionServiceStub(ch).Evaluate
                for i in range(PER_CYCLE):
                    req = pb.common.ActionRequest(request_id=f"{len(watchers)}-{i}")
                    req.action.name = "refund.issue"
                    req.action.params.update({"amount": 750 + len(watchers)})
                    d = await decide(req, metadata=_md("bot"))
                    watchers[d.review_id] = asyncio.create_task(
                        _watch_until_final(target, d.review_id)
                    )
            proc.kill()  # SIGKILL: no drain, no flush beyond what was acknowledged
            await proc.wait()
            proc, _ = await _serve(db, target)
            # Every review opened so far is still there; the pending ones are still pending.
            async with grpc.aio.insecure_channel(target) as ch:
                stub = review_pb2_grpc.ReviewServiceStub(ch)
                for review_id in list(watchers)[-PER_CYCLE:]:
                    # wait_for_ready: the subchannel to this address is still backing off
                    # from the dead server (gRPC shares subchannels across channels).
                    r = await stub.GetReview(
                        R.GetReviewRequest(review_id=review_id), wait_for_ready=True, timeout=30
                    )
                    assert r.state == R.REVIEW_STATE_PENDING
                    approve = R.SubmitReviewRequest(
                        review_id=review_id,
                        verdict=R.VERDICT_APPROVE,
                        expected_version=r.version,
                    )
                    await stub.SubmitReview(approve, metadata=_md("alice"))
                    approved_after_restart += 1
                    # A second approval of the same version never lands.
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await stub.SubmitReview(approve, metadata=_md("carol"))
                    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        results = await asyncio.wait_for(asyncio.gather(*watchers.values()), 60)
    finally:
        proc.kill()
        await proc.wait()
    assert [state for state, _ in results] == [R.REVIEW_STATE_APPROVED] * len(watchers)
    assert approved_after_restart == CYCLES * PER_CYCLE
    assert all(reconnects >= 1 for _, reconnects in results)

    store = SqliteStore(db, FakeClock())
    await store.open()
    entries: list[AuditEntry] = await store.read_audit(1, 100_000)
    await store.close()
    assert verify_chain(entries, GENESIS, 1).ok
    approvals = [e.review_id for e in entries if e.type == "review.approved"]
    assert sorted(approvals) == sorted(watchers)  # exactly one approval each
    with sqlite3.connect(db) as conn:
        states = dict(conn.execute("SELECT state, count(*) FROM reviews GROUP BY state"))
    assert states == {"APPROVED": CYCLES * PER_CYCLE}
