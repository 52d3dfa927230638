"""OpenTelemetry end to end: a real server exports to a real OTLP/gRPC receiver, and its
/metrics endpoint is scraped after known traffic."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as msvc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as msvc_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tsvc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as tsvc_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from signoff import pb
from signoff_client._gen import decision_pb2_grpc, review_pb2_grpc

from .conftest import ServerHandle

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SECRET = "s3cr3t-param-value"


class Receiver:
    """An OTLP collector's two gRPC services, keeping what they receive."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.metric_names: set[str] = set()
        self.raw: list[bytes] = []
        self.changed = threading.Condition()
        self.port = 0

    def add_spans(self, request: tsvc.ExportTraceServiceRequest) -> None:
        with self.changed:
            self.raw.append(request.SerializeToString())
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    self.spans.extend(ss.spans)
            self.changed.notify_all()

    def add_metrics(self, request: msvc.ExportMetricsServiceRequest) -> None:
        with self.changed:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    self.metric_names.update(m.name for m in sm.metrics)
            self.changed.notify_all()

    def wait(self, ready: Callable[[], bool], timeout: float = 30) -> None:
        with self.changed:
            got = self.changed.wait_for(ready, timeout)
            assert got, f"not received in time; metrics so far: {sorted(self.metric_names)}"

    def named(self, name: str) -> list[Span]:
        with self.changed:
            return [s for s in self.spans if s.name == name]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class _Traces(tsvc_grpc.TraceServiceServicer):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def Export(self, request, context):
        self.receiver.add_spans(request)
        return tsvc.ExportTraceServiceResponse()


class _Metrics(msvc_grpc.MetricsServiceServicer):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def Export(self, request, context):
        self.receiver.add_metrics(request)
        return msvc.ExportMetricsServiceResponse()


@contextlib.contextmanager
def otlp_collector() -> Iterator[Receiver]:
    """An OTLP collector on a free port: the span and metric exports land in a Receiver."""
    got = Receiver()
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    tsvc_grpc.add_TraceServiceServicer_to_server(_Traces(got), server)
    msvc_grpc.add_MetricsServiceServicer_to_server(_Metrics(got), server)
    got.port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield got
    finally:
        server.stop(0)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with otlp_collector() as got:
        yield got


def _traced(make_server, receiver: Receiver, **telemetry) -> ServerHandle:
    settings = {
        "otlp_endpoint": receiver.endpoint,
        "export_interval": 0.1,
        "export_timeout": 2,
        **telemetry,
    }
    return make_server(telemetry=settings)


def _refund(amount: float, resource: str = "acct_1") -> pb.common.ActionRequest:
    req = pb.common.ActionRequest(justification=f"justified by {SECRET}")
    req.action.name = "refund.issue"
    req.action.params.update({"amount": amount, "currency": "EUR", "note": SECRET})
    req.context.update({"ticket": SECRET})
    req.principal.id = "bot"
    req.resource.id = resource
    return req


def _evaluate(server: ServerHandle, req: pb.common.ActionRequest, traceparent: str = ""):
    md = [("authorization", "Bearer bot")]
    if traceparent:
        md.append(("traceparent", traceparent))
    return decision_pb2_grpc.DecisionServiceStub(server.channel()).Evaluate(req, metadata=md)


def _attrs(span: Span) -> dict[str, str]:
    return {a.key: a.value.string_value for a in span.attributes}


