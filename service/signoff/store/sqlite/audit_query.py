"""Audit queries on SQLite: one index drives each page in seq order, so nothing is sorted.

Every filter column has an index on (column, seq) (migrations 0001 and 0003), so the entries
matching one value are already in seq order, and a keyset cursor is a seq range inside it. A
query picks ONE driver and applies every other filter row by row:

* an equality filter -> its (column, seq) index; several values (types, outcomes, the action
  names a glob matches) -> one index range per value, merged in seq order by SQLite's
  ``MERGE (UNION ALL)``;
* the rule filter -> audit_rules' (rule, seq) primary key, joined to the entry;
* nothing indexable -> the seq primary key itself.

With several indexable filters, the driver is the one whose index holds fewest entries in the
page's seq range, found by counting each up to 1,000 and then up to 10,000 entries (a
fraction of a millisecond each); ties go to the filter that usually matches fewest (ids, then
people, rules, actions, groups, then the low-cardinality columns). A page reads the driver's
entries from the cursor until it has `limit` hits: a sparse combination reads at most the
smallest filter's range, and only combinations whose every filter matches more than 10,000
entries can read more than that.

Time bounds become seq bounds (`_seq_window`), so they narrow whichever index drives: entry
times follow seq except for "regressions" (see 0003_audit_queries.sql), and with D the largest
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
from signoff.store.sqlite.audit import MAX_SEQ
from signoff.store.sqlite.reviews import sqlite_glob

_COLUMNS = ", ".join(f"a.{name}" for name in AUDIT_FIELDS)
# A glob matching more action names than this is broad: filter rows instead of merging ranges.
MAX_MERGED_NAMES = 32
# Index entries counted to choose the driver of a combination: a cheap round, then a deeper one.
_PROBE_CAPS = (1_000, 10_000)
# Distinct action names visited to resolve one glob before giving up and filtering rows.
_MAX_NAMES_VISITED = 2000


@dataclass(frozen=True, slots=True)
class _Filter:
    """One condition: `column` equals one of `values`, or (index "") a raw SQL predicate."""

    column: str
    values: tuple[str, ...]
    index: str  # the (column, seq) index that can drive the query; "" = row filter only
    sql: str = ""  # the predicate when it is not `column IN values`

    def predicate(self) -> tuple[str, list[Any]]:
        """Return this filter as a WHERE term on alias `a`, with its arguments."""
        if self.sql:
            return self.sql, list(self.values)
        if len(self.values) == 1:
            return f"a.{self.column} = ?", list(self.values)
        return f"a.{self.column} IN ({', '.join('?' * len(self.values))})", list(self.values)


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
    # One read transaction: the window and the page see the same snapshot of the log.
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
    window = _seq_window(conn, q, descending, after_seq)
    filters = _filters(conn, q)
    if window is None or filters is None:
        return []
    lo, hi = window
    driver = _driver(conn, [f for f in filters if f.index], lo, hi)
    where, args = [], []
    for f in filters:
        if f is not driver:
            term, term_args = f.predicate()
            where.append(term)
            args.extend(term_args)
    if q.since is not None:
        where.append("a.time >= ?")
        args.append(format_time(q.since))
    if q.until is not None:
        where.append("a.time < ?")
        args.append(format_time(q.until))
    rest = "".join(f" AND {term}" for term in where)
    order = "DESC" if descending else "ASC"
    if driver is None:
        sql = (
            f"SELECT {_COLUMNS} FROM audit AS a NOT INDEXED WHERE a.seq BETWEEN ? AND ?{rest} "
            f"ORDER BY a.seq {order} LIMIT ?"
        )
        return conn.execute(sql, [lo, hi, *args, limit]).fetchall()
    if driver.column == "rule":
        # CROSS JOIN keeps audit_rules outermost: its (rule, seq) key gives the order.
        sql = (
            f"SELECT {_COLUMNS} FROM audit_rules AS r CROSS JOIN audit AS a ON a.seq = r.seq "
            f"WHERE r.rule = ? AND r.seq BETWEEN ? AND ?{rest} ORDER BY r.seq {order} LIMIT ?"
        )
        return conn.execute(sql, [driver.values[0], lo, hi, *args, limit]).fetchall()
    leg = (
        f"SELECT {_COLUMNS} FROM audit AS a INDEXED BY {driver.index} "
        f"WHERE a.{driver.column} = ? AND a.seq BETWEEN ? AND ?{rest}"
    )
    legs_args: list[Any] = []
    for value in driver.values:
        legs_args += [value, lo, hi, *args]
    sql = " UNION ALL ".join([leg] * len(driver.values)) + f" ORDER BY seq {order} LIMIT ?"
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
        source = "audit_rules WHERE rule = ?"
    else:
        source = f"audit INDEXED BY {f.index} WHERE {f.column} = ?"
    sql = f"SELECT count(*) FROM (SELECT 1 FROM {source} AND seq BETWEEN ? AND ? LIMIT ?)"
    total = 0
    for value in f.values:
        total += conn.execute(sql, (value, lo, hi, cap - total)).fetchone()[0]
        if total >= cap:
            break
    return total


def _filters(conn: sqlite3.Connection, q: AuditQuery) -> list[_Filter] | None:
    """Return the filters of `q` (time aside), or None when they cannot match anything."""
    found = [
        _Filter(column, (value,), f"audit_{column}")
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
            found.append(_Filter(column, tuple(dict.fromkeys(values)), f"audit_{column}"))
    if q.rule:
        exists = "EXISTS (SELECT 1 FROM audit_rules AS r WHERE r.rule = ? AND r.seq = a.seq)"
        found.append(_Filter("rule", (q.rule,), "audit_rules", exists))
    if q.action_glob and q.action_glob != "*":
        if "*" not in q.action_glob:
            found.append(_Filter("action_name", (q.action_glob,), "audit_action"))
        else:
            names = _action_names(conn, q.action_glob)
            if names == ():
                return None
            if names is None:  # too many to merge: a row filter
                glob = (sqlite_glob(q.action_glob),)
                found.append(_Filter("action_name", glob, "", "a.action_name GLOB ?"))
            else:
                found.append(_Filter("action_name", names, "audit_action"))
    return found


def _action_names(conn: sqlite3.Connection, glob: str) -> tuple[str, ...] | None:
    """Return the stored action names `glob` matches, or None when there are too many."""
    # A loose index scan: one seek per distinct name in the glob's literal-prefix range,
    # instead of reading every entry of those names.
    prefix = glob.split("*", 1)[0]
    # Never a regex here: the glob is the caller's and the names are agents' (signoff.policy.globs).
    pattern = Glob.of(glob)
    names: list[str] = []
    sql = "SELECT action_name FROM audit INDEXED BY audit_action WHERE action_name {} ? "
    sql += "ORDER BY action_name LIMIT 1"
    row = conn.execute(sql.format(">="), (prefix,)).fetchone()
    for _ in range(_MAX_NAMES_VISITED):
        if row is None or not str(row[0]).startswith(prefix):
            return tuple(names)
        name = str(row[0])
        if pattern.matches(name):
            names.append(name)
            if len(names) > MAX_MERGED_NAMES:
                return None
        row = conn.execute(sql.format(">"), (name,)).fetchone()
    return None


def _seq_window(
    conn: sqlite3.Connection, q: AuditQuery, descending: bool, after_seq: int | None
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
        first = _first_reaching(conn, format_time(q.since))
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
        past = _first_reaching(conn, bound) if bound else None
        if past is not None:
            hi = min(hi, past - 1)
    return (lo, hi) if lo <= hi else None


def _first_reaching(conn: sqlite3.Connection, time: str) -> int | None:
    """Return the first seq at which the running maximum of entry times reached `time`."""
    # That entry raised the maximum, so it is no regression; among non-regressions times
    # follow seq, so the earliest such time >= `time` in the time index is the one.
    row = conn.execute(
        "SELECT a.seq FROM audit AS a INDEXED BY audit_time WHERE a.time >= ? "
        "AND NOT EXISTS (SELECT 1 FROM audit_time_regressions AS r WHERE r.seq = a.seq) "
        "ORDER BY a.time, a.seq LIMIT 1",
        (time,),
    ).fetchone()
    return None if row is None else int(row[0])
