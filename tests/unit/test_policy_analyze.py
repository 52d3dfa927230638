"""`signoff policy analyze`: rule findings and invariants with z3, on real bundles.

Every counterexample asserted here is the one the command printed, evaluated again by the
engine in the test: the solver's answer is never trusted unchecked.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml
import z3
from google.protobuf import json_format

from signoff import pb
from signoff.analysis.check import analyze, analyze_rules, check_invariant, facts
from signoff.analysis.decision import decision
from signoff.analysis.symbols import Symbols
from signoff.cli.main import main
from signoff.core.decide import SEVERITY, DefaultDecision, evaluate
from signoff.errors import InvalidArgument
from signoff.policy import load_bundle
from signoff.policy.params import check_request
from signoff.policytest import load_cases
from signoff.policytest.run import DEFAULT_NOW

POLICIES = Path(__file__).resolve().parents[2] / "policies"

PLANTED_RULES = """
  - name: planted-unsatisfiable
    when: vars.amount > 100 && vars.amount < 50
    decision: allow
    reason: can never match

  - name: planted-shadowed
    when: vars.amount > 20000
    decision: review
    reviewers: finance
    reason: the hard limit above always denies these
"""

BROKEN_INVARIANT = """
  - name: planted broken invariant
    never:
      outcome: allow
      when: action.name == "refund.issue" && double(action.params.amount) > 100.0
