"""Audit queries on SQLite: one index drives each page in seq order, so nothing is sorted.

The side index (audit_index.py, migration 0007) holds, for every filter column, the entries
of one value as a (col, value, seq) key range, so they are already in seq order and a keyset
cursor is a seq range inside it. It is built in bulk off the write path and holds the entries
up to its watermark `indexed_through`; the entries after it (the tail, kept to a few hundred
by the store's indexer) are scanned directly with every filter, and the page is the indexed
part then the tail (ascending) or the tail then the indexed part (descending). A query picks
ONE driver and applies every other filter row by row:

* an equality filter -> its side-index range; several values (types, outcomes, the action
  names a glob matches) -> one range per value, merged in seq order by SQLite's
  ``MERGE (UNION ALL)``;
* the rule filter -> audit_rules' (rule, seq) primary key (written with the entry: no tail);
* nothing indexable -> the seq primary key itself.

With several indexable filters, the driver is the one whose index holds fewest entries in the
page's seq range, found by counting each up to 1,000 and then up to 10,000 entries (a
fraction of a millisecond each); ties go to the filter that usually matches fewest (ids, then
people, rules, actions, groups, then the low-cardinality columns). A page reads the driver's
entries from the cursor until it has `limit` hits: a sparse combination reads at most the
smallest filter's range, and only combinations whose every filter matches more than 10,000
entries can read more than that.

Time bounds become seq bounds (`_seq_window`), so they narrow whichever index drives: entry
times follow seq except for "regressions" (see 0003_audit_queries.sql; the side index holds
the times of the others), and with D the largest
regression lag ever recorded, ``time >= since`` implies seq >= the first entry that reached
`since`, and ``time < until`` implies seq < the first entry that reached ``until + D``. The
time filter itself is then applied row by row, so the result is exact; D only widens the
range scanned near `until` (by D's worth of traffic, after a clock stepped back by D).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from typing import Any

from signoff.core.audit import AuditEntry, format_time
from signoff.policy.globs import Glob
from signoff.store.base import AuditQuery
from signoff.store.rows import AUDIT_FIELDS, SQLITE
from signoff.store.sqlite import audit_index
from signoff.store.sqlite.audit import MAX_SEQ
from signoff.store.sqlite.reviews import sqlite_glob

_COLUMNS = ", ".join(f"a.{name}" for name in AUDIT_FIELDS)
# The same, with seq read from the side index: each leg of a merge is then in index order.
_INDEXED_COLUMNS = ", ".join(f"i.{n}" if n == "seq" else f"a.{n}" for n in AUDIT_FIELDS)
# A glob matching more action names than this is broad: filter rows instead of merging ranges.
MAX_MERGED_NAMES = 32
# Index entries counted to choose the driver of a combination: a cheap round, then a deeper one.
_PROBE_CAPS = (1_000, 10_000)
# Distinct action names visited to resolve one glob before giving up and filtering rows.
_MAX_NAMES_VISITED = 2000


@dataclass(frozen=True, slots=True)
class _Filter:
    """One condition: the row predicate `sql` (on alias `a`) with `args`; when `drives`, the
    side-index keys of `column` whose entries are exactly its matches up to the watermark."""

    column: str
    sql: str
    args: tuple[Any, ...]
    keys: tuple[str, ...] = ()
    drives: bool = True

    @staticmethod
    def equal(column: str, values: tuple[str, ...]) -> _Filter:
        """`column` is one of `values` ('' is not in the side index: such a filter filters)."""
        if len(values) == 1:
            sql = f"a.{column} = ?"
        else:
            sql = f"a.{column} IN ({', '.join('?' * len(values))})"
        return _Filter(column, sql, values, values, "" not in values)


def query(
    conn: sqlite3.Connection,
    q: AuditQuery,
    *,
    descending: bool = False,
    after_seq: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Return one page of entries matching `q`, in seq order, strictly past `after_seq`."""
    if limit <= 0:
        return []
    # One read transaction: the watermark, the window and the page see one snapshot.
    conn.execute("BEGIN")
    try:
        rows = _page(conn, q, descending, after_seq, limit)
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")
    return [SQLITE.entry(row) for row in rows]


