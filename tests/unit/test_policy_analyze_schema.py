"""`policy analyze` with action schemas: a request the schema refuses is never a finding's
example nor a counterexample, and what only holds under the schema is proved.

Each planted case is analysed twice, without and with its `params:` schema: without it the
solver's example (confirmed by the engine) breaks the schema; with it the finding is gone.
Every counterexample here is evaluated again by the engine and validated by the schema.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import z3
from google.protobuf import json_format

from signoff import pb
from signoff.analysis.check import analyze, analyze_policies, analyze_rules, facts
from signoff.analysis.decision import decision
from signoff.analysis.schema import complete, constraints
from signoff.analysis.symbols import NUM, STR, Symbols
from signoff.cli.main import main
from signoff.core.decide import SEVERITY, DefaultDecision, evaluate
from signoff.policy import load_bundle
from signoff.policy.params import ParamSchema, check_request
from signoff.policytest import load_cases
from signoff.policytest.run import DEFAULT_NOW

NEVER_REVIEWED = """
cases: []
invariants:
  - name: a payment is never sent to review
    never:
      outcome: review
      when: action.name == "pay.send"
"""


def _bundle(tmp_path: Path, rules: str, params: str = "", tests: str = "") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    text = "name: pay\nactions: [pay.*]\nrules:\n" + textwrap.dedent(rules)
    if params:
        text += "params:\n  pay.*:\n" + textwrap.indent(textwrap.dedent(params), "    ")
    (tmp_path / "pay.yaml").write_text(text)
    if tests:
        (tmp_path / "pay_test.yaml").write_text(tests)
    return tmp_path


def _engine_and_schema_agree(directory: Path, data: dict) -> pb.common.ActionRequest:
    """The request, after checking that the schema accepts it (the service would run it)."""
    bundle = load_bundle(directory)
    request = json_format.ParseDict(data, pb.common.ActionRequest())
    check_request(bundle.params, request)  # raises InvalidArgument if the schema refuses it
    return request


# An amount that is not a number (or is missing) makes `deny-big` fail: on_error review.
PAY_RULES = """
- name: deny-big
  when: action.params.amount > 1000.0
  decision: deny
  reason: too big
- name: allow-rest
  when: "true"
  decision: allow
  reason: fine
"""


def _invariant(directory: Path):
    [inv] = [i for f in load_cases(directory) for i in f.invariants]
    return inv


def test_without_a_schema_a_non_number_amount_is_a_counterexample(tmp_path):
    directory = _bundle(tmp_path, PAY_RULES, tests=NEVER_REVIEWED)
    [result] = analyze(load_bundle(directory), [_invariant(directory)]).invariants
    assert result.status == "violated"
    assert result.counterexample is not None
    amount = result.counterexample["action"].get("params", {}).get("amount")
    assert not isinstance(amount, float)  # missing, or a string, a bool...: never a number


def test_a_required_number_in_the_schema_proves_the_invariant(tmp_path):
    schema = """
    type: object
    required: [amount]
    properties:
      amount: {type: number, minimum: 0}
    """
    directory = _bundle(tmp_path, PAY_RULES, schema, NEVER_REVIEWED)
    [result] = analyze(load_bundle(directory), [_invariant(directory)]).invariants
    assert (result.status, result.message) == ("proved", "proved")


def test_an_optional_number_leaves_only_the_missing_amount_and_it_validates(tmp_path):
    schema = """
    type: object
    required: [currency]
    properties:
      amount: {type: number}
      currency: {enum: [EUR, USD]}
    """
    directory = _bundle(tmp_path, PAY_RULES, schema, NEVER_REVIEWED)
    bundle = load_bundle(directory)
    [result] = analyze(bundle, [_invariant(directory)]).invariants
    assert result.status == "violated"
    data = result.counterexample
    assert data is not None
    # No rule reads currency: the schema requires it, so the example carries one.
    assert data["action"]["params"] == {"currency": "EUR"}
    request = _engine_and_schema_agree(directory, data)
    ev = evaluate(bundle, request, DEFAULT_NOW, DefaultDecision())
    assert (ev.outcome, ev.deciding_rule.name if ev.deciding_rule else "") == (
        "review",
        "deny-big",
    )


BANDS = """
- name: low
  when: action.params.count <= 2.0
  decision: allow
  reason: few