"""


def _invariants(directory: Path) -> list:
    return [i for f in load_cases(directory) for i in f.invariants]


def _planted(tmp_path: Path) -> Path:
    copy = tmp_path / "policies"
    shutil.copytree(POLICIES, copy)
    refunds = copy / "refunds.yaml"
    text = refunds.read_text()
    refunds.write_text(text.replace("\nredact:", PLANTED_RULES + "\nredact:"))
    tests = copy / "refunds_test.yaml"
    tests.write_text(tests.read_text() + BROKEN_INVARIANT)
    return copy


def test_the_example_policies_have_nothing_wrong_and_their_invariant_is_proved():
    analysis = analyze(load_bundle(POLICIES), _invariants(POLICIES))
    assert analysis.problems == ()
    assert [(r.invariant.name, r.status) for r in analysis.invariants] == [
        ("no refund over 10,000 is ever auto-allowed", "proved")
    ]
    assert analysis.ok


def test_a_rule_outside_the_subset_is_not_analysed_with_its_position():
    skipped = [f for f in analyze_rules(load_bundle(POLICIES)) if f.kind == "not-analysed"]
    assert [(f.file, f.line, f.rule, f.message) for f in skipped] == [
        ("db_migrations.yaml", 10, "drop-statement", "when: the function matches()"),
        ("db_migrations.yaml", 29, "truncate-statement", "when: the function matches()"),
    ]


def test_planted_shadowed_unsatisfiable_and_broken_invariant_are_exactly_what_is_found(tmp_path):
    copy = _planted(tmp_path)
    analysis = analyze(load_bundle(copy), _invariants(copy))
    assert sorted((f.kind, f.rule) for f in analysis.problems) == [
        ("ineffective", "planted-unsatisfiable"),
        ("shadowed", "planted-shadowed"),
    ]
    shadowed = next(f for f in analysis.problems if f.kind == "shadowed")
    assert "refund-over-hard-limit" in shadowed.message
    status = {r.invariant.name: r.status for r in analysis.invariants}
    assert status == {
        "no refund over 10,000 is ever auto-allowed": "proved",
        "planted broken invariant": "violated",
    }
    assert not analysis.ok


def test_a_false_invariant_prints_a_counterexample_the_engine_confirms(tmp_path, capsys):
    copy = _planted(tmp_path)
    assert main(["policy", "analyze", str(copy)]) == 1
    out = capsys.readouterr().out
    for word in ("VIOLATED", "INEFFECTIVE", "SHADOWED"):
        assert word in out
    heading = "counterexample to 'planted broken invariant' (confirmed by the engine):\n"
    pasted = out.split(heading)[1]
    case = yaml.safe_load(pasted.split("\n\n")[0])[0]
    assert case["expect"]["outcome"] == "allow"
    # Evaluate the printed request ourselves: it is in scope and it is allowed.
    request = json_format.ParseDict(case["request"], pb.common.ActionRequest())
    assert request.action.name == "refund.issue"
    ev = evaluate(load_bundle(copy), request, DEFAULT_NOW, DefaultDecision())
    assert ev.outcome == "allow"
    assert ev.deciding_rule is not None
    assert ev.deciding_rule.name == case["expect"]["rule"]
    amount = request.action.params["amount"]
    assert float(amount) > 100.0


def test_an_invariant_that_does_not_parse_is_a_load_error_at_its_line(tmp_path, capsys):
    (tmp_path / "p.yaml").write_text(
        "name: p\nrules:\n  - name: r\n    when: 'true'\n    decision: allow\n    reason: ok\n"
    )
    (tmp_path / "p_test.yaml").write_text(
        "cases: []\n"
        "invariants:\n"
        "  - name: bad\n"
        "    never:\n"
        "      outcome: allow\n"
        "      when: 'action.name == '\n"
    )
    [loaded] = load_cases(tmp_path)
    assert loaded.invariants == ()
    [error] = loaded.errors
    assert (error.file, error.line, error.case) == ("p_test.yaml", 6, "invariant bad")
    assert str(error).startswith("p_test.yaml:6:13: invariant 'bad': when: 1:")
    assert main(["policy", "analyze", str(tmp_path)]) == 1
    assert "p_test.yaml:6:13: invariant 'bad'" in capsys.readouterr().err


def test_an_invariant_without_never_or_always_is_refused(tmp_path):
    (tmp_path / "p_test.yaml").write_text("cases: []\ninvariants:\n  - name: bad\n")
    [loaded] = load_cases(tmp_path)
    assert "exactly one of never: or always:" in loaded.errors[0].message


def test_an_always_invariant_with_reviewers_is_proved_and_a_wrong_group_is_refuted():
    bundle = load_bundle(POLICIES)
    [inv] = _invariants(POLICIES)
    when = 'action.name == "refund.issue" && double(action.params.amount) > 20000.0'
    denied = dataclasses.replace(inv, kind="always", outcome="deny", when=when)
    assert check_invariant(bundle, denied).status == "proved"
    wrong = dataclasses.replace(
        inv,
        kind="always",
        outcome="review",
        reviewers="finance",
        when='action.name == "refund.issue" && double(action.params.amount) > 600.0',
    )
    result = check_invariant(bundle, wrong)
    assert result.status == "violated"
    assert result.evaluation is not None
    assert (result.evaluation.outcome, result.evaluation.reviewer_group) != ("review", "finance")


def test_a_solver_timeout_is_unknown_never_proved(tmp_path):
    # x³ + y³ = z³ has no positive solution, which z3 cannot show in a fraction of a second.
    fermat = (
        "size(principal.id) > 0 && size(resource.id) > 0 && "
        "size(principal.id) * size(principal.id) * size(principal.id) + "
        "size(resource.id) * size(resource.id) * size(resource.id) == "
        "size(principal.kind) * size(principal.kind) * size(principal.kind)"
    )
    (tmp_path / "p.yaml").write_text(
        f"name: p\nrules:\n  - name: fermat\n    when: '{fermat}'\n"
        "    decision: allow\n    reason: never\n"
    )
    [finding] = analyze_rules(load_bundle(tmp_path), timeout=0.2)
    assert (finding.kind, finding.rule) == ("unknown", "fermat")
    assert "0.2s" in finding.message


def test_json_and_junit_reports(tmp_path, capsys):
    copy = _planted(tmp_path)
    junit = tmp_path / "analysis.xml"
    assert main(["policy", "analyze", str(copy), "--json", "--junit", str(junit)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    kinds = sorted(f["kind"] for f in report["findings"])
    assert kinds == ["ineffective", "not-analysed", "not-analysed", "shadowed"]
    violated = [i for i in report["invariants"] if i["status"] == "violated"]
    assert violated[0]["counterexample"]["action"]["name"] == "refund.issue"
    suites = ET.parse(junit).getroot()
    assert suites.get("failures") == "3"
    assert len(suites.findall(".//skipped")) == 2


def test_policy_test_runs_the_invariants_too(tmp_path, capsys):
    copy = _planted(tmp_path)
    assert main(["policy", "test", str(copy)]) == 1
    out = capsys.readouterr().out
    assert "invariant VIOLATED: refunds_test.yaml" in out
    junit = tmp_path / "test.xml"
    assert main(["policy", "test", str(copy), "--junit", str(junit)]) == 1
    capsys.readouterr()
    suite = ET.parse(junit).getroot().find("testsuite[@name='invariants']")
    assert suite is not None
    assert [c.get("name").split(": ", 1)[1] for c in suite.findall("testcase/failure/..")] == [
        "planted broken invariant"
    ]
    assert main(["policy", "test", str(POLICIES)]) == 0
    assert "invariant PROVED" in capsys.readouterr().out


def test_a_counterexample_the_engine_refutes_is_unknown_not_violated(tmp_path):
    # drop-statement (matches(), not analysed) denies this request, but the solver may
    # only assume "it may or may not match": its counterexample must not be reported.
    (tmp_path / "db_test.yaml").write_text(
        "cases: []\n"
        "invariants:\n"
        "  - name: a DROP migration is never allowed\n"
        "    never:\n"
        "      outcome: allow\n"
        "      when: >-\n"
        '        action.name == "db.migrate" && has(action.params.sql)\n'
        '        && action.params.sql == "DROP TABLE users"\n'
    )
    for name in ("db_migrations.yaml",):
        shutil.copy(POLICIES / name, tmp_path / name)
    [inv] = _invariants(tmp_path)
    result = check_invariant(load_bundle(tmp_path), inv)
    assert result.status == "unknown"
    assert result.counterexample is None
    assert "did not hold: the engine decides deny (drop-statement)" in result.message
    assert "rules not analysed: drop-statement, truncate-statement" in result.message


def _bind(symbols: Symbols, data: dict) -> list:
    """Constraints that pin the solver's request variables to one concrete request."""
    out = []

    def lookup(path: tuple[str, ...]) -> tuple[bool, object]:
        node: object = data
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return False, None
            node = node[key]
        return True, node

    for path, var in symbols.strings.items():
        out.append(var == z3.StringVal(lookup(path)[1] or ""))
    for path, var in symbols.lists.items():
        items = lookup(path)[1] or []
        seq = z3.Empty(var.sort())
        for item in items:
            seq = z3.Concat(seq, z3.Unit(z3.StringVal(item)))
        out.append(var == seq)
    for path, j in symbols.json.items():
        present, value = lookup(path)
        out.append(j.present == present)
        if not present:
            continue
        if value is None:
            out.append(j.kind == 0)
        elif isinstance(value, bool):
            out += [j.kind == 1, j.bool == value]
        elif isinstance(value, int | float):
            out += [j.kind == 2, j.num == z3.RealVal(float(value))]
        elif isinstance(value, str):
            out += [j.kind == 3, j.str == z3.StringVal(value), j.size == len(value)]
            try:
                out += [j.unparsable == False, j.parsed == z3.RealVal(float(value))]  # noqa: E712
            except ValueError:
                out.append(j.unparsable == True)  # noqa: E712
        else:
            out += [j.kind == (4 if isinstance(value, list) else 5), j.size == len(value)]
    return out


