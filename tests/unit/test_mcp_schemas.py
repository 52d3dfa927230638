"""A tool's inputSchema as an action schema (mcp_proxy/schemas.py): exact where the subset can
say it, each drop named (never a silent widening), no entry for a schema that stays broken;
the file written loads, and what it declares is what requests are checked against."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from signoff import pb
from signoff.errors import InvalidArgument
from signoff.mcp_proxy.schemas import MAX_DEPTH, MAX_NODES, Tool, convert, policy_file
from signoff.policy import load_bundle
from signoff.policy.params import check_request


def _convert(schema: Any, name: str = "t") -> tuple[dict[str, Any] | None, list[str]]:
    converted, notes = convert(Tool("up", name, schema))
    return converted, [str(n) for n in notes]


def _object(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


def test_a_schema_in_the_subset_is_kept_as_it_is():
    schema = {
        "type": "object",
        "title": "refundArguments",
        "properties": {
            "amount": {"type": "number", "minimum": 0, "description": "EUR"},
            "currency": {"type": "string", "enum": ["EUR", "USD"], "default": "EUR"},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}},
        },
        "required": ["amount"],
        "additionalProperties": False,
    }
    assert _convert(schema) == (schema, [])


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"type": "string", "const": "EUR"}, {"type": "string", "enum": ["EUR"]}),
        ({"type": "integer", "exclusiveMinimum": 0}, {"type": "integer", "minimum": 1}),
        (
            {"type": "integer", "exclusiveMaximum": 10, "maximum": 5},
            {"type": "integer", "maximum": 5},
        ),
        (
            {"type": "integer", "minimum": 3, "exclusiveMinimum": 0},
            {"type": "integer", "minimum": 3},
        ),
        ({}, {}),
        (True, {}),
    ],
)
def test_exact_rewrites_need_no_note(given, expected):
    converted, notes = _convert(_object(x=given))
    assert notes == []
    assert converted == _object(x=expected)


def test_a_local_ref_is_inlined_with_its_siblings_on_top():
    schema = {
        "type": "object",
        "properties": {"payee": {"$ref": "#/$defs/Payee", "description": "who"}},
        "$defs": {
            "Payee": {
                "type": "object",
                "properties": {"iban": {"type": "string"}, "bank": {"$ref": "#/definitions/B"}},
            }
        },
        "definitions": {"B": {"type": "string", "maxLength": 11}},
    }
    assert _convert(schema) == (
        _object(
            payee={
                "type": "object",
                "properties": {
                    "iban": {"type": "string"},
                    "bank": {"type": "string", "maxLength": 11},
                },
                "description": "who",
            }
        ),
        [],
    )


@pytest.mark.parametrize(
    ("given", "kept", "note"),
    [
        (
            {"type": "string", "pattern": "^a"},
            {"type": "string"},
            "mcp.up.t: properties.x.pattern: unsupported keyword 'pattern' dropped: it is not "
            "checked",
        ),
        (
            {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
            {"default": None},
            "mcp.up.t: properties.x.anyOf: unsupported keyword 'anyOf' dropped: it is not checked",
        ),
        (
            {"type": ["string", "null"]},
            {},
            'mcp.up.t: properties.x.type: type ["string", "null"] is not supported: the type is '
            "not checked",
        ),
        (
            {"type": "number", "exclusiveMinimum": 0.5},
            {"type": "number"},
            "mcp.up.t: properties.x.exclusiveMinimum: unsupported keyword 'exclusiveMinimum' "
            "dropped: it is not checked",
        ),
        (
            {"type": "object", "additionalProperties": {"type": "string"}},
            {"type": "object", "additionalProperties": True},
            "mcp.up.t: properties.x.additionalProperties: only true or false is supported: "
            "other params are not checked",
        ),
        (
            {"$ref": "https://example.com/s.json"},
            {},
            'mcp.up.t: properties.x.$ref: "https://example.com/s.json" is not a local '
            "definition: it is not checked",
        ),
        (
            {"type": "array", "items": [{"type": "string"}]},
            {"type": "array"},
            "mcp.up.t: properties.x.items: unsupported keyword 'items' dropped: it is not checked",
        ),
        (
            False,
            {},
            "mcp.up.t: properties.x: the schema False is not supported: the value is not checked",
        ),
    ],
)
def test_each_drop_is_named_with_its_place_and_what_is_no_longer_checked(given, kept, note):
    converted, notes = _convert(_object(x=given))
    assert converted == _object(x=kept)
    assert notes == [note]


def test_a_recursive_ref_stops_with_a_note():
    schema = {
        "type": "object",
        "properties": {"tree": {"$ref": "#/$defs/Node"}},
        "$defs": {"Node": {"type": "object", "properties": {"kids": {"$ref": "#/$defs/Node"}}}},
    }
    converted, notes = _convert(schema)
    node = {"type": "object", "properties": {"kids": {}}}
    assert converted == _object(tree=node)
    assert notes == [
        'mcp.up.t: properties.tree.properties.kids.$ref: "#/$defs/Node" is recursive: the value '
        "is not checked below here"
    ]


def test_a_ref_graph_that_doubles_at_each_level_gets_no_entry():
    # 30 levels of two references each: 2**30 nodes if inlined.
    defs = {
        f"D{i}": _object(a={"$ref": f"#/$defs/D{i + 1}"}, b={"$ref": f"#/$defs/D{i + 1}"})
        for i in range(30)
    }
    defs["D30"] = {"type": "string"}
    schema = {**_object(x={"$ref": "#/$defs/D0"}), "$defs": defs}
    assert _convert(schema) == (
        None,
        [f"mcp.up.t: the inputSchema has more than {MAX_NODES} nodes: no schema written"],
    )


@pytest.mark.parametrize(
    ("schema", "name", "notes"),
    [
        (
            _object(n={"type": "number", "minimum": "low"}),
            "t",
            ["mcp.up.t: properties.n.minimum: 'low' is not of type 'number'"],
        ),
        ({"type": "string"}, "t", ["mcp.up.t: the params schema is `type: object`"]),
        (
            _object(),
            "say hello",
            [
                "mcp.up.say hello: the tool's name is not an action name (letters, digits, '_', "
                "'-', '.'): no schema written"
            ],
        ),
    ],
)
def test_a_schema_that_stays_broken_gets_no_entry_and_says_why(schema, name, notes):
    converted, found = _convert(schema, name)
    assert converted is None
    assert found[: len(notes)] == notes
    assert found[-1].endswith("no schema written")


def test_a_missing_top_level_type_is_object_as_mcp_says():
    assert _convert({"properties": {"a": {"type": "string"}}}) == (
        _object(a={"type": "string"}),
        [],
    )


def test_the_file_written_loads_and_checks_what_it_declares(tmp_path):
    tools = [
        Tool(
            "pay",
            "refund",
            _object(amount={"type": "number"}, note={"type": "string", "pattern": "x"}),
        ),
        Tool("pay", "broken", _object(n={"type": "number", "minimum": "low"})),
    ]
    text, notes = policy_file(["pay"], tools)
    assert len(notes) == 3  # the pattern dropped; the broken tool, and that it has no entry
    (tmp_path / "tools.yaml").write_text(text)
    bundle = load_bundle(tmp_path)
    assert [s.glob for s in bundle.params] == ["mcp.pay.refund"]
    assert yaml.safe_load(text)["actions"] == ["mcp.pay.*"]
    request = pb.common.ActionRequest()
    request.action.name = "mcp.pay.refund"
    request.action.params.update({"amount": 5, "note": "anything: the pattern was dropped"})
    check_request(bundle.params, request)
    request.action.params.update({"amount": "lots"})
    with pytest.raises(InvalidArgument) as info:
        check_request(bundle.params, request)
    assert str(info.value) == "action.params.amount: must be a number"


def test_a_schema_nested_past_the_depth_limit_is_cut_with_a_note():
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(20):  # 40 keys on the way down: properties.x.properties.x...
        deep = _object(x=deep)
    converted, notes = _convert(deep)
    assert converted is not None
    (note,) = notes
    assert note.startswith("mcp.up.t: properties.x.properties.x.")
    assert note.endswith(f": nested deeper than {MAX_DEPTH} levels: the value is not checked")