def _page(
    conn: sqlite3.Connection, q: AuditQuery, descending: bool, after_seq: int | None, limit: int
) -> list[Any]:
    through = audit_index.indexed_through(conn)
    window = _seq_window(conn, q, descending, after_seq, through)
    filters = _filters(conn, q)
    if window is None or filters is None:
        return []
    lo, hi = window
    driver = _driver(conn, [f for f in filters if f.drives], lo, min(hi, through))
    terms = [(f.sql, f.args) for f in filters if f is not driver]
    if q.since is not None:
        terms.append(("a.time >= ?", (format_time(q.since),)))
    if q.until is not None:
        terms.append(("a.time < ?", (format_time(q.until),)))
    rest = "".join(f" AND {sql}" for sql, _ in terms)
    args = [arg for _, term_args in terms for arg in term_args]
    order = "DESC" if descending else "ASC"
    if driver is None:
        sql = (
            f"SELECT {_COLUMNS} FROM audit AS a NOT INDEXED WHERE a.seq BETWEEN ? AND ?{rest} "
            f"ORDER BY a.seq {order} LIMIT ?"
        )
        return conn.execute(sql, [lo, hi, *args, limit]).fetchall()
    if driver.column == "rule":
        # audit_rules is written with the entry (no tail). CROSS JOIN keeps it outermost:
        # its (rule, seq) key gives the order.
        sql = (
            f"SELECT {_COLUMNS} FROM audit_rules AS r CROSS JOIN audit AS a ON a.seq = r.seq "
            f"WHERE r.rule = ? AND r.seq BETWEEN ? AND ?{rest} ORDER BY r.seq {order} LIMIT ?"
        )
        return conn.execute(sql, [driver.keys[0], lo, hi, *args, limit]).fetchall()
    # The side index holds seq <= through; the tail after it is scanned with every filter.
    # Ascending, the indexed part comes first; descending, the tail does.
    parts = [(lo, min(hi, through), True), (max(lo, through + 1), hi, False)]
    rows: list[Any] = []
    for part_lo, part_hi, indexed in parts[::-1] if descending else parts:
        if part_lo > part_hi or len(rows) >= limit:
            continue
        if indexed:
            rows += _indexed(conn, driver, part_lo, part_hi, rest, args, order, limit - len(rows))
        else:
            sql = (
                f"SELECT {_COLUMNS} FROM audit AS a WHERE a.seq BETWEEN ? AND ? AND "
                f"{driver.sql}{rest} ORDER BY a.seq {order} LIMIT ?"
            )
            tail_args = [part_lo, part_hi, *driver.args, *args, limit - len(rows)]
            rows += conn.execute(sql, tail_args).fetchall()
    return rows


def _indexed(
    conn: sqlite3.Connection,
    driver: _Filter,
    lo: int,
    hi: int,
    rest: str,
    args: list[Any],
    order: str,
    limit: int,
) -> list[Any]:
    """Rows of the indexed part: one side-index range per key, merged in seq order."""
    if not driver.keys:
        return []
    # CROSS JOIN keeps the side index outermost (ORDER BY 1: its i.seq, the key order);
    # ranges of several keys are merged by
    # SQLite's MERGE (UNION ALL), each already in seq order.
    leg = (
        f"SELECT {_INDEXED_COLUMNS} FROM audit_index AS i CROSS JOIN audit AS a "
        f"ON a.seq = i.seq WHERE i.col = ? AND i.value = ? AND i.seq BETWEEN ? AND ?{rest}"
    )
    code = audit_index.CODES[driver.column]
    legs_args: list[Any] = []
    for key in driver.keys:
        legs_args += [code, key, lo, hi, *args]
    sql = " UNION ALL ".join([leg] * len(driver.keys)) + f" ORDER BY 1 {order} LIMIT ?"
    return conn.execute(sql, [*legs_args, limit]).fetchall()


# Driver preference: the filters that usually match fewest entries first.
_PREFERENCE = (
    *("decision_id", "review_id", "request_id", "reviewer", "principal", "rule"),
    *("action_name", "reviewer_group", "policy_version", "review_state", "type", "outcome"),
)


def _driver(
    conn: sqlite3.Connection, candidates: list[_Filter], lo: int, hi: int
) -> _Filter | None:
    """Return the candidate with the fewest entries in [lo, hi] (by capped counts)."""
    # Counting a few thousand index entries costs well under a millisecond; scanning the
    # wrong index for a sparse combination costs tens. Caps grow so a tiny range is found
    # cheaply; candidates still tied at the last cap go by the usual selectivity.
    for cap in _PROBE_CAPS:
        if len(candidates) <= 1:
            break
        counts = [_count(conn, f, lo, hi, cap) for f in candidates]
        fewest = min(counts)
        candidates = [f for f, n in zip(candidates, counts, strict=True) if n == fewest]
        if fewest < cap:
            break
    return min(candidates, key=lambda f: _PREFERENCE.index(f.column), default=None)


def _count(conn: sqlite3.Connection, f: _Filter, lo: int, hi: int, cap: int) -> int:
    """Return how many entries in [lo, hi] `f`'s index holds, counting no further than `cap`."""
    if f.column == "rule":
        source, key = "audit_rules WHERE rule = ?", ()
    else:
        source, key = "audit_index WHERE col = ? AND value = ?", (audit_index.CODES[f.column],)
    sql = f"SELECT count(*) FROM (SELECT 1 FROM {source} AND seq BETWEEN ? AND ? LIMIT ?)"
    total = 0
    for value in f.keys:
        total += conn.execute(sql, (*key, value, lo, hi, cap - total)).fetchone()[0]
        if total >= cap:
            break
    return total


