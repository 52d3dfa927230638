"""Poisoned reads (issue 19, item 4): entries whose escaped encoding outgrows what a read can
send are refused before anything is stored, and reads page by bytes, so QueryAudit,
ExportAudit, ListReviews, WatchQueue and `signoff reviews list` keep working for everyone."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from signoff import pb
from signoff_client._gen import audit_pb2_grpc, decision_pb2_grpc, review_pb2_grpc

from ..e2e.conftest import ServerHandle, ServerThread
from .test_fields import _head, _md, _refund, _settings

A, R = pb.audit, pb.review
KiB = 1024
SMALL_PAGES = {"fields": {"max_page_bytes": 64 * KiB, "max_audit_entry_bytes": 64 * KiB}}


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Factory: a dev-mode server on SQLite with these settings; stopped at teardown."""
    started: list[tuple[ServerThread, ServerHandle]] = []

    def start(**overrides: Any) -> ServerHandle:
        st = ServerThread(_settings(tmp_path / f"s{len(started)}", **overrides))
        handle = st.start()
        started.append((st, handle))
        return handle

    yield start
    for st, handle in started:
        st.stop(handle)


def _evaluate(server: ServerHandle, req: pb.common.ActionRequest) -> pb.common.Decision:
    return decision_pb2_grpc.DecisionServiceStub(server.channel()).Evaluate(
        req, metadata=_md("bot")
    )


def _all_entries(server: ServerHandle, page_size: int = 1000) -> list[list[A.AuditEntry]]:
    """Every entry, page by page, following the tokens."""
    stub = audit_pb2_grpc.AuditServiceStub(server.channel())
    pages, token = [], ""
    while True:
        req = A.QueryAuditRequest(page_size=page_size, page_token=token)
        page = stub.QueryAudit(req, metadata=_md("ann"))
        pages.append(list(page.entries))
        if not (token := page.next_page_token):
            return pages


def _all_reviews(server: ServerHandle, page_size: int = 50) -> list[list[R.Review]]:
    stub = review_pb2_grpc.ReviewServiceStub(server.channel())
    pages, token = [], ""
    while True:
        req = R.ListReviewsRequest(page_size=page_size, page_token=token)
        page = stub.ListReviews(req, metadata=_md("alice"))
        pages.append(list(page.reviews))
        if not (token := page.next_page_token):
            return pages


def _export(server: ServerHandle) -> list[A.ExportChunk]:
    stub = audit_pb2_grpc.AuditServiceStub(server.channel())
    return list(stub.ExportAudit(A.ExportAuditRequest(), metadata=_md("ann")))


def _first_queue(server: ServerHandle) -> R.Queue:
    stream = review_pb2_grpc.ReviewServiceStub(server.channel()).WatchQueue(
        R.WatchQueueRequest(), metadata=_md("alice")
    )
    try:
        return next(iter(stream))
    finally:
        stream.cancel()


async def _cli_list(server: ServerHandle) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    env |= {"SIGNOFF_TOKEN": "alice", "SIGNOFF_SERVER": server.target}
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "signoff.cli.main", "reviews", "list"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def _poisoned(n_attrs: int, n_big: int) -> pb.common.ActionRequest:
    """A reviewed refund whose attributes, context and params are control characters."""
    req = _refund()
    req.resource.attributes.update({"k": "\x01" * n_attrs})
    req.principal.attributes.update({"k": "\x02" * n_attrs})
    req.context.update({"k": "\x03" * n_big})
    req.action.params.update({"note": "\x04" * n_big})
    return req


