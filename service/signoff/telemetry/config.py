"""Telemetry settings: OpenTelemetry traces and metrics, OTLP export, the /metrics endpoint."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class TelemetrySettings(BaseModel):
    """Traces go out only to an OTLP endpoint; metrics also to the Prometheus endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/gRPC collector, e.g. http://localhost:4317 (http: plaintext, "
        "https: TLS); unset: nothing is exported over OTLP.",
    )
    service_name: str = Field(
        "signoff", min_length=1, description="service.name resource attribute of spans and metrics."
    )
    traces: bool = Field(
        True,
        description="Export a span per decision and review change (needs otlp_endpoint; "
        "without one no span is ever created).",
    )
    trace_sample_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of new traces sampled; with a traceparent the caller's sampling "
        "decision holds (parent-based).",
    )
    metrics: bool = Field(True, description="Count and time decisions, reviews and audit appends.")
    prometheus: bool = Field(
        True,
        description="Serve the metrics at /metrics on the HTTP port (none when http_listen is "
        "empty).",
    )
    export_interval: float = Field(
        15.0,
        gt=0,
        description="Seconds between metric exports to the OTLP endpoint; spans leave at least "
        "this often (and at least every 5 s).",
    )
    export_timeout: float = Field(
        5.0,
        gt=0,
        le=60,
        description="Seconds an OTLP export may take; also bounds the final flush on stop.",
    )
    pending_refresh: float = Field(
        10.0,
        gt=0,
        description="Seconds between reads of the pending reviews per group (also re-read, "
        "at most once a second, after a review opens or changes here).",
    )

    @field_validator("otlp_endpoint")
    @classmethod
    def _check_endpoint(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        scheme, sep, rest = v.partition("://")
        if not sep or scheme not in ("http", "https") or not rest.strip("/"):
            raise ValueError(f"must be http://HOST:PORT or https://HOST:PORT, got {v!r}")
        return v
