"""OpenTelemetry for Signoff: a span per decision and review change, metrics of decisions,
reviews and audit appends. The app calls a few methods of one `Telemetry` per server; the
policy engine knows nothing of it (app.py times the engine).

Hot path: with tracing off no span object is ever made. Decision counts are plain dict
increments read by an observable counter at collection time, and the hot histograms are
recorded without the SDK (telemetry_fast.py): no SDK call per decision at all."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Final, Protocol

from opentelemetry import context as otel_context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import generate_latest

from signoff import __version__, pb
from signoff.core import reviews
from signoff.core.decide import Evaluation
from signoff.logs import event
from signoff.policy import Bundle
from signoff.store.base import Store
from signoff.telemetry.config import TelemetrySettings
from signoff.telemetry.fast import FastMetrics
from signoff.telemetry.labels import ActionLabels
from signoff.telemetry.setup import Providers, build

__all__ = ["Telemetry", "TelemetrySettings"]

log = logging.getLogger("signoff.telemetry")

OFF: Final = TelemetrySettings(traces=False, metrics=False, prometheus=False)
OUTCOMES: Final = {
    v: pb.common.Outcome.Name(v).removeprefix("OUTCOME_") for v in pb.common.Outcome.values()
}
# Seconds; the SDK's default buckets are made for milliseconds.
DECISION_BUCKETS: Final = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
POLICY_BUCKETS: Final = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2)
REVIEW_BUCKETS: Final = (10, 60, 300, 900, 3600, 4 * 3600, 8 * 3600, 24 * 3600, 72 * 3600)
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
PENDING_MIN_GAP = 1.0  # seconds between two reads of the pending backlog, however busy
_NULL: Final = contextlib.nullcontext()
_PROPAGATOR: Final = TraceContextTextMapPropagator()


class LimitCounts(Protocol):
    """What the metrics read of the limiter (signoff.limits.Limiter)."""

    refusals: dict[str, int]
    in_flight: int
    streams: int


class _HeaderGetter(Getter[Callable[[str], str | None]]):
    """Reads W3C trace context through a transport's `Call.header`."""

    def get(self, carrier: Callable[[str], str | None], key: str) -> list[str] | None:
        value = carrier(key)
        return [value] if value else None

    def keys(self, carrier: Callable[[str], str | None]) -> list[str]:
        return []


_GETTER: Final = _HeaderGetter()


