"""The CEL extensions the analysis translates (math, cel.bind, optional values, indexOf,
substring, charAt, all/exists and their two-variable forms over list literals), each
checked against the engine twice:

- on requests the solver finds itself: one where the expression is true, one where it is
  false, one where it fails (each that exists); the engine must say the same of each;
- on hand-picked requests (odd JSON kinds included), pinned in the formula: it must force
  exactly what the engine says.

What z3 cannot express exactly stays "not analysed", with its position.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import z3
from google.protobuf import json_format

from signoff import pb
from signoff.analysis.check import analyze_rules, check_invariant, facts
from signoff.analysis.request import request_data
from signoff.analysis.symbols import Symbols
from signoff.analysis.translate import Translator, Unsupported
from signoff.analysis.tree import tree
from signoff.core.decide import DefaultDecision, evaluate
from signoff.policy import CelEvalError, cel, load_bundle
from signoff.policytest import load_cases
from signoff.policytest.run import DEFAULT_NOW

NOW = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)

CASES: list[tuple[str, list[dict[str, Any]]]] = [
    (
        "math.greatest(action.params.a, 2.0, action.params.b) > 3.0",
        [{"a": 4.0, "b": 1.0}, {"a": 1.0, "b": 1.0}, {"a": "x", "b": 9.0}, {"b": 9.0}],
    ),
    ("math.least([action.params.a, 10.0]) < 0.5", [{"a": 0.25}, {"a": 20.0}, {"a": True}]),
    ("math.greatest(1, 3) == 3 && math.least(2, 5, 1) == 1", [{}]),
    ("math.greatest(size(action.params.s), 2.5) == 3", [{"s": "abc"}, {"s": "ab"}]),
    ("math.abs(action.params.a) > 2.0", [{"a": -3.0}, {"a": 1.0}, {"a": "3"}]),
    ("math.abs(size(action.params.s) - 5) == 2", [{"s": "abc"}, {"s": "abcdefg"}, {"s": "a"}]),
    (
        "cel.bind(x, action.params.a, x > 1.0 && x < 5.0)",
        [{"a": 2.0}, {"a": 7.0}, {}, {"a": "2"}],
    ),
    ("cel.bind(x, action.params.missing, true)", [{}]),
    (
        'cel.bind(xs, ["EUR", "USD"], action.params.c in xs)',
        [{"c": "EUR"}, {"c": "GBP"}, {"c": 1.0}, {}],
    ),
    (
        "cel.bind(x, action.params.?a.orValue(2.0), x) == 2.0",
        [{"a": 2.0}, {}, {"a": "2"}, {"a": 3.0}],
    ),
    ("cel.bind(x, action.params.a, false && x == 1.0)", [{}]),
    (
        "action.params.?a.orValue(0.0) > 10.0",
        [{"a": 11.0}, {"a": 3.0}, {}, {"a": "11"}],
    ),
    ('action.params.?c.orValue("EUR") == "EUR"', [{"c": "EUR"}, {"c": "USD"}, {}, {"c": 1.0}]),
    ("action.params.?a.orValue(action.params.b) == 1.0", [{"a": 1.0}, {"b": 1.0}, {}]),
    ("action.params.?o.?k.hasValue()", [{"o": {"k": 1.0}}, {"o": {}}, {}, {"o": "s"}]),
    ('action.params[?"a"].value() == 2.0', [{"a": 2.0}, {"a": 3.0}, {}]),
    (
        'action.params.s.indexOf("-") == 2',
        [{"s": "ab-c"}, {"s": "abc"}, {"s": "-a-"}, {"s": 3.0}],
    ),
    ('action.params.s.indexOf("a", 1) >= 0', [{"s": "aba"}, {"s": "ab"}, {"s": ""}]),
    ('action.params.s.lastIndexOf("ab") == 2', [{"s": "abab"}, {"s": "ab"}, {"s": "xxab"}]),
    ('action.params.s.lastIndexOf("") == 3', [{"s": "abc"}, {"s": "ab"}]),
    (
        'action.params.s.lastIndexOf("ab", 1) == 0',
        [{"s": "abab"}, {"s": "xab"}, {"s": "a"}, {"s": ""}, {"s": "ab"}],
    ),
    (
        # The engine refuses substring(i, size) for i < size: "abc".substring(1, 3) fails.
        'action.params.s.substring(1, 3) == "bc"',
        [{"s": "abcd"}, {"s": "abc"}, {"s": "abd"}, {"s": "ab"}, {"s": ""}],
    ),
    ('action.params.s.substring(2) == ""', [{"s": "ab"}, {"s": "abc"}, {"s": "a"}]),
    ('action.params.s.charAt(1) == "x"', [{"s": "ax"}, {"s": "a"}, {"s": ""}, {"s": "axe"}]),
    (
        "[action.params.a, 3.0].all(v, v > 1.0)",
        [{"a": 2.0}, {"a": 0.0}, {"a": "x"}, {}],
    ),
    (
        "[action.params.a, action.params.b].exists(v, v > 1.0)",
        [{"a": 2.0, "b": "x"}, {"a": "x", "b": 0.0}, {"a": 0.0, "b": 0.0}],
    ),
    (
        "[action.params.a, 5.0].all(i, v, v > double(i))",
        [{"a": 2.0}, {"a": -1.0}, {"a": True}],
    ),
    ("[1.0, action.params.a].exists(i, v, i == 1 && v == 7.0)", [{"a": 7.0}, {"a": 1.0}]),
    ('["a", "b"].exists(x, x == action.params.s)', [{"s": "b"}, {"s": "c"}, {"s": 1.0}]),
    (
        'action.params.s.lowerAscii() == "drop é1"',
        [{"s": "DROP é1"}, {"s": "dRoP é1"}, {"s": "DROP É1"}, {"s": "drop"}, {"s": 1.0}],
    ),
    ('action.params.s.lowerAscii() == "Drop"', [{"s": "Drop"}, {"s": "drop"}]),
    (
        'action.params.s.upperAscii().startsWith("DR") && size(action.params.s.upperAscii()) > 3',
        [{"s": "drop"}, {"s": "dr"}, {"s": "xdrop"}],
    ),
    ('action.params.s.lowerAscii().contains("drop")', [{"s": "x DROP y"}, {"s": "DRP"}]),
    ('action.params.s.lowerAscii().endsWith("-x")', [{"s": "A-X"}, {"s": "A-Y"}]),
    ('action.params.s.upperAscii() in ["A", "B1"]', [{"s": "b1"}, {"s": "c"}, {"s": "a"}]),
    ('action.params.s.lowerAscii() != ""', [{"s": ""}, {"s": "Q"}]),
    # A conditional with a JSON value on one side is JSON: its kind is either side's.
    (
        '(action.params.f == true ? action.params.a : 1.0) == "x"',
        [{"f": True, "a": "x"}, {"f": True, "a": 1.0}, {"f": False, "a": "x"}, {"f": 1.0}],
    ),
    (
        "(has(action.params.a) ? action.params.a : 0.0) > 5.0",
        [{"a": 6.0}, {"a": 1.0}, {}, {"a": "7"}],
    ),
    (
        "(action.params.f == true ? action.params.a : action.params.b) == 2.0",
        [{"f": True, "a": 2.0}, {"f": False, "b": 2.0}, {"f": False, "a": 2.0}],
    ),
    (
        "(action.params.f == true ? action.params.a : 0) == 0 && size(action.params.s) > 0",
        [{"f": False, "s": "x"}, {"f": True, "a": 0.0, "s": "y"}, {"f": True, "a": "0"}],
    ),
    # int() of JSON: numbers truncate (failing out of range), bools are 0 or 1.
    (
        "int(action.params.a) == 3",
        [{"a": 3.7}, {"a": -3.7}, {"a": 4.0}, {"a": 1e30}, {"a": None}, {"a": [1.0]}],
    ),
    ("int(action.params.a) + 1 == 2", [{"a": True}, {"a": False}, {"a": 1.5}]),
    (
        "[action.params.a, action.params.b, 2.0].exists_one(v, v > 1.0)",
        [{"a": 0.0, "b": 0.0}, {"a": 3.0, "b": 0.0}, {"a": 3.0, "b": 3.0}, {"a": "x", "b": 0.0}],
    ),
]


def _request(params: dict[str, Any]) -> pb.common.ActionRequest:
    data = {"action": {"name": "pay.send", "params": params}}
    return json_format.ParseDict(data, pb.common.ActionRequest())


def _engine(expr: str, request: pb.common.ActionRequest) -> bool | None:
    """True, False, or None when the engine fails."""
    try:
        value = cel.compile(expr).eval(cel.Activation(request, NOW))
    except CelEvalError:
        return None
    assert isinstance(value, bool)
    return value


def _formula(expr: str) -> tuple[Symbols, z3.BoolRef, z3.BoolRef]:
    symbols = Symbols()
    true, fails = Translator(symbols).condition(tree(cel.compile(expr)))
    return symbols, true, fails


def _outcome(true: z3.BoolRef, fails: z3.BoolRef, engine: bool | None) -> z3.BoolRef:
    if engine is None:
        return fails
    return true if engine else z3.And(z3.Not(true), z3.Not(fails))


@pytest.mark.parametrize(("expr", "requests"), CASES)
def test_the_solver_s_examples_are_what_the_engine_says(expr, requests):
    symbols, true, fails = _formula(expr)
    found = 0
    for want in (True, False, None):
        solver = z3.Solver()
        solver.add(*facts(symbols), _outcome(true, fails, want))
        if solver.check() != z3.sat:
            continue
        data = request_data(solver.model(), symbols)
        request = json_format.ParseDict(data, pb.common.ActionRequest())
        assert _engine(expr, request) == want, (want, data)
        found += 1
    assert found >= 1


@pytest.mark.parametrize(("expr", "requests"), CASES)
def test_the_formula_forces_what_the_engine_says_on_each_request(expr, requests):
    symbols, true, fails = _formula(expr)
    for params in requests:
        engine = _engine(expr, _request(params))
        solver = z3.Solver()
        solver.add(*facts(symbols), *_pin(symbols, params))
        assert solver.check() == z3.sat, params
        solver.add(z3.Not(_outcome(true, fails, engine)))
        assert solver.check() == z3.unsat, (params, engine)


def _pin(symbols: Symbols, params: dict[str, Any]) -> list[z3.BoolRef]:
    """The formula's variables set to this request's (its action is pay.send)."""
    out = [symbols.string(("action", "name")) == z3.StringVal("pay.send")]
    for path, j in symbols.json.items():
        node: Any = params
        present = True
        for key in path[2:]:
            if not isinstance(node, dict) or key not in node:
                present = False
                break
            node = node[key]
        out.append(j.present == present)
        if not present:
            continue
        if node is None:
            out.append(j.kind == 0)
        elif isinstance(node, list):
            out += [j.kind == 4, j.size == len(node)]
        elif isinstance(node, bool):
            out += [j.kind == 1, j.bool == node]
        elif isinstance(node, float):
            out += [j.kind == 2, j.num == z3.RealVal(node)]
        elif isinstance(node, str):
            out += [j.kind == 3, j.str == z3.StringVal(node), j.unparsable == True]  # noqa: E712
        elif isinstance(node, dict):
            out += [j.kind == 5, j.size == len(node)]
    return out


@pytest.mark.parametrize(
    ("expr", "why"),
    [
        ('action.params.s.lowerAscii() + "x" == "ax"', "arithmetic on lowerAscii and string"),
        ("action.params.s.lowerAscii() == action.params.t", "lowerAscii.. compared with anything"),
        ('action.params.s.trim() == "a"', "the function trim()"),
        ('action.params.s.split(",").size() == 2', "the function split()"),
        ("principal.tags.exists(t, t == 'x')", "a loop (all, exists, ...) over a strlist"),
        ("[1, 2].map(x, x * 2) == [2, 4]", "a loop that builds a list (map, filter)"),
        (
            "action.params.?a.orValue(0.0) + 1.0 > 2.0",
            "arithmetic on a computed JSON value (orValue, a conditional)",
        ),
        (
            "(true ? action.params.a : 1.0) + 1.0 > 2.0",
            "arithmetic on a computed JSON value (orValue, a conditional)",
        ),
        ("math.greatest(action.params.xs) > 1.0", "math.greatest() of a dyn"),
        (f"{list(range(65))}.exists(x, x == 1)", "a loop over more than 64 elements"),
        (
            "{0}.all(x, {0}.all(y, {0}.exists(z, x + y + z == 1)))".format(list(range(11))),
            "loops of more than 1024 steps in all",
        ),
    ],
)
def test_what_z3_cannot_express_exactly_is_not_analysed(expr, why):
    with pytest.raises(Unsupported, match=f"^{why.replace('(', '.').replace(')', '.')}"):
        _formula(expr)


def test_an_extension_outside_the_subset_is_reported_at_its_rule(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "name: p\nrules:\n"
        "  - name: bound\n    when: cel.bind(a, action.params.?a.orValue(0.0), a > 5.0)\n"
        "    decision: deny\n    reason: big\n"
        "  - name: trimmed\n    when: action.params.s.trim() == 'x'\n"
        "    decision: deny\n    reason: x\n"
    )
    found = [(f.kind, f.rule, f.line, f.message) for f in analyze_rules(load_bundle(tmp_path))]
    assert found == [("not-analysed", "trimmed", 7, "when: the function trim()")]


def test_a_rule_written_with_extensions_is_analysed_and_its_counterexample_confirmed(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "name: p\nactions: [pay.*]\nrules:\n"
        "  - name: big\n"
        "    when: cel.bind(a, math.abs(action.params.?amount.orValue(0.0)), a > 1000.0)\n"
        "    decision: deny\n    reason: big\n"
        "  - name: rest\n    when: action.params.?note.orValue('').indexOf('ok') >= 0\n"
        "    decision: allow\n    reason: fine\n"
    )
    (tmp_path / "p_test.yaml").write_text(
        "cases: []\ninvariants:\n"
        "  - name: a big refund, positive or negative, is never allowed\n"
        "    never:\n      outcome: allow\n"
        "      when: action.params.?amount.orValue(0.0) < -1000.0\n"
        "  - name: a note saying ok is always allowed\n"
        "    always:\n      outcome: allow\n"
        "      when: action.name == 'pay.send' && action.params.?note.orValue('') == 'ok'\n"
    )
    bundle = load_bundle(tmp_path)
    assert analyze_rules(bundle) == []
    proved, broken = [i for f in load_cases(tmp_path) for i in f.invariants]
    assert check_invariant(bundle, proved).status == "proved"
    result = check_invariant(bundle, broken)
    assert result.status == "violated"
    assert result.counterexample is not None
    request = json_format.ParseDict(result.counterexample, pb.common.ActionRequest())
    ev = evaluate(bundle, request, DEFAULT_NOW, DefaultDecision())
    # `big` decides: it denies a large amount, or fails (a null amount: on_error review).
    assert ev.deciding_rule is not None
    assert ev.deciding_rule.name == "big"
    assert ev.outcome in ("deny", "review")


@pytest.mark.parametrize("text", ["12", " 12", "+12", "-0", "12.5", "12.0", "0x10", "1e3", "x"])
def test_int_of_a_string_is_what_the_engine_says_or_left_open(text):
    # A string's number is not tied to its text: pinned to it, the formula may not force
    # the engine's answer, but it must allow it (every real outcome is a model).
    expr = "int(action.params.a) == 12"
    symbols, true, fails = _formula(expr)
    engine = _engine(expr, _request({"a": text}))
    j = symbols.value(("action", "params", "a"))
    solver = z3.Solver()
    solver.add(*facts(symbols), j.kind == 3, j.present)
    solver.add(j.str == z3.StringVal(text), _outcome(true, fails, engine))
    assert solver.check() == z3.sat


def test_int_of_a_string_the_solver_writes_is_what_it_meant():
    expr = "int(action.params.a) == 12"
    symbols, true, fails = _formula(expr)
    j = symbols.value(("action", "params", "a"))
    for want in (True, None):
        solver = z3.Solver()
        solver.add(*facts(symbols), j.present, j.kind == 3, z3.Not(j.unparsable))
        solver.add(_outcome(true, fails, want))
        if want is None:  # refused though it is a whole number: written "12.0"
            solver.add(j.parsed == 12)
        assert solver.check() == z3.sat
        data = request_data(solver.model(), symbols)
        assert _engine(expr, _request(data["action"]["params"])) == want, data