def test_one_span_per_decision_continues_the_callers_trace(receiver, make_server):
    server = _traced(make_server, receiver)
    parent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    decisions = [_evaluate(server, _refund(a), parent) for a in (120, 750, 25_000)]
    receiver.wait(lambda: len(receiver.named("signoff.decision")) >= 3)
    spans = {_attrs(s)["signoff.decision_id"]: s for s in receiver.named("signoff.decision")}
    assert len(spans) == 3
    expected = [("AUTO_ALLOW", "small-refund"), ("REQUIRE_REVIEW", "large-refund")]
    expected.append(("DENY", "refund-over-hard-limit"))
    for d, (outcome, rule) in zip(decisions, expected, strict=True):
        span = spans[d.decision_id]
        assert span.trace_id.hex() == TRACE_ID
        assert span.parent_span_id.hex() == PARENT_ID
        assert span.kind == Span.SPAN_KIND_SERVER
        attrs = _attrs(span)
        assert attrs["signoff.action"] == "refund.issue"
        assert (attrs["signoff.outcome"], attrs["signoff.rule"]) == (outcome, rule)
        assert attrs["signoff.policy_version"] == d.policy_version
        assert span.end_time_unix_nano > span.start_time_unix_nano
    # The review the second decision opened is a child span of that decision.
    receiver.wait(lambda: len(receiver.named("signoff.review.opened")) == 1)
    (opened,) = receiver.named("signoff.review.opened")
    assert opened.parent_span_id == spans[decisions[1].decision_id].span_id
    assert _attrs(opened)["signoff.review_id"] == decisions[1].review_id
    # Params, context and justification never leave in a span, in any field.
    with receiver.changed:
        assert receiver.raw
        assert not [raw for raw in receiver.raw if SECRET.encode() in raw]
    # Metrics go to the same endpoint.
    receiver.wait(lambda: "signoff.decisions" in receiver.metric_names)
    assert "signoff.decision.duration" in receiver.metric_names


def test_each_decision_of_a_batch_is_a_span_in_the_callers_trace(receiver, make_server):
    server = _traced(make_server, receiver)
    batch = pb.decision.EvaluateBatchRequest(requests=[_refund(a) for a in (120, 750, 300)])
    md = (("authorization", "Bearer bot"), ("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"))
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    decided = stub.EvaluateBatch(batch, metadata=md).decisions
    receiver.wait(lambda: len(receiver.named("signoff.decision")) == 3)
    spans = receiver.named("signoff.decision")
    assert {_attrs(s)["signoff.decision_id"] for s in spans} == {d.decision_id for d in decided}
    assert {(s.trace_id.hex(), s.parent_span_id.hex()) for s in spans} == {(TRACE_ID, PARENT_ID)}


