"""The CEL extensions (strings, math, optional, bindings, two-variable macros) and the
guards that keep split()/replace()/join()/format() as bounded as map()/filter().

Times are measured in bench/cel_hostile.py, never asserted here: each test shows which
side of a bound a request falls on, and that the refusal comes before the engine runs.
"""

from __future__ import annotations

import datetime as dt
import re
import textwrap
from pathlib import Path

import pytest
from google.protobuf import json_format

from signoff import pb
from signoff.core.decide import DefaultDecision, evaluate
from signoff.policy import BundleError, cel, load_bundle
from signoff.policy.reads import reads

NOW = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
MIB = 1024 * 1024
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "policies.md"
LIMIT = cel.MAX_BUILDER_STRING_CHARS


def request(**fields) -> pb.common.ActionRequest:
    return json_format.ParseDict(fields, pb.common.ActionRequest())


def run(expr: str, **params):
    return cel.compile(expr).eval(cel.Activation(request(action={"params": params}), NOW))


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('"Refund".lowerAscii() + "Refund".upperAscii()', "refundREFUND"),
        ('"a,b,c".split(",")', ["a", "b", "c"]),
        ('["a", "b"].join("-")', "a-b"),
        ('" x ".trim() + "aXa".replace("a", "")', "xX"),
        ('"%s owes %d".format(["bob", 3])', "bob owes 3"),
        ("math.greatest(1, 5, 3) + math.least([4, 2]) + math.abs(-1)", 8),
        ('{"a": 1}.?b.orValue(7)', 7),
        ("optional.of(2).hasValue()", True),
        ("cel.bind(x, 3, x * x)", 9),
        ("[10, 20].all(i, v, v == (i + 1) * 10)", True),
        ("[1, 2].transformList(i, v, v > 1, v * 10)", [20]),
    ],
)
def test_each_extension_evaluates(expr, expected):
    assert run(expr) == expected


def test_optional_field_of_the_request_params():
    assert run("action.params.?currency.orValue('EUR')") == "EUR"
    assert run("action.params.?currency.orValue('EUR')", currency="USD") == "USD"


def test_transform_map_is_a_compile_error_with_its_position():
    # The engine parses transformMap but has no cel.@mapInsert to run it.
    with pytest.raises(cel.CelError) as err:
        cel.compile('true &&\n  {"a": 1}.transformMap(k, v, v) == {}')
    assert (err.value.line, err.value.column) == (2, 12)
    assert "transformMap() is not available" in err.value.message


@pytest.mark.parametrize(
    ("expr", "column", "what"),
    [
        ('action.name.replace("a", action.name) == ""', 26, "replacement of replace()"),
        ('action.name.replace("a", action.name, 1) == ""', 26, "replacement of replace()"),
        ('["a"].join(action.name) == ""', 12, "separator of join()"),
    ],
)
def test_a_replacement_or_separator_from_the_request_is_a_load_error(expr, column, what):
    # s.replace("", t) is len(s) * len(t): both 128 KiB of params would make 16 GiB.
    with pytest.raises(cel.CelError) as err:
        cel.compile(expr)
    assert (err.value.line, err.value.column) == (1, column)
    assert what in err.value.message


def test_a_variable_holding_a_literal_is_a_literal(tmp_path):
    (tmp_path / "p.yaml").write_text(
        textwrap.dedent(
            """\
            name: p
            variables:
              dash: '"-"'
              bad: action.name
            rules:
              - name: ok
                when: 'action.name.replace(".", vars.dash) == "refund-issue"'
                decision: deny
                reason: r
              - name: not-ok
                when: 'action.name.replace(".", vars.bad) == ""'
                decision: deny
                reason: r
            """
        )
    )
    with pytest.raises(BundleError) as err:
        load_bundle(tmp_path)
    (only,) = err.value.errors
    assert re.match(r"p\.yaml:11:37: not-ok: when: the replacement of replace\(\)", str(only))


def test_split_of_a_1_mib_string_by_nothing_runs_outside_a_loop():
    # One call is linear (bench: ~8 ms for 200 KiB); a loop could repeat it 10,000 times.
    assert run('action.params.s.split("").size()', s="a" * MIB) == MIB


