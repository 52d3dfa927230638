"""Redaction: a masked copy, never a mutation; missing paths ignored."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from signoff import pb
from signoff.redact import MASK, redact

REQUEST = {
    "action": {
        "name": "refund.issue",
        "params": {
            "amount": 10.0,
            "card_number": "4111",
            "cards": [{"number": "1"}, {"number": "2"}],
            "nested": {"secret": {"deep": 1}},
        },
    },
    "principal": {"id": "bot", "on_behalf_of": "alice", "tags": ["vip"], "attributes": {"ip": "x"}},
    "resource": {"id": "acct", "attributes": {"owner": "bob"}},
    "context": {"ssn": "123", "ticket": "T-1"},
}


def as_dict(req):
    return json_format.MessageToDict(req, preserving_proto_field_name=True)


@pytest.mark.parametrize(
    ("path", "where", "expected"),
    [
        ("action.params.card_number", ("action", "params", "card_number"), MASK),
        ("action.params.nested.secret", ("action", "params", "nested", "secret"), MASK),
        ("action.params.cards.1.number", ("action", "params", "cards", 1, "number"), MASK),
        ("action.params.cards.number", ("action", "params", "cards", 0, "number"), MASK),
        ("principal.on_behalf_of", ("principal", "on_behalf_of"), MASK),
        ("principal.tags", ("principal", "tags"), [MASK]),
        ("principal.attributes.ip", ("principal", "attributes", "ip"), MASK),
        ("resource.attributes.owner", ("resource", "attributes", "owner"), MASK),
        ("context.ssn", ("context", "ssn"), MASK),
        ("action.params", ("action", "params"), {"redacted": MASK}),
    ],
)
def test_redacts_a_copy(path, where, expected):
    original = json_format.ParseDict(REQUEST, pb.common.ActionRequest())
    before = original.SerializeToString()
    value = as_dict(redact(original, [path]))
    for key in where:
        value = value[key]
    assert value == expected
    assert original.SerializeToString() == before


@pytest.mark.parametrize(
    "path",
    [
        "action.params.nope",
        "context.nope.deeper",
        "resource.kind",
        "principal.nope",
        "action.params.amount.x",
    ],
)
def test_missing_paths_are_ignored(path):
    original = json_format.ParseDict(REQUEST, pb.common.ActionRequest())
    assert redact(original, [path]) == original


def test_redaction_never_adds_fields():
    empty = pb.common.ActionRequest()
    assert redact(empty, ["context.ssn", "resource.attributes.x", "principal.id"]) == empty
