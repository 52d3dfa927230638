"""signoff.store.rows: one decoder per record; the backends differ only in times and lists."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from signoff.core.audit import format_time
from signoff.errors import FailedPrecondition
from signoff.store.rows import POSTGRES, SQLITE, Rows

T = dt.datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=dt.UTC)
# PostgreSQL hands a timestamptz back in the session's zone; the record must still hold UTC.
T_PG = T.astimezone(dt.timezone(dt.timedelta(hours=2)))
T_SQL = format_time(T)
LATER = T + dt.timedelta(hours=1)

# record type -> (SQLite row, PostgreSQL row): the same stored record as each backend returns it.
ROWS: dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]] = {
    "decision": (
        ("d1", "p1", "r1", "ab", "refund.issue", "DENY", T_SQL, b"\x01"),
        ("d1", "p1", "r1", "ab", "refund.issue", "DENY", T_PG, memoryview(b"\x01")),
    ),
    "review": (
        ("v1", "d1", "p1", "", "refund.issue", "g", "PENDING", 1, T_SQL, T_SQL, None, b"r"),
        ("v1", "d1", "p1", "", "refund.issue", "g", "PENDING", 1, T_PG, T_PG, None, b"r"),
    ),
    "grant": (
        ("g1", "g", "a", "pol", "rule", "", 3, 1, "carol", T_SQL, format_time(LATER), None, "",
         b"x"),
        ("g1", "g", "a", "pol", "rule", "", 3, 1, "carol", T_PG, LATER, None, "", b"x"),
    ),
    "entry": (
        (7, T_SQL, "decision", "p1", "r1", "d1", "", "a", "DENY", "p1", "", "", "",
         '["pol/r1","pol/r2"]', "v1", '{"k":1}', "00", "11"),
        (7, T_PG, "decision", "p1", "r1", "d1", "", "a", "DENY", "p1", "", "", "",
         ["pol/r1", "pol/r2"], "v1", '{"k":1}', "00", "11"),
    ),
    "checkpoint": ((5, "aa", T_SQL, "k1", "c2ln", 5, "bb"), (5, "aa", T_PG, "k1", "c2ln", 5, "bb")),
    "backlog": (("g", 2, T_SQL, format_time(LATER)), ("g", 2, T_PG, LATER)),
}  # fmt: skip


def _decode(rows: Rows, kind: str, row: tuple[Any, ...]) -> Any:
    return getattr(rows, kind)(row)


@pytest.mark.parametrize("kind", ROWS)
def test_both_backends_decode_the_same_record(kind: str) -> None:
    sqlite_row, postgres_row = ROWS[kind]
    from_sqlite = _decode(SQLITE, kind, sqlite_row)
    from_postgres = _decode(POSTGRES, kind, postgres_row)
    assert from_sqlite == from_postgres
    for rec in (from_sqlite, from_postgres):
        values = [getattr(rec, f.name) for f in dataclasses.fields(rec)]
        times = [v for v in values if isinstance(v, dt.datetime)]
        assert times
        assert all(t.tzinfo == dt.UTC for t in times)  # == alone would pass +02:00 too


def test_an_entry_reads_its_rules_and_payload() -> None:
    entry = SQLITE.entry(ROWS["entry"][0])
    assert (entry.rules, entry.payload, entry.time) == (("pol/r1", "pol/r2"), {"k": 1}, T)


@pytest.mark.parametrize(
    ("kind", "index", "bad", "message"),
    [
        ("entry", 1, "yesterday", "audit entry seq 7 cannot be decoded"),
        ("entry", 13, "not json", "audit entry seq 7 cannot be decoded"),
        ("entry", 15, "{", "audit entry seq 7 cannot be decoded"),
        ("checkpoint", 2, "yesterday", "checkpoint seq 5 cannot be decoded"),
    ],
)
def test_a_corrupt_row_is_a_failed_precondition(
    kind: str, index: int, bad: str, message: str
) -> None:
    row = list(ROWS[kind][0])
    row[index] = bad
    with pytest.raises(FailedPrecondition, match=message) as err:
        _decode(SQLITE, kind, tuple(row))
    assert "modified outside signoff" in str(err.value)
    assert err.value.current_state == "corrupt"