# Requests the shipped cases do not try: odd JSON kinds, where CEL's errors decide.
ODD_REQUESTS = [
    {"action": {"name": "refund.issue", "params": {"amount": "20000"}}},
    {"action": {"name": "refund.issue", "params": {"amount": "lots"}}},
    {"action": {"name": "refund.issue", "params": {"amount": True}}},
    {
        "action": {"name": "refund.card.issue", "params": {"amount": 20.0}},
        "context": {"fraud_flag": "yes"},
    },
    {
        "action": {"name": "refund.issue", "params": {"amount": 20.0}},
        "resource": {"attributes": {"tier": 3}},
    },
    {"action": {"name": "email.send", "params": {"to": ["a"] * 150}}},
    {"action": {"name": "email.send", "params": {"to": "a@example.com"}}},
    {"action": {"name": "email.send", "params": {"to": 7}}},
    {"action": {"name": "mcp.payments.refund", "params": {"amount": 50}}},
    {
        "action": {"name": "mcp.payments.refund", "params": {}},
        "context": {"mcp": {"annotations": {"readOnlyHint": True}}},
    },
    {
        "action": {"name": "mcp.fs.read"},
        "context": {"mcp": {"annotations": {"readOnlyHint": "true"}}},
    },
    {
        "action": {"name": "mcp.fs.rm"},
        "context": {"mcp": {"annotations": {"destructiveHint": True}}},
    },
    {"action": {"name": "mcp.fs.rm"}, "context": {"mcp": 3}},
    {"action": {"name": "other.thing"}},
]


