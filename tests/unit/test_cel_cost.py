"""The cost bound of one evaluation (policy/cost.py): which programs are priced, and which
side of cel.MAX_EVAL_COST a request falls on.

Times are measured in bench/cel_hostile.py, never asserted here: each test shows the
outcome (refused before running, or run to its value).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import textwrap
from pathlib import Path

import pytest
from google.protobuf import json_format

from signoff import pb
from signoff.core.decide import DefaultDecision, evaluate
from signoff.policy import cel, cost, load_bundle

NOW = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
BIG = 200 * 1024
P = "action.params"
CONTAINS = f'{P}.xs.exists(x, {P}.s.contains(x + "b"))'  # 11 s on the hostile request


def activation(**params) -> cel.Activation:
    req = json_format.ParseDict(
        {"action": {"name": "a", "params": params}}, pb.common.ActionRequest()
    )
    return cel.Activation(req, NOW)


def run(expr: str, **params):
    return cel.compile(expr).eval(activation(**params))


def test_a_scan_of_a_large_string_per_element_of_a_large_list_is_refused_before_it_runs():
    with pytest.raises(cel.CelEvalError) as err:
        run(CONTAINS, s="a" * BIG, xs=["a"] * 10_000)
    message = str(err.value)
    assert f"over the limit of {cel.MAX_EVAL_COST:,}" in message
    assert "10,000 iterations (of action.params.xs)" in message
    assert f"{BIG:,} characters or elements (of action.params.s)" in message


def test_the_same_program_runs_on_an_ordinary_request():
    xs = [f"item-{i}" for i in range(100)]
    assert run(CONTAINS, s="a short description of item-7b", xs=xs) is True
    assert run(CONTAINS, s="nothing here", xs=xs) is False


def test_a_loop_over_100_items_with_contains_on_short_strings_runs():
    items = [{"sku": f"SKU-{i:04}", "note": "fragile, keep upright"} for i in range(100)]
    expr = f'{P}.items.exists(i, i.note.contains("upright") && i.sku.startsWith("SKU-0099"))'
    assert run(expr, items=items) is True


def test_a_long_string_the_loop_does_not_read_does_not_refuse_it():
    # A 200 KiB description beside the list: the loop reads only the list's elements.
    expr = f'{P}.xs.exists(x, x.contains("b"))'
    assert run(expr, xs=["a" * 20] * 1000, description="d" * BIG) is False


def test_a_loop_variable_scanning_each_element_is_linear_and_runs():
    # Each element is scanned once: the cost is the list's size, whatever one string's is.
    assert run(f'{P}.xs.exists(x, x.contains("b"))', xs=["a" * 2000] * 100) is False


@pytest.mark.parametrize(
    ("xs", "ys", "refused"),
    [
        (["a" * 20] * 100, ["b" * 20] * 100, False),  # runs to the engine's iteration budget
        (["a" * 5000] * 40, ["b" * 20] * 100, True),  # 4,000 iterations of 5,000 characters
    ],
)
def test_nested_loops_are_priced_by_the_product_of_their_ranges(xs, ys, refused):
    program = cel.compile(f"{P}.xs.exists(x, {P}.ys.exists(y, x.contains(y)))")
    if refused:
        with pytest.raises(cel.CelEvalError, match=r"action\.params\.xs x action\.params\.ys"):
            program.eval(activation(xs=xs, ys=ys))
    else:
        with pytest.raises(cel.CelEvalError, match="Iteration budget exceeded"):
            program.eval(activation(xs=xs, ys=ys))


@pytest.mark.parametrize(
    "expr",
    [
        f"cel.bind(s, {P}.s, {P}.xs.exists(x, s.contains(x)))",  # through a bound name
        f"{P}.xs.all(x, !{P}.s.endsWith(x) || {P}.s.indexOf(x) >= 0)",
        f"{P}.xs.exists(x, {P}.s.matches(x))",
        f'{P}.xs.exists(x, {P}.s.lowerAscii() == "b")',
        f"{P}.xs.exists(x, {P}.s.lastIndexOf(x) >= 0)",
        f"{P}.xs.exists(x, ({P}.s + x).size() == 0)",
        f"{P}.xs.exists(x, {P}.s == x)",  # even a read copies the string
        f"{P}.xs.exists_one(x, {P}.m.exists(k, v, v.contains(x)))",
        f"{P}.xs.transformList(i, x, {P}.s.contains(x)).size() > 0",
    ],
)
def test_every_string_function_in_a_loop_is_priced(expr):
    params = {"s": "a" * BIG, "xs": ["a"] * 900, "m": {"k": "a" * BIG}}
    with pytest.raises(cel.CelEvalError, match="over the limit of"):
        run(expr, **params)


@pytest.mark.parametrize(
    "expr",
    [
        'action.name == "refund.issue" && action.params.amount > 500.0',
        f'{P}.s.contains("x") || {P}.s.matches("^a+$")',  # linear in the request: no loop
    ],
)
def test_a_program_without_loops_has_no_terms_and_pays_nothing(expr):
    assert cel.compile(expr).cost is None


def test_a_loop_over_numbers_costs_only_its_iterations():
    # Arithmetic and comparisons on numbers are O(1); the engine's budget bounds the loop.
    with pytest.raises(cel.CelEvalError, match="Iteration budget exceeded"):
        run(f"{P}.xs.all(x, {P}.xs.all(y, {P}.xs.all(z, x + y + z >= 0.0)))", xs=[1.0] * 1000)


def test_the_quick_bound_is_not_the_last_word():
    # The serialized size of a 1,000-key context is far more than any one of its values:
    # over the limit at first sight, under it once its values are measured.
    program = cel.compile('context.exists(k, context[k] == "x" + k)')
    req = json_format.ParseDict(
        {"action": {"name": "a"}, "context": {f"key-{i}": "v" * 20 for i in range(1000)}},
        pb.common.ActionRequest(),
    )
    sizes: dict = {}
    assert sum(cost.quick(program.cost, req, sizes)) > cel.MAX_EVAL_COST
    assert program.eval(cel.Activation(req, NOW)) is False


def test_terms_name_the_loops_and_the_paths_they_read():
    program = cel.compile(CONTAINS)
    loops = {t.loops for t in program.cost.terms}
    assert loops == {(("action", "params", "xs"),)}
    sources = set().union(*(t.sources for t in program.cost.terms))
    assert sources == {("action", "params", "s"), ("action", "params", "xs", "*")}


RULES = """\
name: p
rules:
  - name: mentions
    when: action.params.xs.exists(x, action.params.s.contains(x + "b"))
    decision: deny
    on_error: review
    reason: named
  - name: big
    when: size(action.params.xs) > 5
    decision: review
    reviewers: ops
    reason: many
