"""Our RFC 8785 encoder against an independent implementation (the `rfc8785` package).

Hypothesis generates JSON documents with what the encoders get wrong in practice: keys above
U+FFFF (UTF-16 order), floats at every magnitude (integral ones past 2**53, below 1e-6,
from 1e21), -0.0, control characters and other escapes, deep nesting. Each document is
encoded by the orjson path the server runs, by the pure-Python path the client runs without
orjson, and by the reference encoder; all must give rfc8785's bytes. Also: the pre-0.2.0
form (legacy_canonical_json) and an audit entry hashed in it still verifying.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import struct
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import signoff_client.canonical as canonical
from signoff.core.audit import (
    GENESIS,
    AuditEntry,
    AuditRecord,
    entry_hash,
    hash_matches,
    seal,
    verify_chain,
)
from signoff.export.lines import entry_from_json, entry_json
from signoff_client.canonical import (
    action_digest,
    action_digests,
    canonical_json,
    canonical_json_bytes,
    legacy_canonical_json,
)

# Every double the wire can carry, with the troublesome magnitudes drawn often.
_EDGE_FLOATS = st.sampled_from(
    [0.0, -0.0, 2.0**53, 2.0**53 + 2, 2.0**60, -(2.0**60), 1e20, 1e21, 1e-6, 1e-7, 5e-324]
)
_FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=2.0**53, max_value=1e22).map(lambda x: float(math.floor(x))),
    st.floats(min_value=1e-8, max_value=1e-3),
    st.integers(-(2**63), 2**63 - 1)
    .map(lambda n: struct.unpack("<d", struct.pack("<q", n))[0])
    .filter(math.isfinite),
    _EDGE_FLOATS,
)
_TEXT = st.text(
    st.characters(codec="utf-8")  # every scalar value, no lone surrogates
    | st.sampled_from(["\x00", "\x1f", "\x7f", '"', "\\", "/", "\u2028", "\ufeff", "\U0001f600"]),
    max_size=12,
)
_KEYS = _TEXT | st.sampled_from(["\U0001f600", "\ufb33", "\ue000", "a", "", "\U00010000x"])
_SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | _FLOATS
)  # rfc8785's int domain | _TEXT
_DOCS = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=40,
)

_RUN = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _pure(value: Any) -> str:
    """The client's path without orjson (json.dumps, then the exact encoder)."""
    saved, canonical.orjson = canonical.orjson, None
    try:
        return canonical.canonical_json(value)
    finally:
        canonical.orjson = saved


def _reference(value: Any) -> str:
    out: list[str] = []
    canonical._encode(value, out)
    return "".join(out)


@_RUN
@given(_DOCS)
def test_every_path_writes_what_rfc8785_writes(doc: Any) -> None:
    expected = rfc8785.dumps(doc)
    assert canonical_json_bytes(doc) == expected
    assert canonical_json(doc).encode("utf-8") == expected
    assert _pure(doc).encode("utf-8") == expected
    assert _reference(doc).encode("utf-8") == expected


@_RUN
@given(_DOCS)
def test_text_read_back_encodes_to_the_same_bytes(doc: Any) -> None:
    # json.loads reads 1152921504606847000 (2.0**60 as written) as an int: it must encode
    # as the double it denotes, or a stored entry would not read back at all.
    text = canonical_json(doc)
    assert canonical_json(json.loads(text)) == text
    assert _pure(json.loads(text)) == text


def test_a_new_entry_with_a_large_number_reads_back_and_verifies() -> None:
    entry = seal(
        AuditRecord(
            type="decision",
            time=dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
            payload={"amount": 2.0**60, "big": 2.9514790517935283e20},
        ),
        seq=1,
        prev_hash=GENESIS,
    )
    assert entry.payload_json == '{"amount":1152921504606847000,"big":295147905179352830000}'
    back = AuditEntry(
        type=entry.type,
        time=entry.time,
        payload=json.loads(entry.payload_json),
        seq=1,
        prev_hash=GENESIS,
        hash=entry.hash,
    )
    assert verify_chain([back]).ok


def test_the_orjson_path_is_the_one_tested() -> None:
    # Without orjson installed the test above would compare the pure path with itself.
    assert canonical.orjson is not None


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2.0**60, "1152921504606847000"),  # the bug: was 1152921504606846976
        (-(2.0**60), "-1152921504606847000"),
        (2.0**53, "9007199254740992"),
        (2.0**53 + 2, "9007199254740994"),
        (1e20, "100000000000000000000"),
        (2.9514790517935283e20, "295147905179352830000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (-0.0, "0"),
        (1e-6, "0.000001"),
        (1.5e-6, "0.0000015"),
        (1e-7, "1e-7"),
        (5e-324, "5e-324"),
        # A Python int is the double it denotes: 2**60 is exactly one, so it is written as
        # that double (rfc8785 refuses ints past 2**53 instead; the server only meets them
        # when it reads back a pre-0.2.0 entry, see test_an_entry_hashed_the_old_way_*).
        (2**60, "1152921504606847000"),
        (-(2**53), "-9007199254740992"),
    ],
)
def test_numbers_on_every_path(value: Any, text: str) -> None:
    for doc, expected in ((value, text), ({"k": [value]}, f'{{"k":[{text}]}}')):
        assert canonical_json(doc) == expected
        assert _pure(doc) == expected
        assert _reference(doc) == expected


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, 2**53 + 1, 10**400, "\ud800", {1: "x"}]
)
def test_what_has_no_canonical_form_is_refused_on_every_path(value: Any) -> None:
    for doc in (value, {"a": [value]}, {"\U0001f600": value}):
        for encode in (canonical_json, _pure, _reference):
            with pytest.raises(ValueError):  # noqa: PT011 - messages vary by value
                encode(doc)