- name: high
  when: action.params.count >= 3.0
  decision: review
  reviewers: ops
  reason: many
"""


def test_an_integer_leaves_no_gap_between_two_bands(tmp_path):
    number = "type: object\nrequired: [count]\nproperties:\n  count: {type: number}\n"
    directory = _bundle(tmp_path / "number", BANDS, number)
    [gap] = analyze_policies(load_bundle(directory))
    assert gap.kind == "default-applies"
    assert "(not confirmed)" not in gap.message
    example = gap.message.split("e.g. ", 1)[1]
    request = _engine_and_schema_agree(directory, json_format.json.loads(example))
    assert 2.0 < request.action.params["count"] < 3.0
    integer = number.replace("type: number", "type: integer")
    directory = _bundle(tmp_path / "integer", BANDS, integer)
    assert analyze_policies(load_bundle(directory)) == []


ENUM_RULES = """
- name: euro
  when: action.params.currency == "EUR"
  decision: allow
  reason: home currency
- name: pound
  when: action.params.currency == "GBP"
  decision: review
  reviewers: fx
  reason: foreign currency
- name: too-much
  when: action.params.amount > 500.0
  decision: review
  reviewers: finance
  reason: over the limit
- name: long-note
  when: size(action.params.note) > 20
  decision: deny
  reason: notes are short
"""

ENUM_SCHEMA = """
type: object
properties:
  currency: {type: string, enum: [EUR, USD]}
  amount: {type: number, minimum: 0, maximum: 500}
  note: {type: string, maxLength: 20}