def _filters(conn: sqlite3.Connection, q: AuditQuery) -> list[_Filter] | None:
    """Return the filters of `q` (time aside), or None when they cannot match anything."""
    found = [
        _Filter.equal(column, (value,))
        for column, value in (
            ("decision_id", q.decision_id),
            ("review_id", q.review_id),
            ("request_id", q.request_id),
            ("reviewer", q.reviewer),
            ("principal", q.principal),
            ("reviewer_group", q.reviewer_group),
            ("policy_version", q.policy_version),
            ("review_state", q.review_state),
        )
        if value
    ]
    for column, values in (("type", q.types), ("outcome", q.outcomes)):
        if values:
            found.append(_Filter.equal(column, tuple(dict.fromkeys(values))))
    if q.rule:
        exists = "EXISTS (SELECT 1 FROM audit_rules AS r WHERE r.rule = ? AND r.seq = a.seq)"
        found.append(_Filter("rule", exists, (q.rule,), (q.rule,)))
    if q.action_glob and q.action_glob != "*":
        if "*" not in q.action_glob:
            found.append(_Filter.equal("action_name", (q.action_glob,)))
        else:
            # The names come from the side index, so they drive its part only; the tail
            # (and a driver other than this filter) matches rows by the glob itself.
            names = _action_names(conn, q.action_glob)
            glob = "a.action_name GLOB ?", (sqlite_glob(q.action_glob),)
            found.append(_Filter("action_name", *glob, names or (), names is not None))
    return found


def _action_names(conn: sqlite3.Connection, glob: str) -> tuple[str, ...] | None:
    """Return the stored action names `glob` matches, or None when there are too many."""
    # A loose index scan: one seek per distinct name in the glob's literal-prefix range,
    # instead of reading every entry of those names.
    prefix = glob.split("*", 1)[0]
    # Never a regex here: the glob is the caller's and the names are agents' (signoff.policy.globs).
    pattern = Glob.of(glob)
    names: list[str] = []
    code = audit_index.CODES["action_name"]
    sql = "SELECT value FROM audit_index WHERE col = ? AND value {} ? ORDER BY value LIMIT 1"
    row = conn.execute(sql.format(">="), (code, prefix)).fetchone()
    for _ in range(_MAX_NAMES_VISITED):
        if row is None or not str(row[0]).startswith(prefix):
            return tuple(names)
        name = str(row[0])
        if pattern.matches(name):
            names.append(name)
            if len(names) > MAX_MERGED_NAMES:
                return None
        row = conn.execute(sql.format(">"), (code, name)).fetchone()
    return None


def _seq_window(
    conn: sqlite3.Connection, q: AuditQuery, descending: bool, after_seq: int | None, through: int
) -> tuple[int, int] | None:
    """Return the seq range [lo, hi] that holds every match of `q`, or None if it is empty."""
    lo = max(q.from_seq, 1)
    hi = q.to_seq if q.to_seq > 0 else MAX_SEQ
    if after_seq is not None:
        if descending:
            hi = min(hi, after_seq - 1)
        else:
            lo = max(lo, after_seq + 1)
    if q.since is not None:
        first = _first_reaching(conn, format_time(q.since), through)
        if first is None:
            return None
        lo = max(lo, first)
    if q.until is not None:
        lag_us = conn.execute(
            "SELECT coalesce(max(deficit_us), 0) FROM audit_time_regressions"
        ).fetchone()[0]
        try:
            bound = format_time(q.until + dt.timedelta(microseconds=int(lag_us)))
        except OverflowError:
            bound = ""
        past = _first_reaching(conn, bound, through) if bound else None
        if past is not None:
            hi = min(hi, past - 1)
    return (lo, hi) if lo <= hi else None


def _first_reaching(conn: sqlite3.Connection, time: str, through: int) -> int | None:
    """Return the first seq at which the running maximum of entry times reached `time`."""
    # That entry raised the maximum, so it is no regression; among non-regressions times
    # follow seq, so the earliest such time >= `time` is the one -- in the side index (which
    # holds exactly the non-regressions up to `through`) if it has one, else in the tail.
    row = conn.execute(
        "SELECT seq FROM audit_index WHERE col = ? AND value >= ? ORDER BY value, seq LIMIT 1",
        (audit_index.TIME, time),
    ).fetchone()
    if row is None:
        row = conn.execute(
            "SELECT a.seq FROM audit AS a WHERE a.seq > ? AND a.time >= ? AND NOT EXISTS "
            "(SELECT 1 FROM audit_time_regressions AS r WHERE r.seq = a.seq) "
            "ORDER BY a.seq LIMIT 1",
            (through, time),
        ).fetchone()
    return None if row is None else int(row[0])