def test_the_formula_decides_every_example_case_as_the_engine_does():
    # The translation checked against the engine on every shipped case: for each request,
    # the formula must force exactly the engine's outcome and reviewer group.
    bundle = load_bundle(POLICIES)
    cases = [
        c
        for f in load_cases(POLICIES)
        for c in f.cases
        if not c.request.action.name.startswith("db.")
    ]
    assert len(cases) > 20
    requests = [(c.name, c.request, c.default or DefaultDecision()) for c in cases]
    for i, extra in enumerate(ODD_REQUESTS):
        parsed = json_format.ParseDict(extra, pb.common.ActionRequest())
        requests.append((f"odd request {i}", parsed, DefaultDecision()))
    refused = 0
    for name, request, default in requests:
        for schemas in ((), bundle.params):
            symbols = Symbols(schemas=schemas)
            term = decision(bundle, symbols, default)
            ev = evaluate(bundle, request, DEFAULT_NOW, default)
            data = json_format.MessageToDict(request, preserving_proto_field_name=True)
            expected = z3.And(
                term.severity == SEVERITY[ev.outcome],
                term.group == z3.StringVal(ev.reviewer_group),
            )
            solver = z3.Solver()
            solver.add(*facts(symbols), *_bind(symbols, data))
            try:
                check_request(schemas, request)
            except InvalidArgument:
                # The schema refuses it before any rule runs: the formula must too.
                assert solver.check() == z3.unsat, name
                refused += 1
                continue
            assert solver.check() == z3.sat, name  # the request is one the formula knows
            solver.add(z3.Not(expected))
            assert solver.check() == z3.unsat, name
    assert refused == 3  # the refunds schema: amount "20000", "lots" and true


def test_a_rule_that_matches_everything_it_applies_to_is_found(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "name: p\nactions: [refund.*]\nrules:\n"
        "  - name: every-refund\n    when: action.name.startsWith('refund.')\n"
        "    decision: allow\n    reason: all of them\n"
    )
    [finding] = analyze_rules(load_bundle(tmp_path))
    assert (finding.kind, finding.rule, finding.line) == ("matches-all", "every-refund", 4)


def test_without_the_solver_the_command_says_how_to_install_it(monkeypatch, capsys):
    # As if z3-solver were not installed: its import fails, and so does the analysis'.
    monkeypatch.setitem(sys.modules, "z3", None)
    for name in [m for m in sys.modules if m.startswith("signoff.analysis")]:
        monkeypatch.delitem(sys.modules, name)
    assert main(["policy", "analyze", str(POLICIES)]) == 2
    assert "pip install 'signoff[analyze]'" in capsys.readouterr().err
    assert main(["policy", "test", str(POLICIES)]) == 1
    assert "invariant NOT RUN" in capsys.readouterr().out


def test_requests_a_policy_leaves_to_the_default_are_shown_with_an_example(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "name: p\nactions: [pay.*]\nrules:\n"
        "  - name: big\n    when: double(action.params.amount) > 100.0\n"
        "    decision: review\n    reviewers: finance\n    reason: big\n"
    )
    analysis = analyze(load_bundle(tmp_path), [])
    [finding] = analysis.findings
    assert (finding.kind, finding.policy, finding.rule) == ("default-applies", "p", "")
    assert "(the default decision applies), e.g. " in finding.message
    example = json.loads(finding.message.split("e.g. ", 1)[1])
    request = json_format.ParseDict(example, pb.common.ActionRequest())
    ev = evaluate(load_bundle(tmp_path), request, DEFAULT_NOW, DefaultDecision())
    assert ev.default_applied
    assert analysis.ok  # said, not counted: the default may be meant