"""


def test_a_refused_rule_goes_to_on_error_and_its_batch_neighbours_still_decide(tmp_path: Path):
    (tmp_path / "p.yaml").write_text(textwrap.dedent(RULES))
    bundle = load_bundle(tmp_path)
    (policy,) = bundle.policies
    assert policy.batch is not None
    assert policy.batch.program.cost
    req = json_format.ParseDict(
        {"action": {"name": "a", "params": {"s": "a" * BIG, "xs": ["a"] * 10_000}}},
        pb.common.ActionRequest(),
    )
    result = evaluate(bundle, req, NOW, DefaultDecision("review", "default"))
    by_rule = {m.rule: m for m in result.matched}
    assert "over the limit of" in by_rule["mentions"].error
    assert by_rule["mentions"].decision == "review"  # on_error
    assert by_rule["big"].decision == "review"
    assert not by_rule["big"].error


def test_without_the_bound_the_same_program_would_run(monkeypatch):
    # The refusal is the bound's, not the engine's: stripped of its terms, the program
    # runs (on a request small enough to finish here).
    program = cel.compile(CONTAINS)
    small = activation(s="a" * 2000, xs=["a"] * 9000)
    with pytest.raises(cel.CelEvalError, match="over the limit"):
        program.eval(small)
    assert dataclasses.replace(program, cost=None).eval(small) is False


REDACTED = """\
name: notes
redact: [action.params.note]
rules:
  - name: names-a-tag
    when: action.params.tags.exists(t, action.params.note.contains(t + "!"))
    decision: deny
    on_error: review
    reason: named
"""


def test_a_refusal_never_shows_the_size_of_a_redacted_value(tmp_path: Path):
    # The bound names sizes; a redacted value's size is its own secret. The message comes
    # from the redacted request (decide.py), where the note is the mask: it runs there.
    (tmp_path / "p.yaml").write_text(REDACTED)
    bundle = load_bundle(tmp_path)
    note = "n" * 123_457
    req = json_format.ParseDict(
        {"action": {"name": "a", "params": {"note": note, "tags": ["t"] * 9_000}}},
        pb.common.ActionRequest(),
    )
    result = evaluate(bundle, req, NOW, DefaultDecision("review", "default"))
    (match,) = result.matched
    assert match.decision == "review"  # refused on the real request: on_error
    assert "withheld" in match.error
    assert "123,457" not in match.error
    assert "123457" not in match.error
