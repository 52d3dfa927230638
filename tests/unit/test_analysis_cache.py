"""The console's policy analysis (app/analysis_cache.py): once per bundle version, shared by
concurrent callers, off the event loop, bounded, and a page (not an error) without z3."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest

from signoff import pb
from signoff.analysis.check import Analysis, Finding
from signoff.app.analysis_cache import (
    INSTALL_HINT,
    MAX_FINDINGS,
    MAX_TEXT,
    Analyzer,
    BundleAnalyses,
    findings_message,
    split_example,
)
from signoff.policy import Bundle, load_bundle
from signoff.settings.model import ConfigError, load_settings

P = pb.policy
POLICIES = Path(__file__).resolve().parents[2] / "policies"

PLANTED = """\
name: planted
actions: ["thing.*"]
rules:
  - name: never
    when: size(action.name) > 10 && size(action.name) < 5
    decision: deny
    reason: can never match
  - name: only-a
    when: action.name == "thing.a"
    decision: allow
    reason: the one action it knows
"""

# x³ + y³ = z³ has no positive solution, which z3 cannot show in a fraction of a second.
FERMAT = (
    "size(principal.id) > 0 && size(resource.id) > 0 && "
    "size(principal.id) * size(principal.id) * size(principal.id) + "
    "size(resource.id) * size(resource.id) * size(resource.id) == "
    "size(principal.kind) * size(principal.kind) * size(principal.kind)"
)


def _bundle(tmp_path: Path, text: str, name: str = "p") -> Bundle:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "p.yaml").write_text(text)
    return load_bundle(directory)


def _kinds(out: P.BundleAnalysis) -> list[tuple[str, str]]:
    return [(f.kind, f.rule) for f in out.findings]


async def test_concurrent_callers_share_one_analysis_per_version(tmp_path: Path) -> None:
    examples, planted = load_bundle(POLICIES), _bundle(tmp_path, PLANTED)
    cache = BundleAnalyses(timeout=10.0)
    try:
        first = await cache.get(examples)  # answers at once: the analysis runs in the back
        assert first.state == P.ANALYSIS_STATE_RUNNING
        assert (first.bundle_version, first.rules) == (examples.version, examples.rule_count)
        outs = await asyncio.gather(*(cache.get(examples, wait_s=60) for _ in range(5)))
        assert cache.computed == 1
        assert {o.state for o in outs} == {P.ANALYSIS_STATE_DONE}
        assert all(o == outs[0] for o in outs)
        # The example policies: nothing wrong, two rules outside the analysed subset.
        assert outs[0].problems == 0
        assert _kinds(outs[0]) == [
            ("NOT-ANALYSED", "drop-statement"),
            ("NOT-ANALYSED", "truncate-statement"),
        ]
        assert outs[0].findings[0].file == "db_migrations.yaml"
        assert outs[0].findings[0].line > 0
        assert (await cache.get(examples)) == outs[0]  # cached: no second analysis
        assert cache.computed == 1

        # A reload with other content: analysed anew, once.
        got = await cache.get(planted, wait_s=60)
        assert cache.computed == 2
        assert got.state == P.ANALYSIS_STATE_DONE
        assert got.bundle_version == planted.version
        assert _kinds(got) == [("INEFFECTIVE", "never"), ("DEFAULT-APPLIES", "")]
        assert got.problems == 1
        default = got.findings[1]
        assert default.message == (
            "no rule decides some of its requests (the default decision applies)"
        )
        example = json.loads(default.example_json)
        assert example["action"]["name"].startswith("thing.")
        assert example["action"]["name"] != "thing.a"
    finally:
        await cache.aclose()


async def test_a_version_superseded_before_its_turn_is_skipped(tmp_path: Path) -> None:
    slow, planted = _bundle(tmp_path, _fermat_policy(), "slow"), _bundle(tmp_path, PLANTED)
    cache = BundleAnalyses(timeout=0.3)
    try:
        await cache.get(slow)  # takes the one worker thread
        skipped = _bundle(tmp_path, PLANTED.replace("thing.a", "thing.b"), "skipped")
        waiter = asyncio.create_task(cache.get(skipped, wait_s=60))
        await asyncio.sleep(0)  # it starts the run and waits for it
        got = await cache.get(planted, wait_s=60)
        assert got.state == P.ANALYSIS_STATE_DONE
        assert got.bundle_version == planted.version
        assert cache.computed == 2  # the slow one and the latest; the one between never ran
        # Its waiter is sent back (RUNNING) to ask for the bundle now in force.
        told = await waiter
        assert (told.state, told.bundle_version) == (P.ANALYSIS_STATE_RUNNING, skipped.version)
        assert told.detail == "superseded by a newer bundle before it ran: ask again"
    finally:
        await cache.aclose()


def _fermat_policy() -> str:
    return (
        f"name: p\nrules:\n  - name: fermat\n    when: '{FERMAT}'\n"
        "    decision: allow\n    reason: never\n"
    )


async def test_a_solver_timeout_is_an_unknown_finding(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, _fermat_policy())
    cache = BundleAnalyses(timeout=0.2)
    try:
        got = await cache.get(bundle, wait_s=60)
    finally:
        await cache.aclose()
    assert got.state == P.ANALYSIS_STATE_DONE
    assert got.timeout_s == pytest.approx(0.2)
    [unknown] = [f for f in got.findings if f.rule == "fermat"]
    assert unknown.kind == "UNKNOWN"
    assert "within 0.2s" in unknown.message
    assert got.problems >= 1


async def test_without_z3_the_answer_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a server installed without the `analyze` extra: `import z3` fails.
    monkeypatch.setitem(sys.modules, "z3", None)
    monkeypatch.delitem(sys.modules, "signoff.analysis.check")
    cache = BundleAnalyses(timeout=1.0)
    try:
        got = await cache.get(load_bundle(POLICIES), wait_s=60)
    finally:
        await cache.aclose()
    assert got.state == P.ANALYSIS_STATE_UNAVAILABLE
    assert got.detail == INSTALL_HINT
    assert "pip install 'signoff[analyze]'" in got.detail
    assert list(got.findings) == []
    assert cache.computed == 0


async def test_an_analysis_that_breaks_is_failed_not_retried(tmp_path: Path) -> None:
    calls: list[str] = []

    def broken(bundle: Bundle, timeout: float) -> Analysis:
        calls.append(bundle.version)
        raise RuntimeError("solver exploded")

    cache = BundleAnalyses(timeout=1.0, loader=lambda: Analyzer(broken, lambda: None))
    bundle = load_bundle(POLICIES)
    try:
        got = await cache.get(bundle, wait_s=60)
        again = await cache.get(bundle, wait_s=60)
    finally:
        await cache.aclose()
    assert got.state == P.ANALYSIS_STATE_FAILED
    assert got.detail == "the analysis failed: RuntimeError: solver exploded"
    assert again == got
    assert calls == [bundle.version]


async def test_a_caller_that_gives_up_does_not_cancel_the_shared_analysis(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, _fermat_policy())
    cache = BundleAnalyses(timeout=0.3)
    try:
        waiter = asyncio.create_task(cache.get(bundle, wait_s=60))
        await asyncio.sleep(0)  # let it start waiting
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        got = await cache.get(bundle, wait_s=60)
    finally:
        await cache.aclose()
    assert got.state == P.ANALYSIS_STATE_DONE
    assert cache.computed == 1


async def test_the_event_loop_keeps_serving_while_it_runs(tmp_path: Path) -> None:
    # The longest gap between 5 ms ticks of the loop while the solver works on a timeout
    # (1 s of z3) and the example policies (about 2 s of translation and z3).
    bundle = _bundle(tmp_path, _fermat_policy())
    cache = BundleAnalyses(timeout=1.0)
    gaps: list[float] = []
    stop = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        await cache.get(bundle, wait_s=60)
        await cache.get(load_bundle(POLICIES), wait_s=60)
    finally:
        stop.set()
        await ticker
        await cache.aclose()
    assert cache.computed == 2
    # Generous for a shared 2-core machine; a blocked loop would show the whole analysis.
    assert max(gaps) < 0.5, f"the loop stalled {max(gaps):.3f}s"


def test_the_answer_is_bounded() -> None:
    bundle = load_bundle(POLICIES)
    many = tuple(
        Finding("shadowed", "p.yaml", i, "p", f"r{i}", "x" * (MAX_TEXT + 10))
        for i in range(MAX_FINDINGS + 3)
    )
    out = findings_message(bundle, Analysis(many, (), 1.5), 10.0)
    assert len(out.findings) == MAX_FINDINGS
    assert (out.total, out.problems, out.truncated) == (MAX_FINDINGS + 3, MAX_FINDINGS + 3, True)
    assert len(out.findings[0].message) == MAX_TEXT
    assert out.findings[0].message.endswith("…")
    assert out.findings[0].kind == "SHADOWED"
    # An example request too long to show is left out, not cut into invalid JSON.
    huge = '{"action": {"name": "%s"}}' % ("a" * MAX_TEXT)
    example = Finding("default-applies", "p.yaml", 1, "p", "", f"no rule decides, e.g. {huge}")
    [shown] = findings_message(bundle, Analysis((example,), (), 0.1), 10.0).findings
    assert (shown.message, shown.example_json) == ("no rule decides", "")


def test_split_example_takes_a_json_tail_only() -> None:
    msg = 'no rule decides some of its requests (the default decision applies), e.g. {"a":1}'
    assert split_example(msg) == (
        "no rule decides some of its requests (the default decision applies)",
        '{\n  "a": 1\n}',
    )
    assert split_example("matches every request it applies to") == (
        "matches every request it applies to",
        "",
    )
    broken = "no rule decides some, e.g. {not json"
    assert split_example(broken) == (broken, "")


@pytest.mark.parametrize("bad", [0, -1, 601])
def test_the_time_limit_setting_is_bounded(bad: float) -> None:
    assert load_settings({"analysis_timeout": 2.5}).analysis_timeout == 2.5
    with pytest.raises(ConfigError, match="analysis_timeout"):
        load_settings({"analysis_timeout": bad})


async def test_analyses_of_several_servers_in_one_process_take_turns() -> None:
    # z3's one global context is not thread-safe: three analyses at once (one per server of
    # a test process) crashed the process in C before they were made to take turns.
    bundle = load_bundle(POLICIES)
    caches = [BundleAnalyses(timeout=10.0) for _ in range(3)]
    try:
        outs = await asyncio.gather(*(c.get(bundle, wait_s=120) for c in caches))
    finally:
        for c in caches:
            await c.aclose()
    assert [o.state for o in outs] == [P.ANALYSIS_STATE_DONE] * 3
    assert outs[0].findings == outs[1].findings == outs[2].findings
    assert len(outs[0].findings) == 2


async def test_a_stopping_server_cuts_the_running_analysis_short(tmp_path: Path) -> None:
    # With a 60 s limit per question the Fermat rule would hold the stop for minutes.
    bundle = _bundle(tmp_path, _fermat_policy())
    cache = BundleAnalyses(timeout=60.0)
    running = await cache.get(bundle, wait_s=0.5)
    assert running.state == P.ANALYSIS_STATE_RUNNING
    start = time.perf_counter()
    await cache.aclose()
    assert time.perf_counter() - start < 5.0
    got = await cache.get(bundle)
    assert (got.state, got.detail) == (P.ANALYSIS_STATE_FAILED, "the server is stopping")
    assert cache.computed == 0
