"""The audit log's canonical encoding and hash chain: a contract auditors re-implement."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import math
from typing import Any

import pytest

from signoff.core.audit import (
    GENESIS,
    AuditEntry,
    AuditRecord,
    canonical_bytes,
    canonical_json,
    entry_hash,
    format_time,
    seal,
    verify_chain,
)

T0 = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


def record(n: int = 1, **overrides: Any) -> AuditRecord:
    fields: dict[str, Any] = {
        "type": "decision",
        "time": T0,
        "actor": "agent-7",
        "request_id": f"req-{n}",
        "decision_id": f"dec-{n}",
        "action_name": "refund.issue",
        "outcome": "REQUIRE_REVIEW",
        "principal": "agent-7",
        "reviewer_group": "finance",
        "rules": ("large-refund",),
        "policy_version": "sha256:abc",
        "payload": {"params": {"amount": 750.0, "currency": "EUR"}, "n": n},
    }
    return AuditRecord(**{**fields, **overrides})


def chain(n: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    prev = GENESIS
    for i in range(1, n + 1):
        entries.append(seal(record(i), seq=i, prev_hash=prev))
        prev = entries[-1].hash
    return entries


# -- the encoding ---------------------------------------------------------------------------


def test_canonical_bytes_golden_vector() -> None:
    # Changing this breaks every existing chain: bump ENCODING_VERSION instead.
    expected = (
        b'{"action_name":"refund.issue","actor":"agent-7","decision_id":"dec-1",'
        b'"outcome":"REQUIRE_REVIEW","payload":{"n":1,"params":{"amount":750,"currency":"EUR"}},'
        b'"policy_version":"sha256:abc","prev_hash":"' + GENESIS.encode() + b'",'
        b'"principal":"agent-7","request_id":"req-1","review_id":"","review_state":"",'
        b'"reviewer":"","reviewer_group":"finance","rules":["large-refund"],"seq":1,'
        b'"time":"2024-05-01T12:00:00.123456Z","type":"decision","v":1}'
    )
    assert canonical_bytes(record(), seq=1, prev_hash=GENESIS) == expected
    digest = hashlib.sha256(GENESIS.encode() + expected).hexdigest()
    assert entry_hash(record(), seq=1, prev_hash=GENESIS) == digest


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (4.50, "4.5"),
        (0.002, "0.002"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (1e-27, "1e-27"),
        (1e16, "10000000000000000"),
        (1e21, "1e+21"),
        (1e30, "1e+30"),
        (333333333.33333329, "333333333.3333333"),
        (-1.5, "-1.5"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (9007199254740991, "9007199254740991"),
        (10**20, "100000000000000000000"),
        (True, "true"),
        (None, "null"),
    ],
)
def test_numbers_are_written_as_ecmascript_does(value: Any, text: str) -> None:
    assert canonical_json(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"b": 1, "a": [1, "x"]}, '{"a":[1,"x"],"b":1}'),
        ('é"\\\n\t\x01\u2028', '"é\\"\\\\\\n\\t\\u0001\u2028"'),
        # UTF-16 order: U+1F600 (surrogates D83D...) sorts before U+FB01.
        ({"\ufb01": 1, "\U0001f600": 2}, '{"\U0001f600":2,"\ufb01":1}'),
        ((), "[]"),
        ({}, "{}"),
    ],
)
def test_strings_keys_and_containers_are_canonical(value: Any, text: str) -> None:
    assert canonical_json(value) == text


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, 2**53 + 1, 10**400, {1: "x"}, "\ud800", {1, 2}, b"x"],
    ids=["nan", "inf", "-inf", "inexact-int", "huge-int", "int-key", "surrogate", "set", "bytes"],
)
def test_values_without_a_canonical_form_are_rejected(value: Any) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - messages vary by value
        canonical_json(value)


def test_times_are_utc_with_microseconds_and_z() -> None:
    paris = dt.timezone(dt.timedelta(hours=2))
    assert format_time(dt.datetime(2024, 5, 1, 14, 0, tzinfo=paris)) == (
        "2024-05-01T12:00:00.000000Z"
    )
    assert record(time=dt.datetime(2024, 5, 1, 14, 0, tzinfo=paris)).time.tzinfo == dt.UTC


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"type": "decided"}, "audit type"),
        ({"outcome": "ALLOW"}, "audit outcome"),
        ({"time": dt.datetime(2024, 5, 1)}, "timezone-aware"),
        ({"payload": {"x": math.nan}}, "not a JSON number"),
        ({"rules": ("a", 1)}, "rules must be strings"),
        ({"actor": "\ud800"}, "lone surrogate"),
    ],
)
def test_bad_records_fail_at_construction(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        record(**overrides)


def test_records_are_normalized_so_stored_entries_compare_equal() -> None:
    rec = record(rules=["a", "b"], payload={"xs": (1, 2.0)})
    assert rec.rules == ("a", "b")
    assert rec.payload == {"xs": [1, 2]}
    assert rec.payload_json == '{"xs":[1,2]}'


# -- the chain ------------------------------------------------------------------------------


def test_an_intact_chain_verifies() -> None:
    entries = chain(5)
    assert entries[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert verify_chain(entries) == verify_chain(iter(entries))
    result = verify_chain(entries)
    assert (result.ok, result.checked, result.head_seq, result.head_hash) == (
        True,
        5,
        5,
        entries[-1].hash,
    )


def test_an_empty_range_verifies_to_its_starting_point() -> None:
    assert verify_chain([], "a" * 64, 8) == verify_chain([], "a" * 64, 8)
    result = verify_chain([], "a" * 64, 8)
    assert (result.ok, result.checked, result.head_seq, result.head_hash) == (True, 0, 7, "a" * 64)


def test_a_range_verifies_from_a_trusted_entry() -> None:
    entries = chain(6)
    result = verify_chain(entries[3:], entries[2].hash, 4)
    assert (result.ok, result.checked, result.head_seq) == (True, 3, 6)


def bad(entries: list[AuditEntry], *args: Any) -> tuple[int, str]:
    result = verify_chain(entries, *args)
    assert not result.ok
    assert result.detail
    return result.first_bad_seq, result.problem


@pytest.mark.parametrize(
    "change",
    [
        {"payload": {"params": {"amount": 7.5, "currency": "EUR"}, "n": 3}},
        {"outcome": "AUTO_ALLOW"},
        {"rules": ()},
        {"time": T0 + dt.timedelta(microseconds=1)},
        {"actor": "someone-else"},
    ],
    ids=["payload", "outcome", "rules", "time", "actor"],
)
def test_a_changed_field_is_detected(change: dict[str, Any]) -> None:
    entries = chain(5)
    entries[2] = dataclasses.replace(entries[2], **change)
    assert bad(entries) == (3, "changed")


def test_a_changed_hash_breaks_the_next_link() -> None:
    entries = chain(5)
    entries[2] = dataclasses.replace(entries[2], hash="f" * 64)
    assert bad(entries) == (3, "changed")


def test_a_missing_entry_is_detected() -> None:
    entries = chain(5)
    del entries[2]
    assert bad(entries) == (3, "missing")
    assert bad(chain(5)[1:]) == (1, "missing")


def test_a_missing_tail_cannot_be_seen_without_the_expected_head() -> None:
    # Truncation is caught by comparing head_seq/head_hash with a published checkpoint.
    assert verify_chain(chain(5)[:3]).head_seq == 3


def test_swapped_entries_are_reported_as_reordered() -> None:
    entries = chain(5)
    entries[2], entries[3] = entries[3], entries[2]
    assert bad(entries) == (3, "reordered")


def test_a_repeated_entry_is_reported_as_reordered() -> None:
    entries = chain(3)
    assert bad([*entries, entries[2]]) == (3, "reordered")


def test_an_entry_rehashed_into_another_position_is_reordered() -> None:
    entries = chain(5)
    moved = entries[4]
    entries[2] = seal(moved, seq=3, prev_hash=moved.prev_hash)  # valid hash, wrong link
    assert bad(entries) == (3, "reordered")


def test_a_chain_starting_from_the_wrong_hash_is_reordered() -> None:
    assert bad(chain(2), "1" * 64) == (1, "reordered")


def test_fast_canonical_path_matches_the_exact_encoder():
    import random

    from signoff_client.canonical import _encode, canonical_json

    rng = random.Random(7)
    atoms = [
        0.0,
        -0.0,
        1.0,
        750.0,
        0.1,
        1e-4,
        1.5e-5,
        1e-7,
        123.456,
        1e16,
        1e20,
        1e21,
        2.0**53,
        2**53,
        2**53 + 2,
        -17,
        True,
        False,
        None,
        "",
        "é",
        "\u2028",
        "\U0001f600",
        'a"b\\c\n',
    ]

    def gen(depth: int):
        r = rng.random()
        if depth > 3 or r < 0.5:
            return rng.choice(atoms)
        if r < 0.75:
            return [gen(depth + 1) for _ in range(rng.randrange(4))]
        keys = ["b", "a", "é", "\ue000", "\U0001f600", "A", "aa"]
        return {rng.choice(keys): gen(depth + 1) for _ in range(rng.randrange(5))}

    for _ in range(2000):
        value = gen(0)
        exact: list[str] = []
        _encode(value, exact)
        assert canonical_json(value) == "".join(exact), value