"""


def test_enums_bounds_and_lengths_make_rules_ineffective(tmp_path):
    plain = _bundle(tmp_path / "plain", ENUM_RULES)
    assert [f.kind for f in analyze_rules(load_bundle(plain))] == []
    typed = _bundle(tmp_path / "typed", ENUM_RULES, ENUM_SCHEMA)
    found = sorted((f.kind, f.rule) for f in analyze_rules(load_bundle(typed)))
    assert found == [
        ("ineffective", "long-note"),
        ("ineffective", "pound"),
        ("ineffective", "too-much"),
    ]


def test_a_schema_applies_only_under_its_glob(tmp_path):
    # The schema binds pay.send only: pay.other may carry any currency, so no rule is
    # ineffective, but a pound payment is never pay.send.
    text = "name: pay\nactions: [pay.*]\nrules:\n" + textwrap.dedent(ENUM_RULES)
    text += "params:\n  pay.send:\n" + textwrap.indent(textwrap.dedent(ENUM_SCHEMA), "    ")
    (tmp_path / "pay.yaml").write_text(text)
    (tmp_path / "pay_test.yaml").write_text(
        "cases: []\ninvariants:\n  - name: pounds are never sent\n    never:\n"
        "      outcome: review\n      reviewers: fx\n      when: action.name == 'pay.send'\n"
    )
    bundle = load_bundle(tmp_path)
    assert [f.kind for f in analyze_rules(bundle)] == []
    [result] = analyze(bundle, [_invariant(tmp_path)]).invariants
    assert result.status == "proved"


def _typed(schema: dict) -> tuple[Symbols, list]:
    symbols = Symbols(schemas=(ParamSchema.of("pay.*", schema),))
    symbols.value(("action", "params", "x"))
    return symbols, facts(symbols)


def _solvable(symbols: Symbols, extra: list) -> bool:
    solver = z3.Solver()
    solver.add(*facts(symbols), *extra)
    solver.add(z3.InRe(symbols.string(("action", "name")), z3.Re("pay.send")))
    return solver.check() == z3.sat


def test_exclusive_bounds_and_closed_objects_are_constraints():
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"x": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}},
    }
    symbols, _ = _typed(schema)
    x = symbols.value(("action", "params", "x"))
    assert _solvable(symbols, [x.present, x.num > 0, x.num < 1])
    assert not _solvable(symbols, [x.present, x.num == 0])
    assert not _solvable(symbols, [x.present, x.num == 1])
    assert not _solvable(symbols, [x.present, x.kind == STR])
    y = symbols.value(("action", "params", "y"))
    assert not _solvable(symbols, [y.present])  # undeclared under additionalProperties: false
    assert _solvable(symbols, [x.present, x.kind == NUM])


def test_without_schemas_there_are_no_constraints():
    symbols = Symbols()
    symbols.value(("action", "params", "x"))
    assert constraints(symbols, ()) == []


def test_complete_fills_required_keys_and_list_items_with_valid_values():
    schema = {
        "type": "object",
        "required": ["code", "n", "tags", "payee"],
        "properties": {
            "code": {"type": "string", "minLength": 3},
            "n": {"type": "integer", "minimum": 5, "maximum": 9},
            "tags": {"type": "array", "items": {"type": "string"}},
            "list": {"type": "array", "items": {"type": "boolean"}},
            "payee": {
                "type": "object",
                "required": ["iban"],
                "properties": {"iban": {"type": "string", "minLength": 4}},
            },
        },
    }
    schemas = (ParamSchema.of("pay.*", schema),)
    data = {"action": {"name": "pay.send", "params": {"list": [None, None]}}}
    done = complete(data, schemas)
    assert done["action"]["params"] == {
        "list": [False, False],
        "code": "aaa",
        "n": 6.0,
        "tags": [],
        "payee": {"iban": "aaaa"},
    }
    check_request(schemas, json_format.ParseDict(done, pb.common.ActionRequest()))


def test_the_schema_formula_refuses_exactly_the_requests_the_schema_refuses(tmp_path):
    directory = _bundle(tmp_path, ENUM_RULES, ENUM_SCHEMA)
    bundle = load_bundle(directory)
    requests = [
        {"currency": "EUR", "amount": 20.0, "note": "ok"},
        {"currency": "USD"},
        {"currency": "GBP"},
        {"currency": 3},
        {"amount": 501.0},
        {"amount": -1.0},
        {"amount": "20"},
        {"note": "x" * 21},
        {"note": "x" * 20},
        {},
    ]
    for params in requests:
        data = {"action": {"name": "pay.send", "params": params}}
        request = json_format.ParseDict(data, pb.common.ActionRequest())
        try:
            check_request(bundle.params, request)
            valid = True
        except Exception:
            valid = False
        symbols = Symbols(schemas=bundle.params)
        term = decision(bundle, symbols, DefaultDecision())
        solver = z3.Solver()
        solver.add(*facts(symbols), *_pin(symbols, data))
        assert (solver.check() == z3.sat) == valid, params
        if valid:
            ev = evaluate(bundle, request, DEFAULT_NOW, DefaultDecision())
            solver.add(term.severity != SEVERITY[ev.outcome])
            assert solver.check() == z3.unsat, params


def _pin(symbols: Symbols, data: dict) -> list:
    out = [symbols.string(("action", "name")) == z3.StringVal(data["action"]["name"])]
    params = data["action"]["params"]
    for path, j in symbols.json.items():
        key = path[-1]
        out.append(j.present == (key in params))
        if key not in params:
            continue
        value = params[key]
        if isinstance(value, str):
            out += [j.kind == STR, j.str == z3.StringVal(value)]
        else:
            out += [j.kind == NUM, j.num == z3.RealVal(value)]
    return out


def test_a_counterexample_the_schema_refuses_is_unknown_never_violated(tmp_path):
    # double() of a string is some number not tied to its text (not modelled), so the
    # solver's only way to deny writes "101" (or so) where the enum allows "7" or "8": the
    # service would refuse that request before any rule runs, and so does the re-check.
    rules = """
    - name: big-code
      when: double(action.params.code) > 100.0
      decision: deny
      reason: big
    - name: rest
      when: "true"
      decision: allow
      reason: fine
    """
    schema = "type: object\nrequired: [code]\nproperties:\n  code: {enum: ['7', '8']}\n"
    never_denied = NEVER_REVIEWED.replace("outcome: review", "outcome: deny")
    directory = _bundle(tmp_path, rules, schema, never_denied)
    [result] = analyze(load_bundle(directory), [_invariant(directory)]).invariants
    assert result.status == "unknown"
    assert result.counterexample is None
    assert "did not hold: not a valid request (action.params.code: must be one of" in (
        result.message
    )


def test_nested_objects_required_keys_and_integers():
    schema = {
        "type": "object",
        "properties": {
            "payee": {
                "type": "object",
                "required": ["iban"],
                "properties": {"iban": {"type": "string", "minLength": 4}},
            },
            "n": {"type": "integer"},
        },
    }
    symbols = Symbols(schemas=(ParamSchema.of("pay.*", schema),))
    payee = symbols.value(("action", "params", "payee"))
    iban = symbols.value(("action", "params", "payee", "iban"))
    n = symbols.value(("action", "params", "n"))
    assert _solvable(symbols, [z3.Not(payee.present)])  # not required itself
    assert not _solvable(symbols, [payee.present, z3.Not(iban.present)])
    assert not _solvable(symbols, [payee.present, payee.kind == STR])
    assert not _solvable(symbols, [iban.present, z3.Length(iban.str) == 3])
    assert _solvable(symbols, [iban.present, iban.str == z3.StringVal("DE00")])
    assert not _solvable(symbols, [n.present, n.num == z3.RealVal("2.5")])
    assert _solvable(symbols, [n.present, n.num == 3])


def test_the_command_analyses_extensions_under_a_schema(tmp_path, capsys):
    rules = """
    - name: deny-big
      when: cel.bind(a, math.abs(action.params.amount), a > 1000.0)
      decision: deny
      reason: too big
    - name: pound
      when: action.params.currency.lowerAscii() == "gbp"
      decision: review
      reviewers: fx
      reason: foreign
    - name: rest
      when: action.params.amount <= 1000.0
      decision: allow
      reason: fine
    """
    schema = (
        "type: object\nrequired: [amount, currency]\nproperties:\n"
        "  amount: {type: number}\n  currency: {enum: [EUR, USD]}\n"
    )
    never = NEVER_REVIEWED.replace('action.name == "pay.send"', 'action.name.startsWith("pay.")')
    directory = _bundle(tmp_path, rules, schema, never)
    assert main(["policy", "analyze", str(directory), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [(f["kind"], f["rule"]) for f in report["findings"]] == [("ineffective", "pound")]
    assert [i["status"] for i in report["invariants"]] == ["proved"]


def test_int_of_a_typed_param_is_analysed(tmp_path):
    rules = """
    - name: few
      when: int(action.params.count) <= 2
      decision: allow
      reason: few
    - name: many
      when: int(action.params.count) >= 3
      decision: review
      reviewers: ops
      reason: many
    """
    schema = "type: object\nrequired: [count]\nproperties:\n  count: {type: integer, minimum: 0}\n"
    tests = NEVER_REVIEWED.replace(
        'action.name == "pay.send"', 'action.name == "pay.send" && action.params.count < 3.0'
    )
    directory = _bundle(tmp_path, rules, schema, tests)
    bundle = load_bundle(directory)
    assert analyze(bundle, []).findings == ()
    [result] = analyze(bundle, [_invariant(directory)]).invariants
    assert result.status == "proved"