class Telemetry:
    """One server's traces and metrics; with `settings` None everything is off."""

    def __init__(
        self, settings: TelemetrySettings | None = None, *, prometheus: bool = False
    ) -> None:
        self.settings = settings or OFF
        wanted = self.settings.metrics or self.settings.traces
        self._providers = build(self.settings, prometheus=prometheus) if wanted else None
        p = self._providers or Providers(None, None, None, None)
        self.tracing = p.tracer is not None
        self.metering = p.meter is not None
        self._tracer = p.tracer.get_tracer("signoff", __version__) if p.tracer else None
        self._labels = ActionLabels()
        self._decisions: dict[tuple[str, str], int] = {}
        self._pending: dict[str, int] = {}
        self._pending_changed = asyncio.Event()
        self._rules = 0
        self._limits: LimitCounts | None = None
        if p.meter is not None and p.fast is not None:
            self._instruments(p.meter.get_meter("signoff", __version__), p.fast)

    def _instruments(self, meter: Any, fast: FastMetrics) -> None:
        meter.create_observable_counter(
            "signoff.decisions",
            [self._observe_decisions],
            unit="{decision}",
            description="Decisions made, by outcome and action (a policy's name or glob, or "
            "other).",
        )
        self._decision_duration = fast.histogram(
            "signoff.decision.duration",
            "s",
            "Time to decide and durably record one decision.",
            DECISION_BUCKETS,
        )
        self._policy_duration = fast.histogram(
            "signoff.policy.duration",
            "s",
            "Time the policy engine took for one decision.",
            POLICY_BUCKETS,
        )
        # Always one value, so that every collection has SDK data to add the fast ones to.
        meter.create_observable_gauge(
            "signoff.policy.rules",
            [lambda options: [Observation(self._rules)]],
            unit="{rule}",
            description="Rules in the policy bundle in force.",
        )
        meter.create_observable_gauge(
            "signoff.reviews.pending",
            [self._observe_pending],
            unit="{review}",
            description="Pending reviews by reviewer group (a snapshot, refreshed in the "
            "background).",
        )
        self._review_duration = meter.create_histogram(
            "signoff.review.duration",
            unit="s",
            description="Time from a review's opening to its resolution, by group and outcome.",
            explicit_bucket_boundaries_advisory=REVIEW_BUCKETS,
        )
        meter.create_observable_counter(
            "signoff.rpc.refused",
            [self._observe_refused],
            unit="{call}",
            description="Calls refused before any work by the limits, by reason: rate, "
            "concurrency, streams, identity_concurrency, identity_streams, deadline.",
        )
        meter.create_observable_gauge(
            "signoff.rpc.in_flight",
            [self._observe_in_flight],
            unit="{call}",
            description="Calls in progress, by kind: unary, stream.",
        )
        self._reviews_resolved = meter.create_counter(
            "signoff.reviews.resolved",
            unit="{review}",
            description="Reviews resolved, by group and outcome (APPROVED, REJECTED, ...).",
        )
        self._append_duration = fast.histogram(
            "signoff.audit.append.duration",
            "s",
            "Time of one group commit of audit appends (the wait of each append in it once "
            "its turn came).",
            DECISION_BUCKETS,
        )
        self._batch_size = fast.histogram(
            "signoff.audit.batch.size",
            "{operation}",
            "Operations committed together in one group commit.",
            BATCH_BUCKETS,
        )

    # -- the hot path -------------------------------------------------------------------

    def incoming(self, header: Callable[[str], str | None]) -> AbstractContextManager[Any]:
        """Continue the caller's trace (W3C traceparent/tracestate) for the call's duration."""
        if not self.tracing:
            return _NULL
        return _attached(_PROPAGATOR.extract(header, getter=_GETTER))

    def decided(
        self, action: str, d: pb.common.Decision, ev: Evaluation, started: float, policy_s: float
    ) -> None:
        """Count and time one decision (started: its perf_counter() at arrival)."""
        if self.metering:
            key = (OUTCOMES[d.outcome], self._labels.of(action))
            counts = self._decisions
            counts[key] = counts.get(key, 0) + 1
            self._decision_duration.record(time.perf_counter() - started)
            self._policy_duration.record(policy_s)
            if d.review_id:
                self._pending_changed.set()
        if self._tracer is not None:
            self._decision_span(action, d, ev, started)

    def _decision_span(
        self, action: str, d: pb.common.Decision, ev: Evaluation, started: float
    ) -> None:
        # Made once the decision is known (nothing inside it is traced), back-dated to its start.
        assert self._tracer is not None
        end = time.time_ns()
        start = end - int((time.perf_counter() - started) * 1e9)
        # Never params, context or justification: only what names the decision.
        attrs = {
            "signoff.action": action,
            "signoff.outcome": OUTCOMES[d.outcome],
            "signoff.rule": ev.deciding_rule.name if ev.deciding_rule else "",
            "signoff.policy_version": d.policy_version,
            "signoff.decision_id": d.decision_id,
        }
        if d.review_id:
            attrs["signoff.review_id"] = d.review_id
            attrs["signoff.reviewer_group"] = d.reviewer_group
        span = self._tracer.start_span(
            "signoff.decision", kind=SpanKind.SERVER, attributes=attrs, start_time=start
        )
        if d.review_id:
            self._tracer.start_span(
                "signoff.review.opened",
                context=set_span_in_context(span),
                attributes={
                    "signoff.review_id": d.review_id,
                    "signoff.reviewer_group": d.reviewer_group,
                },
                start_time=start,
            ).end(end)
        span.end(end)

    # -- reviews, audit, policies ---------------------------------------------------------

    def review_change(
        self, kind: str, review: pb.review.Review, actor: str, now: dt.datetime
    ) -> AbstractContextManager[Any]:
        """Span the storing of one review change; count it once it is stored."""
        return self._review_change(kind, review, actor, now)

    @contextlib.contextmanager
    def _review_change(
        self, kind: str, review: pb.review.Review, actor: str, now: dt.datetime
    ) -> Iterator[None]:
        if self._tracer is None:
            yield
        else:
            attrs = {
                "signoff.review_id": review.review_id,
                "signoff.reviewer_group": review.reviewer_group,
                "signoff.review.state": reviews.state_name(review.state),
                "signoff.actor": actor,
            }
            with self._tracer.start_as_current_span(f"signoff.{kind}", attributes=attrs):
                yield
        if not self.metering:
            return
        self._pending_changed.set()
        if review.state in reviews.FINAL_STATES:
            labels = {
                "group": review.reviewer_group,
                "outcome": reviews.state_name(review.state),
            }
            self._reviews_resolved.add(1, labels)
            opened = review.created_at.ToDatetime(tzinfo=dt.UTC)
            self._review_duration.record(max((now - opened).total_seconds(), 0.0), labels)

    def audit_batch(self, size: int, seconds: float) -> None:
        """Record one group commit (called from the SQLite writer's thread too)."""
        self._batch_size.record(size)
        self._append_duration.record(seconds)

    def policy_loaded(self, bundle: Bundle) -> None:
        """Bound the action label by the names and globs of the bundle now in force."""
        self._labels = ActionLabels(bundle)
        self._rules = bundle.rule_count

    def watch_store(self, store: Store) -> None:
        """Record the store's group commits."""
        if self.metering:
            store.observe_batches(self.audit_batch)

    def watch_limits(self, limits: LimitCounts) -> None:
        """Report the limiter's refusals and calls in flight (read at collection time)."""
        self._limits = limits

    def _observe_refused(self, options: CallbackOptions) -> Iterable[Observation]:
        if self._limits is None:
            return []
        return [Observation(n, {"reason": r}) for r, n in list(self._limits.refusals.items())]

    def _observe_in_flight(self, options: CallbackOptions) -> Iterable[Observation]:
        if self._limits is None:
            return []
        return [
            Observation(self._limits.in_flight, {"kind": "unary"}),
            Observation(self._limits.streams, {"kind": "stream"}),
        ]

    async def refresh_pending_forever(self, store: Store) -> None:
        """Keep the pending-by-group snapshot fresh: the gauge's callback never reads the DB."""
        if not self.metering:
            return
        while True:
            self._pending_changed.clear()
            try:
                await self.refresh_pending(store)
            except Exception as exc:
                event(log, "telemetry.pending_failed", logging.WARNING, error=str(exc))
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancel.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.pending_refresh):
                    await self._pending_changed.wait()
            await asyncio.sleep(PENDING_MIN_GAP)

    async def refresh_pending(self, store: Store) -> None:
        """Read the pending reviews per group once into the gauge's snapshot."""
        backlog = await store.pending_backlog()
        snapshot = dict.fromkeys(self._pending, 0)  # a group that emptied reads 0
        snapshot.update((b.reviewer_group, b.pending) for b in backlog)
        self._pending = snapshot

    def _observe_decisions(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(n, {"outcome": outcome, "action": action})
            for (outcome, action), n in list(self._decisions.items())
        ]

    def _observe_pending(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(n, {"group": g}) for g, n in list(self._pending.items())]

    # -- the Prometheus endpoint and stopping ---------------------------------------------

    @property
    def prometheus_page(self) -> Callable[[], bytes] | None:
        """Render /metrics (Prometheus text format), or None when it is off."""
        registry = self._providers.registry if self._providers else None
        if registry is None:
            return None
        return lambda: generate_latest(registry)

    def force_flush(self) -> None:
        """Export what is queued now (blocking; for benchmarks and tests)."""
        p = self._providers
        if p is not None and p.tracer is not None:
            p.tracer.force_flush(int(self.settings.export_timeout * 1000))

    async def close(self) -> None:
        """Flush and stop the exporters; waits at most export_timeout + 1 s, whatever the
        collector does (a dead one must not hold up the server's stop)."""
        p = self._providers
        if p is None or (p.tracer is None and p.meter is None):
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        within = self.settings.export_timeout

        def shut() -> None:
            try:
                if p.tracer is not None:
                    p.tracer.shutdown()
                if p.meter is not None:
                    p.meter.shutdown(timeout_millis=within * 1000)
            finally:
                with contextlib.suppress(RuntimeError):  # the loop may be gone by now
                    loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        # A daemon thread, not the default executor: a hung exporter must not hold the
        # process at exit either.
        threading.Thread(target=shut, name="signoff-telemetry-stop", daemon=True).start()
        try:
            await asyncio.wait_for(asyncio.shield(done), within + 1.0)
        except TimeoutError:
            event(log, "telemetry.stop_timeout", logging.WARNING, waited=within + 1.0)


@contextlib.contextmanager
def _attached(ctx: otel_context.Context) -> Iterator[None]:
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)
