"""`signoff policy diff OLD NEW`: regions whose outcome changes, on real bundle copies.

Every example asserted here is the one the command printed, decided again by the engine in
the test with both bundles: the solver's answer is never trusted unchecked.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from google.protobuf import json_format

from signoff import pb
from signoff.analysis.diff import diff
from signoff.cli.main import main
from signoff.core.decide import DefaultDecision, evaluate
from signoff.policy import load_bundle
from signoff.policytest.run import DEFAULT_NOW
from tests.unit.test_policy_analyze_schema import PAY_RULES, _bundle

POLICIES = Path(__file__).resolve().parents[2] / "policies"

NEW_DENY = """
  - name: blocked-country
    when: has(context.country) && context.country == "XX"
    decision: deny
    reason: No refunds to this country.
"""

OUTSIDE_SUBSET = """
  - name: test-accounts
    when: resource.id.matches("^test-[0-9]+$")
    decision: deny
    reason: Test accounts get no refunds.
"""


def _copy(tmp_path: Path, name: str) -> Path:
    copy = tmp_path / name
    shutil.copytree(POLICIES, copy)
    return copy


def _edit(directory: Path, old: str, new: str) -> None:
    refunds = directory / "refunds.yaml"
    text = refunds.read_text()
    assert old in text
    refunds.write_text(text.replace(old, new))


def _decide(directory: Path, data: dict) -> tuple[str, str, str]:
    request = json_format.ParseDict(data, pb.common.ActionRequest())
    ev = evaluate(load_bundle(directory), request, DEFAULT_NOW, DefaultDecision())
    rule = ev.deciding_rule.name if ev.deciding_rule else ""
    return ev.outcome, ev.reviewer_group, rule


def test_an_unchanged_bundle_has_no_differences(tmp_path, capsys):
    # The example bundle has rules outside the subset (matches()): unchanged, they agree.
    copy = _copy(tmp_path, "new")
    assert main(["policy", "diff", str(POLICIES), str(copy)]) == 0
    out = capsys.readouterr().out
    assert "no difference: 0 region(s)" in out
    assert "NOT ANALYSED  old and new: db_migrations.yaml:10 rule drop-statement" in out


def test_a_raised_threshold_is_the_band_between_the_thresholds_with_a_confirmed_example(
    tmp_path, capsys
):
    new = _copy(tmp_path, "new")
    _edit(new, "when: vars.amount > 500\n", "when: vars.amount > 1000\n")
    _edit(new, "when: vars.amount <= 500\n", "when: vars.amount <= 1000\n")
    assert main(["policy", "diff", str(POLICIES), str(new), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [
        (
            c["actions"],
            c["old"]["outcome"],
            c["old"]["reviewers"],
            c["new"]["outcome"],
            c["confirmed"],
        )
        for c in report["changes"]
    ] == [("refund.*", "review", "finance", "allow", True)]
    example = report["changes"][0]["example"]
    amount = float(example["action"]["params"]["amount"])
    assert 500 < amount <= 1000
    assert _decide(POLICIES, example) == ("review", "finance", "large-refund")
    assert _decide(new, example) == ("allow", "", "small-refund")


def test_a_new_deny_rule_is_found_and_printed_as_a_test_case_of_new(tmp_path, capsys):
    new = _copy(tmp_path, "new")
    _edit(new, "\nredact:", NEW_DENY + "\nredact:")
    assert main(["policy", "diff", str(POLICIES), str(new)]) == 1
    out = capsys.readouterr().out
    assert "differ:" in out
    result = diff(load_bundle(POLICIES), load_bundle(new))
    assert result.changes
    for change in result.changes:
        assert change.glob == "refund.*"
        assert (change.new.outcome, change.new.rule, change.confirmed) == (
            "deny",
            "blocked-country",
            True,
        )
        assert change.old.outcome != "deny"
        assert change.example["context"]["country"] == "XX"
        assert _decide(new, change.example)[0] == "deny"
        assert _decide(POLICIES, change.example)[0] == change.old.outcome
    # The printed example is a test case: paste it, and NEW decides what it expects.
    pasted = out.split("example (refund.*: ")[1].split("):\n", 1)[1].split("\n\n")[0]
    case = yaml.safe_load(pasted)[0]
    assert case["expect"] == {"outcome": "deny", "rule": "blocked-country"}
    assert _decide(new, case["request"]) == ("deny", "", "blocked-country")


def test_a_rule_outside_the_subset_is_reported_not_analysed_never_guessed(tmp_path):
    new = _copy(tmp_path, "new")
    _edit(new, "\nredact:", OUTSIDE_SUBSET + "\nredact:")
    result = diff(load_bundle(POLICIES), load_bundle(new))
    skipped = [(s.side, s.file, s.rule, s.message) for s in result.skipped]
    assert ("new", "refunds.yaml", "test-accounts", "when: the function matches()") in skipped
    # Whatever the solver proposes for it, only what the engine confirms is called confirmed.
    for change in result.changes:
        old, new_side = _decide(POLICIES, change.example), _decide(new, change.example)
        agrees = (old[:2], new_side[:2]) == (
            (change.old.outcome, change.old.reviewers),
            (change.new.outcome, change.new.reviewers),
        )
        assert change.confirmed == agrees


def test_a_broken_bundle_is_reported_and_nothing_compared(tmp_path, capsys):
    new = _copy(tmp_path, "new")
    _edit(new, "when: vars.amount > 500\n", "when: vars.amout > 500\n")
    assert main(["policy", "diff", str(POLICIES), str(new)]) == 1
    assert "nothing compared" in capsys.readouterr().err


# The same, plus a currency the schema never admits: a change only outside the schema.
PAY_NEW = PAY_RULES.replace(
    "action.params.amount > 1000.0",
    'action.params.amount > 1000.0 || action.params.currency == "XXX"',
)
PAY_SCHEMA = """
type: object
required: [amount, currency]
properties:
  amount: {type: number}
  currency: {enum: [EUR, USD]}
"""


def test_a_change_only_for_requests_the_schemas_refuse_is_no_difference(tmp_path):
    old = load_bundle(_bundle(tmp_path / "old", PAY_RULES, PAY_SCHEMA))
    new = load_bundle(_bundle(tmp_path / "new", PAY_NEW, PAY_SCHEMA))
    result = diff(old, new)
    assert result.changes == ()
    assert not [s for s in result.skipped if "schemas differ" in s.message]
    # The control: without the schemas the currency "XXX" is a real region of change.
    bare = diff(
        load_bundle(_bundle(tmp_path / "o2", PAY_RULES)),
        load_bundle(_bundle(tmp_path / "n2", PAY_NEW)),
    )
    assert bare.changes
    assert all(c.confirmed for c in bare.changes)
    assert any(c.example["action"]["params"].get("currency") == "XXX" for c in bare.changes)


def test_examples_satisfy_both_schemas_and_differing_schemas_are_noted(tmp_path):
    looser = PAY_SCHEMA.replace("enum: [EUR, USD]", "enum: [EUR, USD, XXX]")
    old = load_bundle(_bundle(tmp_path / "old", PAY_RULES, PAY_SCHEMA))
    new = load_bundle(_bundle(tmp_path / "new", PAY_NEW.replace('"XXX"', '"USD"'), looser))
    result = diff(old, new)
    [change] = result.changes
    assert change.confirmed, change.message
    params = change.example["action"]["params"]
    assert params["currency"] == "USD"
    assert isinstance(params["amount"], float)  # required by both schemas, filled in
    [note] = [s for s in result.skipped if "schemas differ" in s.message]
    assert "the action schemas differ" in note.message