def test_the_control_character_poisoning_is_refused_and_every_read_still_works(serve) -> None:
    server = serve()
    # The attack: 800k control characters, 0.8 MB on the wire, 4.8 MB escaped.
    attack = _refund()
    attack.resource.attributes.update({"k": "\x01" * 800_000})
    with pytest.raises(grpc.RpcError) as err:
        _evaluate(server, attack)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("resource.attributes: ")
    # The most an attacker may send: every Struct filled with control characters up to its
    # bound, counted escaped (6 bytes each); accepted, and bounded.
    for _ in range(3):
        d = _evaluate(server, _poisoned(64 * KiB // 6 - 16, 256 * KiB // 6 - 64))
        assert d.outcome == pb.common.OUTCOME_REQUIRE_REVIEW
    entries = [e for page in _all_entries(server) for e in page]
    assert len({e.seq for e in entries}) == len(entries) == _head(server)
    chunks = _export(server)
    lines = b"".join(c.data for c in chunks).splitlines()
    assert sum(b'"type":"decision"' in line for line in lines) == 3
    assert max(len(c.data) for c in chunks) <= 2 * 1024 * KiB
    assert sum(len(p) for p in _all_reviews(server)) == 3
    assert len(_first_queue(server).reviews) == 3
    code, out, stderr = asyncio.run(_cli_list(server))
    assert code == 0, stderr
    assert out.count("refund.issue") == 3


def test_an_entry_over_the_maximum_is_refused_before_anything_is_stored(serve) -> None:
    server = serve(limits=SMALL_PAGES)
    before = _head(server)
    # 20k control characters are 20 KB on the wire, under every field bound, and 120 KB as
    # the audit entry stores them: over the 64 KiB maximum.
    req = _poisoned(10_000, 10)
    with pytest.raises(grpc.RpcError) as err:
        _evaluate(server, req)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("request: its audit entry would be ")
    assert "max_audit_entry_bytes" in err.value.details()
    assert _head(server) == before
    assert sum(len(p) for p in _all_reviews(server)) == 0
    # Under the maximum, the same request goes through.
    assert _evaluate(server, _poisoned(2_000, 10)).outcome == pb.common.OUTCOME_REQUIRE_REVIEW


BUDGET = 64 * KiB


@pytest.fixture
def large_reviews(serve) -> ServerHandle:
    """A server with 64 KiB pages holding six reviews of about 20 KB each."""
    server = serve(limits=SMALL_PAGES)
    for i in range(6):
        req = _refund(request_id=f"big-{i}")
        req.resource.attributes.update({"k": "x" * 20_000})
        _evaluate(server, req)
    return server


def test_query_audit_pages_stop_at_the_byte_budget_with_a_token(large_reviews) -> None:
    # A page of 1000 by count is cut by bytes; the tokens reach every entry once, in order.
    pages = _all_entries(large_reviews)
    assert len(pages) > 1
    assert all(sum(e.ByteSize() for e in p) <= BUDGET for p in pages)
    seqs = [e.seq for p in pages for e in p]
    assert seqs == sorted(set(seqs))
    assert len(seqs) == _head(large_reviews)


def test_list_reviews_pages_stop_at_the_byte_budget_with_a_token(large_reviews) -> None:
    pages = _all_reviews(large_reviews)
    assert len(pages) > 1
    assert all(sum(r.ByteSize() for r in p) <= BUDGET for p in pages)
    assert len({r.review_id for p in pages for r in p}) == 6


def test_watch_queue_shows_what_fits_the_byte_budget_and_counts_all(large_reviews) -> None:
    queue = _first_queue(large_reviews)
    assert 0 < len(queue.reviews) < 6
    assert queue.pending == 6
    assert queue.ByteSize() <= BUDGET + 1024


def test_export_chunks_stay_within_the_byte_budget(large_reviews) -> None:
    chunks = _export(large_reviews)
    assert len(chunks) > 1
    assert all(len(c.data) <= BUDGET for c in chunks)
    lines = b"".join(c.data for c in chunks).splitlines()
    assert sum(b'"type":"decision"' in line for line in lines) == 6


def test_a_review_that_would_outgrow_a_read_is_refused_unchanged(serve) -> None:
    # The review keeps the request and every act; an act's entry holds only the act. A
    # 4096-character comment of 3-byte characters (12 KiB) on a 54 KB request fits the entry
    # but would make the stored review larger than the 64 KiB maximum.
    server = serve(limits=SMALL_PAGES)
    req = _refund()
    req.resource.attributes.update({"k": "x" * 54_000})
    review_id = _evaluate(server, req).review_id
    stub = review_pb2_grpc.ReviewServiceStub(server.channel())
    act = R.SubmitReviewRequest(
        review_id=review_id, verdict=R.VERDICT_APPROVE, expected_version=1, comment="\u4e00" * 4096
    )
    before = _head(server)
    with pytest.raises(grpc.RpcError) as err:
        stub.SubmitReview(act, metadata=_md("alice"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("request: the review would be ")
    assert _head(server) == before
    got = stub.GetReview(R.GetReviewRequest(review_id=review_id), metadata=_md("ann"))
    assert (got.version, len(got.acts)) == (1, 0)
    # A short comment goes through.
    act.comment = "ok"
    assert stub.SubmitReview(act, metadata=_md("alice")).state == R.REVIEW_STATE_APPROVED
