"""Building the OpenTelemetry providers and exporters from settings; nothing else imports
the SDK's export machinery."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry

from signoff import __version__
from signoff.telemetry.config import TelemetrySettings
from signoff.telemetry.fast import FastMetrics, OtlpReader, PrometheusReader


@dataclass
class Providers:
    """What one server's telemetry exports through; None where it is off."""

    tracer: TracerProvider | None
    meter: MeterProvider | None
    registry: CollectorRegistry | None  # what /metrics renders
    fast: FastMetrics | None  # the hot path's histograms, exported by the meter's readers


def build(settings: TelemetrySettings, *, prometheus: bool) -> Providers:
    """Providers of one server (`prometheus`: it has an HTTP port to serve /metrics on),
    never the process-global ones: several servers in one process must not share them."""
    resource = Resource.create(
        {"service.name": settings.service_name, "service.version": __version__}
    )
    endpoint = settings.otlp_endpoint
    insecure = bool(endpoint) and endpoint.startswith("http://")  # type: ignore[union-attr]
    tracer = None
    if endpoint and settings.traces:
        tracer = TracerProvider(
            resource=resource,
            sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
            # Telemetry.close() stops it, within a bound; an atexit flush to a dead collector
            # would hold up the exit of a server that failed to start.
            shutdown_on_exit=False,
        )
        exporter = OTLPSpanExporter(
            endpoint=endpoint, insecure=insecure, timeout=settings.export_timeout
        )
        # Spans leave in batches from the processor's thread: a slow or dead collector
        # delays nothing but the export (the queue is bounded and drops when full).
        tracer.add_span_processor(
            BatchSpanProcessor(
                exporter,
                schedule_delay_millis=min(settings.export_interval, 5.0) * 1000,
                # Small batches: encoding one holds the GIL, and 512 spans at once showed
                # as a doubled p99 of Evaluate at 8 callers (bench/otel.py).
                max_export_batch_size=64,
                export_timeout_millis=settings.export_timeout * 1000,
            )
        )
    readers: list[MetricReader] = []
    fast = FastMetrics(resource, InstrumentationScope("signoff", __version__))
    registry = None
    if settings.metrics and settings.prometheus and prometheus:
        registry = CollectorRegistry(auto_describe=True)
        readers.append(PrometheusReader(fast, registry=registry, scope_info_enabled=False))
    if settings.metrics and endpoint:
        readers.append(
            OtlpReader(
                fast,
                OTLPMetricExporter(
                    endpoint=endpoint, insecure=insecure, timeout=settings.export_timeout
                ),
                export_interval_millis=settings.export_interval * 1000,
                export_timeout_millis=settings.export_timeout * 1000,
            )
        )
    meter = None
    if readers:
        # Exemplars would cost a context lookup on every measurement of the hot path.
        meter = MeterProvider(
            metric_readers=readers,
            resource=resource,
            exemplar_filter=AlwaysOffExemplarFilter(),
            shutdown_on_exit=False,  # as the tracer's
        )
    return Providers(tracer=tracer, meter=meter, registry=registry, fast=fast if meter else None)
