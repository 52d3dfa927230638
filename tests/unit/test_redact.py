"""Redaction: a masked copy, never a mutation; missing paths ignored."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from signoff import pb
from signoff.core.redact import MASK, masked, redact

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


PATHS = [
    "action.params.card_number",
    "action.params.nested.secret",
    "action.params.cards.1.number",
    "action.params.cards.7.number",
    "action.params.cards.number",
    "action.params.cards.nope",
    "principal.on_behalf_of",
    "principal.tags",
    "principal.roles",
    "principal.attributes",
    "context.ssn",
    "context.nope",
    "resource.kind",
    "action.params.amount.x",
]


@pytest.mark.parametrize("path", PATHS)
def test_masked_is_none_exactly_when_redaction_changes_nothing(path):
    # decide.py computes texts from the real request when masked() is None: that must
    # mean "nothing to hide", never "missed a value".
    original = json_format.ParseDict(REQUEST, pb.common.ActionRequest())
    before = original.SerializeToString()
    copy = masked(original, [path])
    if copy is None:
        assert redact(original, [path]) == original
    else:
        assert copy == redact(original, [path]) != original
    assert original.SerializeToString() == before


def test_masked_applies_every_path_once_one_matches():
    original = json_format.ParseDict(REQUEST, pb.common.ActionRequest())
    paths = ["context.nope", "context.ssn", "action.params.card_number"]
    assert masked(original, paths) == redact(original, paths)


def test_masked_never_sets_a_field_of_the_request_it_looks_at():
    empty = pb.common.ActionRequest()
    assert masked(empty, PATHS) is None
    assert not empty.HasField("action")
    assert not empty.HasField("context")
    assert empty.SerializeToString() == b""
