"""Every way of reading a param is checked against the action schema at load, scoped as the
engine scopes names (policy/params_paths.py): `["x"]`, `.?x`, `[?"x"]` and `action.?params`
like `.x`; a comprehension variable named `action` is not the request's; two paths whose
names join alike (`a_b.c`, `a.b_c`) are typed each by its own schema."""

from __future__ import annotations

import pytest

from .test_action_schemas import load, with_when

DECLARED = "(declared in action.params: amount, currency, customer, tags)"


def _typo(column: int, written: str) -> str:
    return (
        f"p.yaml:20:{column}: r: when: {written} is not declared in the params schema of "
        f"'refund.issue' {DECLARED}"
    )


@pytest.mark.parametrize(
    "when",
    [
        'action.params["amount"] > 5.0',
        "action.params.?amount.orValue(0.0) > 5.0",
        "action.?params.?amount.orValue(0.0) > 5.0",
        'action.params[?"amount"].orValue(0.0) > 5.0',
        'action.params["customer"].tier == "vip"',
        'action.params.?customer.?tier.orValue("") == "vip"',
        "action.params.?customer.tier.hasValue()",
        # The comprehension's `action` is a list element: its params are not the request's.
        '\'[{"params": {"y": 1}}].exists(action, action.params.y == 1)\'',
        '\'cel.bind(action, {"params": {"zz": 1}}, action.params.zz == 1)\'',
        # Names the rewrite could pick are bound by the expression itself.
        "'action.params.tags.exists(_p0, _p0 == action.params.currency)'",
    ],
)
def test_every_form_of_a_declared_param_loads(tmp_path, when):
    assert load(tmp_path, with_when(when)) == []


@pytest.mark.parametrize(
    ("when", "column", "written"),
    [
        ('action.params["amout"] > 5.0', 25, 'action.params["amout"]'),
        ("action.params.?amout.orValue(0.0) > 5.0", 26, "action.params.?amout"),
        ("action.?params.?amout.orValue(0.0) > 5.0", 27, "action.?params.?amout"),
        ('action.params[?"amout"].orValue(0.0) > 5.0', 26, 'action.params[?"amout"]'),
        ("action.?params.amout.hasValue()", 26, "action.?params.amout"),
        # Parentheses split the text of the path, not the path.
        ('(action.params).amout == "x"', 27, "action.params.amout"),
    ],
)
def test_a_typo_in_any_form_is_a_load_error_naming_it_as_written(tmp_path, when, column, written):
    assert load(tmp_path, with_when(when)) == [_typo(column, written)]


def test_a_nested_typo_by_index_names_the_object(tmp_path):
    assert load(tmp_path, with_when('action.params["customer"].teir == "vip"')) == [
        'p.yaml:20:37: r: when: action.params["customer"].teir is not declared in the params '
        "schema of 'refund.issue' (declared in action.params.customer: tier)"
    ]


@pytest.mark.parametrize(
    ("when", "column", "message"),
    [
        ('action.params["amount"] == "x"', 35, "'_==_' applied to '(double, string)'"),
        (
            'action.params.?amount.orValue("x") == "x"',
            40,
            "'orValue' applied to '(optional_type(double), string)'",
        ),
        (
            "action.?params.?customer.?tier.orValue(1) == 1",
            49,
            "'orValue' applied to '(optional_type(string), int)'",
        ),
        ('action.params.customer["tier"] == 1', 42, "'_==_' applied to '(string, int)'"),
    ],
)
def test_index_and_optional_reads_are_typed(tmp_path, when, column, message):
    (error,) = load(tmp_path, with_when(when))
    assert error.startswith(f"p.yaml:20:{column}: r: when: ")
    assert message in error


def test_a_comprehension_named_action_hides_only_its_own_scope(tmp_path):
    when = (
        "'[{\"params\": {}}].all(action, size(action.params) == 0) && action.params.amoutn > 1.0'"
    )
    assert load(tmp_path, with_when(when)) == [_typo(84, "action.params.amoutn")]


def test_a_path_over_several_lines_keeps_its_lines_and_columns(tmp_path):
    when = "|-\n      action\n        .params\n         .amount == 'x'"
    (error,) = load(tmp_path, with_when(when))
    assert error.startswith("p.yaml:23:18: r: when: found no matching overload for '_==_'")


PAIR = """\
name: p
actions: [a.b]
params:
  a.b:
    type: object
    properties:
      a_b: {type: object, properties: {c: {type: string}}}
      a: {type: object, properties: {b_c: {type: number}}}
rules:
  - name: r
    when: {when}
    decision: deny
    reason: x
"""


@pytest.mark.parametrize(
    ("when", "errors"),
    [
        ('action.params.a_b.c == "x" && action.params.a.b_c > 1.0', []),
        # Before: a.b_c shared a_b.c's identifier and was left untyped.
        (
            'action.params.a_b.c == "x" && action.params.a.b_c == "x"',
            [
                "p.yaml:11:61: r: when: found no matching overload for '_==_' applied to "
                "'(double, string)' (typed by the params schema of 'a.b')"
            ],
        ),
        (
            "action.params.a.b_c > 1.0 && action.params.a_b.c > 1.0",
            [
                "p.yaml:11:60: r: when: found no matching overload for '_>_' applied to "
                "'(string, double)' (typed by the params schema of 'a.b')"
            ],
        ),
    ],
)
def test_paths_whose_names_join_alike_are_typed_each_by_its_schema(tmp_path, when, errors):
    assert load(tmp_path, PAIR.replace("{when}", when)) == errors


def test_positions_count_characters_not_bytes(tmp_path):
    # The engine's positions and Python's offsets agree past characters of 2 and 4 bytes.
    assert load(tmp_path, with_when('\'"é😀" != "" && action.params.amout == 1.0\'')) == [
        _typo(40, "action.params.amout")
    ]
    (error,) = load(tmp_path, with_when('\'"é😀" != "" && action.params.amount == "x"\''))
    assert error.startswith("p.yaml:20:47: r: when: found no matching overload for '_==_'")
