"""The analysis findings of the bundle in force (GetAnalysis): computed once per version.

`signoff policy analyze` asks z3 a few questions per rule; on a large bundle that is seconds
of CPU. So the server runs it at most once per bundle version, on first request (a server
nobody looks at never pays), in one dedicated worker thread: concurrent callers await the
same computation, a reload with new content starts a new one, and a version superseded
before its turn is skipped. The solver runs in C with the GIL released and every check is
interrupted past the time limit (analysis/check.bounded_check), so a thread, not a process,
keeps the event loop responsive (measured in tests/unit/test_analysis_cache.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from signoff import pb
from signoff.logs import event
from signoff.policy import Bundle

log = logging.getLogger("signoff.analysis")

P = pb.policy
INSTALL_HINT = (
    "Policy analysis needs the z3 solver, which is not installed on the server: "
    "pip install 'signoff[analyze]' (or pip install z3-solver), then restart it."
)
# Bounds of one answer, whatever the bundle: findings past MAX_FINDINGS are counted only,
# and a message (a default-applies example can hold long strings) is cut at MAX_TEXT.
MAX_FINDINGS = 500
MAX_TEXT = 2000
MAX_WAIT_MS = 30_000  # the longest a caller may hold a GetAnalysis open for the result
_EXAMPLE = " e.g. "  # analysis/check.analyze_policies: "..., e.g. {json}"
# z3's Python API builds every term in one process-wide context (z3.main_ctx()), which is
# not thread-safe: two analyses at once in one process (two servers in a test process, or a
# stopped server's analysis still finishing) crashed it with a segmentation fault. So one
# analysis runs at a time per process, whichever server asked.
_Z3 = threading.Lock()


@dataclass(frozen=True)
class Analyzer:
    """The analysis, and how to cut short the solver question in progress (any thread)."""

    analyze: Callable[[Bundle, float], Any]
    interrupt: Callable[[], None]


def _load_analyzer() -> Analyzer | None:
    """analysis.check.analyze, or None when z3 (the `analyze` extra) is not installed."""
    try:
        check = importlib.import_module("signoff.analysis.check")
        z3 = importlib.import_module("z3")
    except ModuleNotFoundError as exc:
        if exc.name != "z3":
            raise
        return None

    def run(bundle: Bundle, timeout: float) -> Any:
        # Invariants live in `*_test.yaml` files, which are not part of a bundle: only
        # `signoff policy analyze` (and `policy test`) check them.
        return check.analyze(bundle, [], timeout)

    # Every solver of the analysis lives in z3's global context (see _Z3).
    return Analyzer(run, lambda: z3.main_ctx().interrupt())


@dataclass
class _Run:
    version: str
    future: asyncio.Future[P.BundleAnalysis]
    started: float


class BundleAnalyses:
    """The findings of each bundle version, computed once, shared by every caller."""

    def __init__(
        self,
        timeout: float,
        loader: Callable[[], Analyzer | None] = _load_analyzer,
    ) -> None:
        self.timeout = timeout
        self._loader = loader
        self._current: _Run | None = None
        self._latest = ""  # the version last asked for: older queued runs are skipped
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        self._solving: Analyzer | None = None  # set while this cache's analysis holds _Z3
        self.computed = 0  # analyses run to completion (tests count them)

    async def get(self, bundle: Bundle, wait_s: float = 0.0) -> P.BundleAnalysis:
        """The analysis of `bundle`: done, or RUNNING after waiting up to `wait_s` for it."""
        run = self._current
        if run is None or run.version != bundle.version:
            if self._closed:
                return self._stopping(bundle)
            run = self._start(bundle)
        if not run.future.done() and wait_s > 0:
            # shield: a caller that gives up (or disconnects) must not cancel the shared run.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(run.future), wait_s)
        if run.future.done():
            return run.future.result()
        out = self._base(bundle, P.ANALYSIS_STATE_RUNNING)
        out.seconds = time.perf_counter() - run.started
        return out

    async def aclose(self, patience: float = 10.0) -> None:
        """Drop queued analyses and cut the running one short: its questions answer unknown.

        The worker thread is joined when the process exits, so an analysis left running
        would hold a stopping server up for as long as its solver questions take.
        """
        self._closed = True
        if self._pool is None:
            return
        self._pool.shutdown(wait=False, cancel_futures=True)
        run, loop = self._current, asyncio.get_running_loop()
        deadline = loop.time() + patience
        while run is not None and not run.future.done() and loop.time() < deadline:
            if (solving := self._solving) is not None:
                solving.interrupt()
            # Polled, not awaited once: an interrupt ends the question in progress only,
            # and the analysis asks its next one a moment later.
            await asyncio.wait([run.future], timeout=0.02)
        if run is not None and not run.future.done():
            event(log, "analysis.not_stopped", logging.WARNING, version=run.version)

    def _start(self, bundle: Bundle) -> _Run:
        loop = asyncio.get_running_loop()
        self._latest = bundle.version
        if self._pool is None:
            # One thread: analyses queue behind each other instead of taking every core.
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="signoff-analysis")
        started = time.perf_counter()
        inner = loop.run_in_executor(self._pool, self._compute, bundle)
        future: asyncio.Future[P.BundleAnalysis] = loop.create_future()

        def settle(done: asyncio.Future[P.BundleAnalysis]) -> None:
            if done.cancelled():
                result = self._base(bundle, P.ANALYSIS_STATE_FAILED)
                result.detail = "the server is stopping"
            elif (exc := done.exception()) is not None:
                event(log, "analysis.failed", logging.ERROR, version=bundle.version, error=exc)
                result = self._base(bundle, P.ANALYSIS_STATE_FAILED)
                result.detail = _cut(f"the analysis failed: {type(exc).__name__}: {exc}")
            else:
                result = done.result()
            if not future.done():
                future.set_result(result)

        inner.add_done_callback(settle)
        self._current = _Run(bundle.version, future, started)
        return self._current

    def _compute(self, bundle: Bundle) -> P.BundleAnalysis:
        """In the worker thread: analyse, unless a newer version was asked for meanwhile."""
        if bundle.version != self._latest:
            # Only callers that waited on this run see this: RUNNING sends them back for the
            # bundle now in force, whose own run is queued.
            out = self._base(bundle, P.ANALYSIS_STATE_RUNNING)
            out.detail = "superseded by a newer bundle before it ran: ask again"
            return out
        analyzer = self._loader()
        if analyzer is None:
            out = self._base(bundle, P.ANALYSIS_STATE_UNAVAILABLE)
            out.detail = INSTALL_HINT
            return out
        # Polled so that a server stopping while another's analysis holds the lock gives up.
        while not _Z3.acquire(timeout=0.1):
            if self._closed:
                return self._stopping(bundle)
        try:
            if self._closed:
                return self._stopping(bundle)
            self._solving = analyzer
            analysis = analyzer.analyze(bundle, self.timeout)
        finally:
            self._solving = None
            _Z3.release()
        if self._closed:
            return self._stopping(bundle)  # cut short: its unknowns say nothing
        self.computed += 1
        event(
            log,
            "analysis.done",
            version=bundle.version,
            findings=len(analysis.findings),
            seconds=round(analysis.seconds, 3),
        )
        return findings_message(bundle, analysis, self.timeout)

    def _stopping(self, bundle: Bundle) -> P.BundleAnalysis:
        out = self._base(bundle, P.ANALYSIS_STATE_FAILED)
        out.detail = "the server is stopping"
        return out

    def _base(self, bundle: Bundle, state: int) -> P.BundleAnalysis:
        return P.BundleAnalysis(
            bundle_version=bundle.version,
            state=state,  # type: ignore[arg-type]
            rules=bundle.rule_count,
            timeout_s=self.timeout,
        )


def findings_message(bundle: Bundle, analysis: Any, timeout: float) -> P.BundleAnalysis:
    """An analysis.check.Analysis as the API message, bounded in size."""
    out = P.BundleAnalysis(
        bundle_version=bundle.version,
        state=P.ANALYSIS_STATE_DONE,
        rules=bundle.rule_count,
        timeout_s=timeout,
        seconds=analysis.seconds,
        problems=len(analysis.problems),
        total=len(analysis.findings),
    )
    for f in analysis.findings[:MAX_FINDINGS]:
        message, example = split_example(f.message)
        out.findings.add(
            kind=f.kind.upper(),
            policy=f.policy,
            rule=f.rule,
            file=f.file,
            line=f.line,
            message=_cut(message),
            example_json=example if len(example) <= MAX_TEXT else "",
        )
    out.truncated = len(analysis.findings) > MAX_FINDINGS
    return out


def split_example(message: str) -> tuple[str, str]:
    """("no rule decides ...", '{"action": ...}') from a message that ends with an example
    request; the message unchanged and "" when it holds none (or the tail is not JSON)."""
    head, sep, tail = message.rpartition(_EXAMPLE)
    if not sep or not tail.startswith("{"):
        return message, ""
    try:
        data = json.loads(tail)
    except ValueError:
        return message, ""
    return head.rstrip(","), json.dumps(data, indent=2, sort_keys=True)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
