"""The /metrics endpoint after known traffic: counts, histograms, the pending gauge and
audit commits, read the way Prometheus reads them."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from signoff import pb
from signoff_client._gen import decision_pb2_grpc, review_pb2_grpc

from .conftest import FakeClock, ServerHandle

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _scrape(server: ServerHandle) -> Samples:
    r = httpx.get(f"{server.http_url}/metrics", timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def _get(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def _evaluate(server: ServerHandle, action: str, amount: float = 0) -> pb.common.Decision:
    req = pb.common.ActionRequest()
    req.action.name = action
    req.action.params.update({"amount": amount, "currency": "EUR"})
    req.principal.id = "bot"
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    return stub.Evaluate(req, metadata=(("authorization", "Bearer bot"),))


def test_metrics_after_known_traffic(make_server, backend):
    clock = FakeClock()
    server = make_server(clock=clock)
    for amount in (120, 300):
        _evaluate(server, "refund.issue", amount)
    first, _ = (_evaluate(server, "refund.issue", 750) for _ in range(2))
    _evaluate(server, "refund.issue", 25_000)
    # Names no policy names share one series: agents cannot grow the label set.
    for name in ("zzz.one", "zzz.two", "made.up"):
        _evaluate(server, name)
    clock.advance(minutes=5)
    req = pb.review.SubmitReviewRequest(
        review_id=first.review_id, verdict=pb.review.VERDICT_APPROVE, expected_version=1
    )
    review_pb2_grpc.ReviewServiceStub(server.channel()).SubmitReview(
        req, metadata=(("authorization", "Bearer alice"),)
    )
    telemetry = server.running.app.telemetry
    server.call(telemetry.refresh_pending(server.running.app.store))

    before = server.running.app.store.stats
    m = _scrape(server)
    assert server.running.app.store.stats == before  # no commit while scraping

    decisions = "signoff_decisions_total"
    assert _get(m, decisions, outcome="AUTO_ALLOW", action="refund.*") == 2
    assert _get(m, decisions, outcome="REQUIRE_REVIEW", action="refund.*") == 2
    assert _get(m, decisions, outcome="DENY", action="refund.*") == 1
    assert _get(m, decisions, outcome="REQUIRE_REVIEW", action="other") == 3
    assert len([k for k in m if k[0] == decisions]) == 4
    assert _get(m, "signoff_decision_duration_seconds_count") == 8
    assert _get(m, "signoff_decision_duration_seconds_sum") > 0
    assert _get(m, "signoff_policy_duration_seconds_count") == 8
    assert (
        0
        < _get(m, "signoff_policy_duration_seconds_sum")
        < _get(m, "signoff_decision_duration_seconds_sum")
    )
    assert _get(m, "signoff_reviews_pending", group="finance") == 1
    assert _get(m, "signoff_reviews_pending", group="default") == 3
    resolved = {"group": "finance", "outcome": "APPROVED"}
    assert _get(m, "signoff_reviews_resolved_total", **resolved) == 1
    assert _get(m, "signoff_review_duration_seconds_count", **resolved) == 1
    assert _get(m, "signoff_review_duration_seconds_sum", **resolved) == 300
    assert _get(m, "signoff_review_duration_seconds_bucket", le="60", **resolved) == 0
    assert _get(m, "signoff_review_duration_seconds_bucket", le="300", **resolved) == 1
    # Every committed operation is in exactly one recorded group commit.
    assert _get(m, "signoff_audit_batch_size_sum") == before.ops
    assert _get(m, "signoff_audit_batch_size_count") == before.commits
    assert _get(m, "signoff_audit_append_duration_seconds_count") == before.commits
    assert before.commits >= 1


def test_a_group_whose_reviews_are_all_resolved_reads_zero(make_server):
    server = make_server()
    d = _evaluate(server, "made.up")
    telemetry, store = server.running.app.telemetry, server.running.app.store
    server.call(telemetry.refresh_pending(store))
    assert _get(_scrape(server), "signoff_reviews_pending", group="default") == 1
    req = pb.review.SubmitReviewRequest(
        review_id=d.review_id, verdict=pb.review.VERDICT_REJECT, expected_version=1
    )
    review_pb2_grpc.ReviewServiceStub(server.channel()).SubmitReview(
        req, metadata=(("authorization", "Bearer alice"),)
    )
    server.call(telemetry.refresh_pending(store))
    m = _scrape(server)
    assert _get(m, "signoff_reviews_pending", group="default") == 0
    assert _get(m, "signoff_reviews_resolved_total", group="default", outcome="REJECTED") == 1


def test_the_pending_gauge_follows_new_reviews_by_itself(make_server):
    server = make_server(telemetry={"pending_refresh": 0.05})
    _evaluate(server, "made.up")
    # The background refresher re-reads after a review opens; poll the scrape, as Prometheus.
    key = ("signoff_reviews_pending", frozenset({("group", "default")}))
    deadline = time.monotonic() + 20
    while _scrape(server).get(key) != 1:
        assert time.monotonic() < deadline, "the pending gauge never showed the new review"


def test_prometheus_off_serves_no_metrics(make_server):
    server = make_server(telemetry={"prometheus": False})
    assert server.running.app.telemetry.prometheus_page is None
    r = httpx.get(f"{server.http_url}/metrics", timeout=30)
    assert not r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "signoff_decisions_total" not in r.text


def test_without_an_http_port_there_is_no_prometheus_endpoint(make_server):
    server = make_server(http_listen="")
    assert server.running.app.telemetry.prometheus_page is None
    assert server.running.app.telemetry.metering is False  # no reader: nothing is recorded