def test_the_callers_sampling_decision_and_tracestate_hold(receiver, make_server):
    server = _traced(make_server, receiver, trace_sample_ratio=0.0)
    unsampled = _evaluate(server, _refund(120), f"00-{TRACE_ID}-{PARENT_ID}-00")
    md = [
        ("authorization", "Bearer bot"),
        ("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),
        ("tracestate", "vendor=opaque"),
    ]
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    sampled = stub.Evaluate(_refund(120), metadata=md)
    _evaluate(server, _refund(120))  # no parent: a new trace, sampled at the ratio, 0
    receiver.wait(lambda: len(receiver.named("signoff.decision")) >= 1)
    server.running.app.telemetry.force_flush()  # anything else queued is out too
    (span,) = receiver.named("signoff.decision")
    assert _attrs(span)["signoff.decision_id"] == sampled.decision_id != unsampled.decision_id
    assert span.trace_state == "vendor=opaque"


def test_a_decision_without_traceparent_starts_its_own_trace(receiver, make_server):
    server = _traced(make_server, receiver)
    d = _evaluate(server, _refund(120))
    receiver.wait(lambda: len(receiver.named("signoff.decision")) == 1)
    (span,) = receiver.named("signoff.decision")
    assert _attrs(span)["signoff.decision_id"] == d.decision_id
    assert span.parent_span_id == b""
    assert span.trace_id.hex() != TRACE_ID


def test_connect_calls_continue_the_trace_of_their_traceparent_header(receiver, make_server):
    server = _traced(make_server, receiver)
    body = {"principal": {"id": "bot"}, "action": {"name": "email.send", "params": {}}}
    headers = {
        "Content-Type": "application/json",
        "Authorization": "Bearer bot",
        "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01",
    }
    r = httpx.post(f"{server.http_url}/signoff.v1.DecisionService/Evaluate", json=body,
                   headers=headers, timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    receiver.wait(lambda: len(receiver.named("signoff.decision")) == 1)
    (span,) = receiver.named("signoff.decision")
    assert (span.trace_id.hex(), span.parent_span_id.hex()) == (TRACE_ID, PARENT_ID)
    assert _attrs(span)["signoff.decision_id"] == r.json()["decisionId"]


def test_a_malformed_traceparent_is_ignored(receiver, make_server):
    server = _traced(make_server, receiver)
    d = _evaluate(server, _refund(120), traceparent="00-not-a-trace-01")
    assert d.outcome == pb.common.OUTCOME_AUTO_ALLOW
    receiver.wait(lambda: len(receiver.named("signoff.decision")) == 1)
    assert receiver.named("signoff.decision")[0].parent_span_id == b""


def test_review_transitions_are_spans_in_the_reviewers_trace(receiver, make_server):
    server = _traced(make_server, receiver)
    d = _evaluate(server, _refund(750))
    other = "0af7651916cd43dd8448eb211c80319c"
    req = pb.review.SubmitReviewRequest(
        review_id=d.review_id,
        verdict=pb.review.VERDICT_REJECT,
        expected_version=1,
        comment=f"no, {SECRET}",
    )
    md = (("authorization", "Bearer alice"), ("traceparent", f"00-{other}-{PARENT_ID}-01"))
    review_pb2_grpc.ReviewServiceStub(server.channel()).SubmitReview(req, metadata=md)
    receiver.wait(lambda: len(receiver.named("signoff.review.rejected")) == 1)
    (span,) = receiver.named("signoff.review.rejected")
    assert span.trace_id.hex() == other
    assert _attrs(span) == {
        "signoff.review_id": d.review_id,
        "signoff.reviewer_group": "finance",
        "signoff.review.state": "REJECTED",
        "signoff.actor": "alice",
    }
    with receiver.changed:
        assert not [raw for raw in receiver.raw if SECRET.encode() in raw]


def test_traces_off_sends_no_spans_but_metrics(receiver, make_server):
    server = _traced(make_server, receiver, traces=False)
    assert not server.running.app.telemetry.tracing
    _evaluate(server, _refund(120), f"00-{TRACE_ID}-{PARENT_ID}-01")
    receiver.wait(lambda: "signoff.decisions" in receiver.metric_names)
    assert receiver.spans == []


@pytest.mark.parametrize("collector", ["closed port", "silent listener"])
def test_a_collector_that_is_down_slows_nothing(make_server, collector):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        if collector == "silent listener":  # takes connections, never answers
            s.listen(16)
        return _serves_and_stops_promptly(make_server, s.getsockname()[1])


def _serves_and_stops_promptly(make_server, port: int) -> None:
    server = make_server(
        telemetry={
            "otlp_endpoint": f"http://127.0.0.1:{port}",
            "export_interval": 0.1,
            "export_timeout": 0.5,
        }
    )
    assert server.running.app.telemetry.tracing
    slowest = 0.0
    for i in range(30):
        began = time.monotonic()
        d = _evaluate(server, _refund(120, resource=f"acct_{i}"))
        slowest = max(slowest, time.monotonic() - began)
        assert d.outcome == pb.common.OUTCOME_AUTO_ALLOW
    assert slowest < 1.0
    began = time.monotonic()
    server.call(server.running.stop(0))
    assert time.monotonic() - began < 0.5 + 1.0 + 2.0  # export_timeout + 1 s bound + margin


def test_a_server_that_fails_to_start_exits_at_once_whatever_the_collector(tmp_path):
    (tmp_path / "bad.yaml").write_text("rules: [\n")
    env = {
        **os.environ,
        "SIGNOFF_TELEMETRY__OTLP_ENDPOINT": "http://127.0.0.1:9",  # nothing listens there
        "SIGNOFF_TELEMETRY__EXPORT_TIMEOUT": "30",
    }
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "signoff.cli.main", "serve", "--listen", "127.0.0.1:0",
         "--http-listen", "", "--policies", str(tmp_path), "--db",
         f"sqlite:///{tmp_path / 'x.db'}"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "bad.yaml:2:1" in done.stderr
    # An exit-time flush of the metrics to the dead collector took the export timeout (30 s).
    assert time.monotonic() - began < 15
