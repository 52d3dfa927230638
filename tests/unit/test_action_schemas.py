"""Action schemas (policy `params:`): bad schemas, params typos and type errors are load
errors at file:line:column; requests that break a schema are refused naming the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from signoff import pb
from signoff.errors import InvalidArgument
from signoff.policy import BundleError, load_bundle
from signoff.policy.params import check_request

SCHEMA = """\
name: refunds
actions: ["refund.issue"]
variables:
  amount: double(action.params.amount)
params:
  refund.issue:
    type: object
    required: [amount]
    properties:
      amount: {type: number, minimum: 0, description: what is refunded}
      currency: {type: string, enum: [EUR, USD]}
      customer:
        type: object
        properties:
          tier: {type: string, maxLength: 10}
      tags: {type: array, items: {type: string}}
    additionalProperties: false
rules:
  - name: r
    when: {when}
    decision: deny
    reason: x
"""


def load(tmp_path: Path, text: str) -> list[str]:
    """The errors of a bundle of one file (empty when it loads)."""
    (tmp_path / "p.yaml").write_text(textwrap.dedent(text))
    try:
        load_bundle(tmp_path)
    except BundleError as exc:
        return [str(e) for e in exc.errors]
    return []


def with_when(when: str) -> str:
    return SCHEMA.replace("{when}", when)


@pytest.mark.parametrize(
    "when",
    [
        "vars.amount > 500",
        "action.params.amount > 500",
        'action.params.currency == "EUR" && action.params.amount >= 10.5',
        'has(action.params.customer.tier) && action.params.customer.tier == "vip"',
        'has(action.params.currency) && action.params.tags.exists(t, t == "urgent")',
        'size(action.params) > 0 && action.params["amount"] == 3',
        'action.params.currency.startsWith("E")',
    ],
)
def test_expressions_that_fit_the_schema_load(tmp_path, when):
    assert load(tmp_path, with_when(when)) == []


def test_a_params_typo_is_a_load_error_at_its_position(tmp_path):
    assert load(tmp_path, with_when("action.params.amout > 5")) == [
        "p.yaml:20:25: r: when: action.params.amout is not declared in the params schema of "
        "'refund.issue' (declared in action.params: amount, currency, customer, tags)"
    ]


def test_a_nested_typo_names_the_object_it_is_missing_from(tmp_path):
    assert load(tmp_path, with_when('action.params.customer.teir == "vip"')) == [
        "p.yaml:20:34: r: when: action.params.customer.teir is not declared in the params "
        "schema of 'refund.issue' (declared in action.params.customer: tier)"
    ]


@pytest.mark.parametrize(
    ("when", "column", "message"),
    [
        ('action.params.amount == "x"', 32, "'_==_' applied to '(double, string)'"),
        ("action.params.amount + 1 > 2", 32, "'_+_' applied to '(double, int)'"),
        ("action.params.tags.exists(t, t > 1)", 42, "'_>_' applied to '(string, int)'"),
        ("action.params.customer.tier", 0, "must be a bool expression, this one is string"),
    ],
)
def test_a_type_error_against_the_schema_is_a_load_error(tmp_path, when, column, message):
    (error,) = load(tmp_path, with_when(when))
    assert error.startswith(f"p.yaml:20:{column or 11}: r: when: ")
    assert message in error


def test_a_type_error_inside_a_variable_is_reported_at_the_variable(tmp_path):
    text = with_when("vars.amount > 5").replace(
        "double(action.params.amount)", 'action.params.amount + "x"'
    )
    (error,) = load(tmp_path, text)
    assert error.startswith("p.yaml:4:32: variables.amount: ")
    assert "(double, string)" in error


def test_without_a_schema_nothing_changes(tmp_path):
    text = with_when('action.params.amout == "x"')
    text = text[: text.index("params:")] + text[text.index("rules:") :]
    assert load(tmp_path, text) == []


def test_a_schema_that_does_not_cover_the_policy_does_not_type_it(tmp_path):
    # The rules also see refund.void, whose params this schema says nothing about.
    text = with_when('action.params.reason == "x"').replace('["refund.issue"]', '["refund.*"]')
    assert load(tmp_path, text) == []


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (
            "{type: object, properties: {amount: {type: decimal}}}",
            "p.yaml:5:48: params.a.b: properties.amount.type: unknown type 'decimal' (use one "
            "of: object, string, number, integer, boolean, array)",
        ),
        (
            "{type: object, properties: {note: {type: string, pattern: '^a'}}}",
            "p.yaml:5:54: params.a.b: properties.note.pattern: unsupported keyword 'pattern' "
            "(supported: type, required, enum, minimum, maximum, minLength, maxLength, "
            "properties, items, additionalProperties)",
        ),
        (
            "{type: object, oneOf: []}",
            "p.yaml:5:20: params.a.b: oneOf: unsupported keyword 'oneOf' (supported: type, "
            "required, enum, minimum, maximum, minLength, maxLength, properties, items, "
            "additionalProperties)",
        ),
        ("{type: string}", "p.yaml:5:5: params.a.b: the params schema is `type: object`"),
        (
            "{type: object, properties: {n: {type: number, minimum: low}}}",
            "p.yaml:5:60: params.a.b: properties.n.minimum: 'low' is not of type 'number'",
        ),
        (
            "{type: object, additionalProperties: {type: string}}",
            "p.yaml:5:42: params.a.b: additionalProperties: only true or false is supported here",
        ),
    ],
)
def test_a_bad_schema_is_a_load_error_naming_the_keyword(tmp_path, schema, expected):
    text = f"name: p\nrules: []\nparams:\n  a.b:\n    {schema}\n"
    assert load(tmp_path, text) == [expected]


def _req(action: str = "refund.issue", **params: object) -> pb.common.ActionRequest:
    r = pb.common.ActionRequest()
    r.action.name = action
    r.action.params.update(params)
    return r


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"amount": 10, "currency": "EUR", "tags": ["a"]}, None),
        ({"amount": 10, "customer": {"tier": "vip"}}, None),
        ({"amount": "lots"}, "action.params.amount: must be a number"),
        ({}, "action.params.amount: is required"),
        ({"amount": -1}, "action.params.amount: must be at least 0"),
        ({"amount": 1, "currency": "GBP"}, 'action.params.currency: must be one of "EUR", "USD"'),
        ({"amount": 1, "tags": ["a", 2]}, "action.params.tags[1]: must be a string"),
        (
            {"amount": 1, "customer": {"tier": "x" * 11}},
            "action.params.customer.tier: must have at most 10 characters",
        ),
        (
            {"amount": 1, "note": "hi"},
            "action.params.note: is not a declared param (declared: amount, currency, "
            "customer, tags)",
        ),
        ({"amount": True}, "action.params.amount: must be a number"),
    ],
)
def test_requests_are_checked_against_the_schema_of_their_action(tmp_path, params, error):
    assert load(tmp_path, with_when("vars.amount > 5")) == []
    bundle = load_bundle(tmp_path)
    if error is None:
        check_request(bundle.params, _req(**params))
        return
    with pytest.raises(InvalidArgument) as info:
        check_request(bundle.params, _req(**params), prefix="")
    assert str(info.value) == error


def test_other_actions_are_not_checked(tmp_path):
    assert load(tmp_path, with_when("vars.amount > 5")) == []
    check_request(load_bundle(tmp_path).params, _req("refund.void", amount="lots"))


def test_a_batch_prefix_names_the_request(tmp_path):
    assert load(tmp_path, with_when("vars.amount > 5")) == []
    with pytest.raises(InvalidArgument) as info:
        check_request(load_bundle(tmp_path).params, _req(amount="x"), prefix="requests[2].")
    assert info.value.field == "requests[2].action.params.amount"


def test_an_mcp_input_schema_pastes_in_as_json(tmp_path):
    text = (
        "name: p\nactions: [mcp.refund]\nrules:\n  - name: r\n"
        "    when: action.params.amount > 5.0\n    decision: deny\n    reason: x\n"
        'params:\n  mcp.refund: {"$schema": "https://json-schema.org/draft/2020-12/schema", '
        '"type": "object", "title": "refund", "properties": {"amount": {"type": "number", '
        '"description": "EUR", "default": 0}}, "required": ["amount"]}\n'
    )
    assert load(tmp_path, text) == []
    assert load(tmp_path, text.replace("params.amount >", "params.amont >")) != []


CASES = """\
cases:
  - name: fits
    request:
      action: {name: refund.issue, params: {amount: 10}}
    expect: {outcome: allow}
  - name: breaks the schema
    request:
      action: {name: refund.issue, params: {amount: "lots"}}
    expect: {outcome: review}
"""


def test_policy_test_fails_a_case_whose_request_the_server_would_refuse(tmp_path, capsys):
    from signoff.cli.main import main

    policy = with_when("vars.amount > 500").replace("decision: deny\n    reason: x", _ALLOW)
    (tmp_path / "p.yaml").write_text(policy.replace("vars.amount > 500", "vars.amount < 500"))
    fitting = CASES.replace('"lots"', "20").replace("outcome: review", "outcome: allow")
    (tmp_path / "p_test.yaml").write_text(fitting)
    assert main(["policy", "test", str(tmp_path)]) == 0, capsys.readouterr().out
    (tmp_path / "p_test.yaml").write_text(CASES)
    assert main(["policy", "test", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "  - params: fit the action schema\n" in out
    assert (
        "  + params: action.params.amount: must be a number (refused by the server: "
        "INVALID_ARGUMENT)\n" in out
    )
    assert "1 passed, 1 failed" in out


_ALLOW = "decision: allow\n    reason: x"