@pytest.mark.parametrize(
    "expr",
    [
        'action.params.xs.exists(x, x in action.params.s.split(""))',
        'action.params.s.split("").map(c, c + c).size() > 0',
        'action.params.s.split("").transformList(i, c, c).size() > 0',
        'action.params.xs.all(x, action.params.s.replace("", "-").size() > 0)',
        'action.params.xs.exists(x, "%s".format([action.params.s]) == x)',
        'action.params.xs.exists(x, x == action.params.xs.join(""))',
    ],
)
def test_a_loop_over_built_strings_refuses_a_long_string_before_running(expr):
    program = cel.compile(expr)
    assert program.bounds_strings
    activation = cel.Activation(request(action={"params": {"s": "a" * MIB, "xs": ["b"]}}), NOW)
    with pytest.raises(cel.CelEvalError, match=f"{MIB} characters"):
        program.eval(activation)
    at_limit = cel.Activation(request(action={"params": {"s": "a" * LIMIT, "xs": ["b"]}}), NOW)
    program.eval(at_limit)  # runs: no error at the bound itself


@pytest.mark.parametrize(
    "where",
    [
        {"context": {"k": "a" * (LIMIT + 1)}},
        {"context": {"a" * (LIMIT + 1): 1}},  # a key is a string too: m.exists(k, ...)
        {"resource": {"attributes": {"n": {"deep": ["a" * (LIMIT + 1)]}}}},
        {"principal": {"tags": ["a" * (LIMIT + 1)]}},
    ],
)
def test_the_string_bound_sees_every_string_of_the_request(where):
    program = cel.compile('principal.tags.exists(t, t in action.name.split(","))')
    with pytest.raises(cel.CelEvalError, match=f"{LIMIT + 1} characters"):
        program.eval(cel.Activation(request(**where), NOW))


@pytest.mark.parametrize(
    "expr",
    [
        'action.params.xs.exists(x, x in "a,b".split(","))',  # the author's own string
        'action.params.s.split(",").size() > 0',  # no loop
        "action.params.xs.exists(x, action.params.s.lowerAscii() == x)",  # not a builder
        'action.params.xs.exists(x, x in ("a,b").split(","))',  # an inlined variable
    ],
)
def test_no_bound_where_the_cost_does_not_grow_with_the_request(expr):
    program = cel.compile(expr)
    assert not program.bounds_strings
    program.eval(cel.Activation(request(action={"params": {"s": "a" * MIB, "xs": ["b"]}}), NOW))


def test_the_bound_holds_in_a_rule_batch(tmp_path):
    (tmp_path / "p.yaml").write_text(
        textwrap.dedent(
            """\
            name: p
            rules:
              - name: plain
                when: action.name == "x"
                decision: deny
                reason: r
              - name: split-in-a-loop
                when: 'action.params.xs.exists(x, x in action.params.s.split(","))'
                decision: deny
                reason: r
            """
        )
    )
    bundle = load_bundle(tmp_path)
    (policy,) = bundle.policies
    assert policy.batch is not None
    assert policy.batch.program.bounds_strings
    req = request(action={"name": "y", "params": {"s": "a" * MIB, "xs": ["a"]}})
    with pytest.raises(cel.CelEvalError, match=f"{MIB} characters"):
        policy.batch.program.eval(cel.Activation(req, NOW))  # the batch itself refuses
    decision = evaluate(bundle, req, NOW, DefaultDecision())  # then rule by rule: on_error
    assert decision.outcome == "review"
    assert f"runs only on strings of at most {LIMIT}" in decision.reason


