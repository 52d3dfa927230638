"""Telemetry without a server: label bounds, settings errors, and that off means off."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from signoff import pb
from signoff.core.decide import DefaultDecision, evaluate
from signoff.ids import SystemClock
from signoff.policy import load_bundle
from signoff.settings.model import ConfigError, load_settings
from signoff.telemetry.labels import OTHER, ActionLabels
from signoff.telemetry.recorder import Telemetry, TelemetrySettings

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def test_action_labels_are_names_or_globs_of_the_policies_else_other():
    labels = ActionLabels(load_bundle(POLICIES))
    assert labels.of("email.send") == "email.send"
    assert labels.of("refund.issue") == "refund.*"
    assert labels.of("refund.anything.else") == "refund.*"
    assert labels.of("refund") == OTHER
    assert labels.of("x" * 200) == OTHER
    assert {labels.of(f"random.{i}") for i in range(10_000)} == {OTHER}
    assert labels.of.cache_info().currsize <= 4096  # random names cannot grow memory


def test_action_labels_before_any_bundle_are_all_other():
    assert ActionLabels().of("email.send") == OTHER


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("localhost:4317", "telemetry.otlp_endpoint (SIGNOFF_TELEMETRY__OTLP_ENDPOINT): must be"),
        ("ftp://x:1", "telemetry.otlp_endpoint (SIGNOFF_TELEMETRY__OTLP_ENDPOINT): must be"),
        ("http://", "telemetry.otlp_endpoint (SIGNOFF_TELEMETRY__OTLP_ENDPOINT): must be"),
    ],
)
def test_a_bad_otlp_endpoint_is_one_line_naming_the_key(monkeypatch, value, message):
    monkeypatch.setenv("SIGNOFF_TELEMETRY__OTLP_ENDPOINT", value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("SIGNOFF_TELEMETRY__OTLP_ENDPOINT", "https://collector:4317")
    monkeypatch.setenv("SIGNOFF_TELEMETRY__TRACE_SAMPLE_RATIO", "0.25")
    t = load_settings().telemetry
    assert (t.otlp_endpoint, t.trace_sample_ratio) == ("https://collector:4317", 0.25)
    monkeypatch.setenv("SIGNOFF_TELEMETRY__TRACE_SAMPLE_RATIO", "2")
    with pytest.raises(ConfigError, match=r"telemetry.trace_sample_ratio \(SIGNOFF_TELEMETRY__"):
        load_settings()


def test_an_empty_endpoint_means_none():
    assert TelemetrySettings(otlp_endpoint="").otlp_endpoint is None


def _decision() -> tuple[pb.common.Decision, object]:
    req = pb.common.ActionRequest()
    req.action.name = "email.send"
    req.principal.id = "bot"
    bundle = load_bundle(POLICIES)
    ev = evaluate(bundle, req, SystemClock().now(), DefaultDecision("review", "default"))
    return pb.common.Decision(outcome=pb.common.OUTCOME_AUTO_ALLOW), ev


def test_without_an_endpoint_no_tracer_exists_and_the_traceparent_is_not_read():
    t = Telemetry(TelemetrySettings(), prometheus=True)
    assert (t.tracing, t.metering) == (False, True)
    read: list[str] = []

    def header(name: str) -> str | None:
        read.append(name)
        return None

    with t.incoming(header):
        d, ev = _decision()
        t.decided("email.send", d, ev, 0.0, 0.0)
    assert read == []


def test_everything_off_records_nothing_and_closes_at_once():
    t = Telemetry()
    assert (t.tracing, t.metering, t.prometheus_page) == (False, False, None)
    d, ev = _decision()
    t.decided("email.send", d, ev, 0.0, 0.0)
    assert t._decisions == {}
    asyncio.run(t.close())


def test_metrics_count_by_outcome_and_bounded_action():
    t = Telemetry(TelemetrySettings(), prometheus=True)
    t.policy_loaded(load_bundle(POLICIES))
    d, ev = _decision()
    for name in ("email.send", "email.send", "nope.1", "nope.2"):
        t.decided(name, d, ev, 0.0, 0.0)
    assert t.prometheus_page is not None
    page = t.prometheus_page().decode()
    assert 'signoff_decisions_total{action="email.send",outcome="AUTO_ALLOW"} 2.0' in page
    assert 'signoff_decisions_total{action="other",outcome="AUTO_ALLOW"} 2.0' in page
    assert "signoff_decision_duration_seconds_count 4.0" in page


def test_fast_histograms_bucket_like_the_sdk():
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from signoff.telemetry.fast import FastHistogram

    bounds = (1, 2, 4)
    values = (0.5, 1, 1.5, 2, 4, 4.01, 100)
    reader = InMemoryMetricReader()
    sdk = MeterProvider(metric_readers=[reader]).get_meter("t")
    h = sdk.create_histogram("h", explicit_bucket_boundaries_advisory=bounds)
    fast = FastHistogram("h", "s", "", bounds)
    for v in values:
        h.record(v)
        fast.record(v)
    data = reader.get_metrics_data()
    (want,) = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    metric = fast.metric(0)
    assert metric is not None
    (got,) = metric.data.data_points
    assert list(got.bucket_counts) == list(want.bucket_counts) == [2, 2, 1, 2]
    assert (got.count, got.sum, got.min, got.max) == (want.count, want.sum, want.min, want.max)
    assert FastHistogram("e", "s", "", bounds).metric(0) is None  # nothing recorded yet