def test_keys_above_u_ffff_sort_by_utf16_in_nested_objects() -> None:
    doc = {"x": {"\ufb33": 1, "\U0001f600": 2.0**60, "a": {"\U00010000": 1e-7, "\uffff": 0.5}}}
    expected = (
        '{"x":{"a":{"\U00010000":1e-7,"\uffff":0.5},"\U0001f600":1152921504606847000,"\ufb33":1}}'
    )
    assert canonical_json(doc) == expected == rfc8785.dumps(doc).decode()


# -- the pre-0.2.0 form ---------------------------------------------------------------------


def test_legacy_form_exists_only_where_the_old_fast_path_differed() -> None:
    assert legacy_canonical_json({"amount": 2.0**60}) == '{"amount":1152921504606846976}'
    # Read back from stored text, the old digits are a Python int: the same form.
    assert legacy_canonical_json({"amount": 1152921504606846976}) == (
        '{"amount":1152921504606846976}'
    )
    # A tiny float sent the old encoder down its exact path: nothing differed.
    assert legacy_canonical_json({"amount": 2.0**60, "t": 1e-7}) is None
    assert legacy_canonical_json({"\U0001f600": 2.0**60}) is None
    # Digits that happen to agree, safe numbers, no numbers: no second form.
    assert legacy_canonical_json({"a": 2.0**53 + 2, "b": 750.0, "c": "x"}) is None


@_RUN
@given(_DOCS)
def test_legacy_form_names_the_same_numbers(doc: Any) -> None:
    legacy = legacy_canonical_json(doc)
    if legacy is not None:
        # Parsed as doubles, both texts are the same document: accepting either
        # vouches for the same content.
        as_doubles = {"parse_int": float}
        assert json.loads(legacy, **as_doubles) == json.loads(canonical_json(doc), **as_doubles)
        assert legacy != canonical_json(doc)


def _old_fast_path_entry(payload: dict[str, Any]) -> AuditEntry:
    """An entry as 0.1.x sealed it: the hash over the old payload text."""
    entry = seal(
        AuditRecord(type="decision", time=dt.datetime(2026, 1, 2, tzinfo=dt.UTC), payload=payload),
        seq=1,
        prev_hash=GENESIS,
    )
    old = legacy_canonical_json(payload)
    assert old is not None
    assert old != entry.payload_json
    old_hash = entry_hash(entry, seq=1, prev_hash=GENESIS, payload_json=old)
    # As the store reads it back: the stored text parsed, the record rebuilt.
    return AuditEntry(
        type=entry.type,
        time=entry.time,
        payload=json.loads(old),
        seq=1,
        prev_hash=GENESIS,
        hash=old_hash,
    )


def test_an_entry_hashed_the_old_way_still_verifies() -> None:
    entry = _old_fast_path_entry({"request": {"params": {"amount": 2.0**60, "n": 3.0}}})
    assert hash_matches(entry)
    assert verify_chain([entry]).ok
    # Through an export line (the offline verifier's path) as well.
    assert hash_matches(entry_from_json(json.loads(json.dumps(entry_json(entry)))))


def test_an_old_entry_with_a_changed_number_is_still_caught() -> None:
    entry = _old_fast_path_entry({"amount": 2.0**60})
    for forged in (2**60 + 2**8, 2**61, 2.0**60 - 128, 750.0):
        changed = AuditEntry(
            type=entry.type,
            time=entry.time,
            payload={"amount": forged},
            seq=1,
            prev_hash=GENESIS,
            hash=entry.hash,
        )
        assert not hash_matches(changed)
        assert verify_chain([changed]).problem == "changed"


def test_action_digests_offer_the_old_digest_only_when_it_differs() -> None:
    params = {"amount": 2.0**60, "currency": "EUR"}
    digests = action_digests("refund.issue", params, {"id": "bot"})
    assert digests[0] == action_digest("refund.issue", params, {"id": "bot"})
    assert len(digests) == 2
    assert action_digests("refund.issue", {"amount": 750.0}) == (
        action_digest("refund.issue", {"amount": 750.0}),
    )