# Every function the enabled extensions declare, as the engine names them.
FUNCTIONS = {
    "strings": [
        "charAt",
        "format",
        "indexOf",
        "join",
        "lastIndexOf",
        "lowerAscii",
        "quote",
        "replace",
        "reverse",
        "split",
        "substring",
        "trim",
        "upperAscii",
    ],
    "math": [
        "abs",
        "bitAnd",
        "bitNot",
        "bitOr",
        "bitShiftLeft",
        "bitShiftRight",
        "bitXor",
        "ceil",
        "floor",
        "greatest",
        "isFinite",
        "isInf",
        "isNaN",
        "least",
        "round",
        "sign",
        "sqrt",
        "trunc",
    ],
    "optional": [
        "hasValue",
        "none",
        "of",
        "ofNonZeroValue",
        "optFlatMap",
        "optMap",
        "or",
        "orValue",
        "value",
    ],
    "bindings": ["bind"],
    "two-var-comprehensions": ["all", "exists", "existsOne", "transformList"],
}


def test_the_guide_has_an_evaluated_example_of_every_enabled_function():
    assert set(FUNCTIONS) == set(cel.EXTENSIONS)
    cel_lines = "\n".join(
        m[1] for m in re.finditer(r"^```cel\n(.*?)^```", GUIDE.read_text(), re.M | re.S)
    )  # tests/unit/test_policy_guide.py evaluates each of these lines through the engine
    missing = [
        f"{ext}: {name}"
        for ext, names in FUNCTIONS.items()
        for name in names
        if not re.search(rf"\b{name}\(", cel_lines)
    ]
    assert not missing


@pytest.mark.parametrize(
    ("expr", "paths"),
    [
        ("action.params.?amount.orValue(0.0) > 1.0", {("action", "params", "amount")}),
        ('action.params[?"amount"].orValue(0.0) > 1.0', {("action", "params", "amount")}),
        ("context.?a.?b.hasValue()", {("context", "a", "b")}),
        ("cel.bind(x, principal.id, x == '')", {("principal", "id")}),
        ("cel.bind(action, 1, action > 0)", set()),  # bind shadows the variable
        (
            "action.params.to.exists(i, r, r == principal.id)",
            {("action", "params", "to"), ("principal", "id")},
        ),
        ("[1].exists(context, i, i > 0)", set()),  # so does a two-variable macro's index
    ],
)
def test_reads_sees_through_the_extensions(expr, paths):
    assert reads(cel.compile(expr)) == paths


@pytest.mark.parametrize(
    "expr",
    [
        "context.?x",
        "optional.of(1)",
        "dyn(optional.of(1))",
        "[dyn(optional.none())]",
        '{"a": optional.of(1)}',  # plain_value() on this one kills the process (SIGSEGV)
    ],
)
def test_an_optional_value_is_an_evaluation_error_never_a_crash(expr):
    with pytest.raises(cel.CelEvalError, match="an optional value cannot be shown"):
        run(expr)


def test_a_variable_holding_an_optional_is_traced_as_an_error(tmp_path):
    (tmp_path / "p.yaml").write_text(
        textwrap.dedent(
            """\
            name: p
            variables:
              amount: action.params.?amount
              limits: '{"eur": action.params.?amount}'
            rules:
              - name: big
                when: vars.amount.orValue(0.0) > 500.0
                decision: deny
                reason: r
            """
        )
    )
    bundle = load_bundle(tmp_path)
    req = request(action={"name": "a", "params": {"amount": 750}})
    decision = evaluate(bundle, req, NOW, DefaultDecision(), trace=True)
    assert decision.outcome == "deny"
    traces = {v.name: v for v in decision.variable_traces}
    assert traces["amount"].value is None
    assert "optional value cannot be shown" in traces["amount"].error
    assert "optional value cannot be shown" in traces["limits"].error


def test_a_dyn_when_holding_an_optional_in_a_batch_is_on_error_not_a_crash(tmp_path):
    (tmp_path / "p.yaml").write_text(
        textwrap.dedent(
            """\
            name: p
            rules:
              - name: odd
                when: 'dyn({"a": context.?x})'
                decision: deny
                reason: odd
              - name: other
                when: action.name == "z"
                decision: deny
                reason: other
            """
        )
    )
    bundle = load_bundle(tmp_path)
    (policy,) = bundle.policies
    assert policy.batch is not None
    assert not policy.batch.program.plain  # converted element by element (see cel._shown)
    decision = evaluate(bundle, request(action={"name": "y"}), NOW, DefaultDecision())
    assert decision.outcome == "review"
    assert "rule odd failed to evaluate" in decision.reason
