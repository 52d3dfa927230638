"""The policy analysis on the console's Insights page, in Chromium against a real server:
"analysing…" while the server works, then the findings; the install hint without z3."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from .conftest import Console

try:
    from playwright.sync_api import expect
except ImportError:  # conftest skips these tests (or fails them under SIGNOFF_REQUIRE_BROWSER)
    expect = None

ANALYSIS = "**/signoff.v1.PolicyService/GetAnalysis"


def test_the_insights_page_shows_analysing_then_the_findings(console: Console) -> None:
    held: list[Any] = []
    calls: list[str] = []

    def route(r: Any) -> None:
        # The first call starts the analysis and answers RUNNING at once; the next one
        # (which waits on the server for the result) is held until the page said so.
        calls.append(r.request.url)
        if len(calls) == 1:
            r.continue_()
        else:
            held.append(r)

    assert console.server is not None
    bundle = console.server.running.app.bundle
    page = console.page("tok-ann")
    page.route(ANALYSIS, route)
    page.get_by_role("link", name="Insights").click()
    panel = page.get_by_test_id("analysis")
    expect(panel.get_by_test_id("analysis-state")).to_contain_text("analysing…")
    expect(panel.get_by_test_id("analysis-state")).to_contain_text(f"{bundle.rule_count} rules")
    for _ in range(1000):  # each evaluate is a round trip that lets the route handler run
        if held:
            break
        page.evaluate("1")
    assert held, "the page never asked again for the running analysis"
    for r in held:
        r.continue_()

    state = panel.get_by_test_id("analysis-state")
    expect(state).to_contain_text(f"{bundle.rule_count} rules analysed in")
    expect(state).to_contain_text("0 problem(s)")
    expect(state).to_contain_text(bundle.version[:19])
    rows = panel.locator("table[data-testid=analysis-findings] tbody tr")
    expect(rows).to_have_count(2)
    first = rows.first
    expect(first.locator("td").first).to_have_text("NOT-ANALYSED")
    expect(first.locator("th")).to_have_text("db-migrations/drop-statement")
    expect(first.locator("td").nth(1)).to_have_text("db_migrations.yaml:10")
    expect(first.locator("td").nth(2)).to_contain_text("matches()")
    expect(page.get_by_role("alert")).to_have_count(0)
    assert len(calls) == 2
    assert not console.errors


def test_a_default_decision_finding_shows_its_example_request(
    console: Console, tmp_path: Any
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "things.yaml").write_text(
        'name: things\nactions: ["thing.*"]\nrules:\n'
        "  - name: never\n    when: size(action.name) > 10 && size(action.name) < 5\n"
        "    decision: deny\n    reason: can never match\n"
        '  - name: only-a\n    when: action.name == "thing.a"\n'
        "    decision: allow\n    reason: the one action it knows\n"
    )
    console.start(policies=policies)
    page = console.page("tok-ann", "/insights")
    rows = page.locator("table[data-testid=analysis-findings] tbody tr")
    expect(rows).to_have_count(2)
    expect(page.get_by_test_id("analysis-state")).to_contain_text("1 problem(s)")
    expect(rows.nth(0).locator("td").first).to_have_text("INEFFECTIVE")
    expect(rows.nth(0).locator("th")).to_have_text("things/never")
    expect(rows.nth(0).locator("td").nth(1)).to_have_text("things.yaml:4")
    expect(rows.nth(1).locator("td").first).to_have_text("DEFAULT-APPLIES")
    expect(rows.nth(1).locator("th")).to_have_text("things (policy)")
    example = rows.nth(1).locator("pre.example")
    expect(example).to_contain_text('"name": "thing.')
    assert not console.errors


def test_without_z3_the_page_says_how_to_install_it(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server runs in this process: as on a server installed without the `analyze` extra.
    monkeypatch.setitem(sys.modules, "z3", None)
    monkeypatch.delitem(sys.modules, "signoff.analysis.check")
    page = console.page("tok-ann", "/insights")
    panel = page.get_by_test_id("analysis")
    expect(panel).to_contain_text("Policy analysis needs the z3 solver")
    expect(panel.locator("code")).to_contain_text(["pip install 'signoff[analyze]'"])
    expect(page.get_by_role("alert")).to_have_count(0)  # a hint, not an error
    expect(panel.locator("table")).to_have_count(0)
    assert not console.errors
