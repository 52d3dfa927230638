"""UUIDv7 ids: valid, time-ordered, unique."""

from __future__ import annotations

import time
import uuid

from signoff.ids import Uuid7


def test_ids_are_uuid7_and_strictly_increasing():
    make = Uuid7()
    ids = [make() for _ in range(50_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    parsed = uuid.UUID(ids[0])
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_id_timestamp_is_the_current_millisecond():
    before = time.time_ns() // 1_000_000
    ms = uuid.UUID(Uuid7()()).int >> 80
    after = time.time_ns() // 1_000_000
    assert before <= ms <= after + 1


def test_counter_overflow_carries_into_the_timestamp():
    make = Uuid7()
    make._last_ms = 10**13  # a millisecond far in the future: every id falls into it
    make._counter = 0xFFE
    a, b = make(), make()
    assert uuid.UUID(b).int >> 80 == 10**13 + 1
    assert a < b
