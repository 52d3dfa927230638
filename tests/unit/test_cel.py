"""The CEL engine wrapper: compile, check, evaluate, errors, runaway protection."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from google.protobuf import json_format

from signoff import pb
from signoff.policy import cel

NOW = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def request(**fields) -> pb.common.ActionRequest:
    return json_format.ParseDict(fields, pb.common.ActionRequest())


def run(expr: str, **fields):
    return cel.compile(expr).eval(cel.Activation(request(**fields), NOW))


@pytest.mark.parametrize(
    ("expr", "fields", "expected"),
    [
        ("action.params.amount > 500", {"action": {"params": {"amount": 750.0}}}, True),
        ("action.params.amount > 500", {"action": {"params": {"amount": 500}}}, False),
        ("action.params.count > 2.5", {"action": {"params": {"count": 3}}}, True),
        ("double(action.params.amount) > 500", {"action": {"params": {"amount": 501}}}, True),
        ("action.params.count == 3", {"action": {"params": {"count": 3}}}, True),
        ("1 == 1.0", {}, True),
        ("3 < 3.5 && 4.0 >= 4", {}, True),
        ("has(resource.attributes.tier)", {}, False),
        ('"vip" in principal.tags', {}, False),
        ('"vip" in principal.tags', {"principal": {"tags": ["vip"]}}, True),
        ("size(context) == 0", {}, True),
        ("context.fraud_flag == true", {"context": {"fraud_flag": True}}, True),
        ('resource.id == ""', {}, True),
        ('now == timestamp("2025-01-02T03:04:05Z")', {}, True),
        ('now - duration("24h") < timestamp("2025-01-02T00:00:00Z")', {}, True),
        ('action.name.startsWith("refund.")', {"action": {"name": "refund.issue"}}, True),
        ('"x".matches("(?i)X")', {}, True),
    ],
)
def test_evaluates(expr, fields, expected):
    assert run(expr, **fields) == expected


def test_returns_plain_python_values():
    assert run("[1, 2.5, 'a']") == [1, 2.5, "a"]
    assert run("{'a': now}") == {"a": NOW}
    assert run("action.params", action={"params": {"n": 1}}) == {"n": 1.0}


@pytest.mark.parametrize(
    ("expr", "return_type"),
    [
        ("true", "BOOL"),
        ("action.params.amount + 'x'", "STRING"),  # dyn + string checks as string
        ("context.flag", "DYN"),
        ("principal.tags", "LIST<STRING>"),
        ("now", "TIMESTAMP"),
    ],
)
def test_return_type(expr, return_type):
    assert cel.compile(expr).return_type == return_type


@pytest.mark.parametrize(
    ("expr", "line", "column", "fragment"),
    [
        ("1 +", 1, 4, "Syntax error"),
        ("foo > 1", 1, 1, "undeclared reference to 'foo'"),
        ("action.nme == 'x'", 1, 7, "undefined field 'nme'"),
        ("action.name + 1", 1, 13, "no matching overload for '_+_'"),
        ("1 +\n  2 + foo", 2, 7, "undeclared reference to 'foo'"),
        ("'abc", 1, 1, "Syntax error"),
        ("vars.amount > 1", 1, 5, "undeclared reference to 'vars.amount'"),
    ],
)
def test_compile_errors_carry_position(expr, line, column, fragment):
    with pytest.raises(cel.CelError) as info:
        cel.compile(expr)
    assert (info.value.line, info.value.column) == (line, column)
    assert fragment in info.value.message
    assert "in container" not in info.value.message


def test_compile_error_lists_every_issue():
    with pytest.raises(cel.CelError) as info:
        cel.compile("foo + bar")
    assert [(e.line, e.column) for e in (info.value, *info.value.more)] == [(1, 1), (1, 7)]


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("action.params.missing > 2.5", 'Key not found in map : "missing"'),
        ("action.params.amount + 'x' == 'y'", "No matching overloads"),
        ("1 / 0 == 1", "divide by zero"),
    ],
)
def test_evaluation_errors_raise(expr, fragment):
    with pytest.raises(cel.CelEvalError, match=fragment) as info:
        run(expr, action={"params": {"amount": 1.0}})
    assert not str(info.value).startswith(("NOT_FOUND", "UNKNOWN", "INVALID_ARGUMENT"))


@pytest.mark.parametrize(
    "expr",
    [
        "action.params.xs.all(x, action.params.xs.all(y, action.params.xs.all(z, true)))",
        "action.params.xs.exists(x, action.params.xs.exists(y, x + y < 0.0))",
    ],
)
def test_runaway_comprehension_stops_quickly(expr):
    xs = list(range(1000))
    started = time.perf_counter()
    with pytest.raises(cel.CelEvalError, match="Iteration budget exceeded"):
        run(expr, action={"params": {"xs": xs}})
    assert time.perf_counter() - started < 1.0  # a hang would take minutes, not a second


def test_map_over_a_huge_list_is_refused_before_running():
    program = cel.compile("action.params.xs.map(x, x * 2.0).size() > 0")
    assert program.uses_list_macros
    activation = cel.Activation(request(action={"params": {"xs": list(range(5000))}}), NOW)
    with pytest.raises(cel.CelEvalError, match="5000 elements"):
        program.eval(activation)


def test_map_over_a_small_list_runs():
    assert run("action.params.xs.filter(x, x > 1.0).size()", action={"params": {"xs": [1, 2, 3]}})


def test_list_macro_detection_ignores_strings_and_fields():
    assert not cel.compile("'.map(' == action.name").uses_list_macros
    assert not cel.compile("has(context.map)").uses_list_macros
    assert cel.compile("principal.tags.filter(t, t == 'a').size() == 1").uses_list_macros


def test_naive_now_is_refused():
    with pytest.raises(ValueError, match="timezone"):
        cel.Activation(pb.common.ActionRequest(), dt.datetime(2025, 1, 1))


def test_scan_skips_strings_and_comments():
    tokens = cel.scan('vars.a + "vars.b" + r"x\\" // vars.c\n + vars.d')
    assert [t.text for t in tokens if t.kind == "ident"] == ["vars", "a", "vars", "d"]
    assert [t.text for t in tokens if t.kind == "string"] == ['"vars.b"', 'r"x\\"']
