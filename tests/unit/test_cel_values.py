"""Bytes in an explanation read as CEL writes them: b"..." with escapes, never a Python repr."""

from __future__ import annotations

import datetime as dt

import pytest

from signoff import pb
from signoff.core.cel_values import bytes_literal, is_bytes_literal, to_json
from signoff.policy import cel

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _eval(expr: str, **params: object) -> object:
    req = pb.common.ActionRequest()
    req.action.name = "x.y"
    req.action.params.update(params)
    return cel.compile(expr).eval(cel.Activation(req, NOW))


@pytest.mark.parametrize(
    ("expr", "shown"),
    [
        ("bytes(action.params.note)", r'b"h\xc3\xa9"'),  # the engine returns a bytearray
        ("b'plain text'", 'b"plain text"'),
        (r"b'q\"uote \\ back'", r'b"q\"uote \\ back"'),
        (r"b'\x00\n\r\t\xff'", r'b"\x00\n\r\t\xff"'),
        ("b''", 'b""'),
        ("[b'a', b'\\x01']", ['b"a"', r'b"\x01"']),
    ],
)
def test_bytes_are_shown_as_a_cel_bytes_literal(expr: str, shown: object):
    assert to_json(_eval(expr, note="hé")) == shown


def test_every_byte_reads_back_the_same_through_the_engine():
    every = bytes(range(256))
    literal = bytes_literal(every)
    assert bytes(_eval(literal)) == every
    assert to_json(_eval(literal)) == literal


@pytest.mark.parametrize(
    ("text", "is_literal"),
    [
        (r'b"h\xc3\xa9"', True),
        ('b""', True),
        ("h\\xc3", False),  # not wrapped in b"..."
        ('"b"', False),
        ('b"un"escaped"', False),  # a bare quote inside
        (r'b"\q"', False),  # an escape bytes_literal never writes
        ('b"é"', False),  # bytes_literal writes only printable ASCII
    ],
)
def test_only_what_bytes_literal_writes_is_taken_for_bytes(text: str, is_literal: bool):
    assert is_bytes_literal(text) is is_literal
