"""Audit queries and review listings on PostgreSQL: one statement per page, keyset by seq.

Every audit filter column has an index on (column, seq), so the planner can read the matches
of one value in seq order and stop at the page's LIMIT; a keyset cursor (seq > after) is a
range inside that index, and paging while entries are appended neither repeats nor skips
one. Unlike the SQLite backend, the planner (with statistics) picks the driving index; time
bounds filter rows (index (time, seq)) instead of becoming seq bounds.

These indexes stay on the write path here, unlike SQLite's side index (sqlite/audit_index.py):
a PostgreSQL commit flushes WAL records (a small one per index tuple, full pages only on the
first change after a checkpoint), not every page it dirtied, and the pages reach the data
files later, in the background; its write path is bound by round trips, not pages.

The reviewer console's reads (group backlogs, decided reviews of an action) are here too;
each matches one partial index of migrations/postgres/0002_console.sql.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from signoff.core.audit import AuditEntry
from signoff.store import review_sql
from signoff.store.base import (
    DECIDED_STATES,
    AuditQuery,
    GroupBacklog,
    ReviewQuery,
    ReviewRecord,
)
from signoff.store.postgres.sql import SELECT_REVIEW, Conn, aware
from signoff.store.rows import AUDIT_FIELDS, POSTGRES

_COLUMNS = ", ".join(f"a.{name}" for name in AUDIT_FIELDS)
_EQUAL = (
    *("decision_id", "review_id", "request_id", "reviewer", "principal"),
    *("reviewer_group", "policy_version", "review_state"),
)


def like_pattern(glob: str) -> str:
    """Translate an action glob (only `*` is special, it spans dots) into a LIKE pattern."""
    escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def _name_filter(column: str, glob: str, where: list[str], args: list[Any]) -> None:
    if not glob or glob == "*":
        return
    if "*" in glob:  # LIKE is case-sensitive; the "C" collation lets a prefix use the index
        where.append(f"{column} LIKE %s")
        args.append(like_pattern(glob))
    else:
        where.append(f"{column} = %s")
        args.append(glob)


async def query_audit(
    conn: Conn, q: AuditQuery, *, descending: bool, after_seq: int | None, limit: int
) -> list[AuditEntry]:
    """Return one page of entries matching `q`, in seq order, strictly past `after_seq`."""
    if limit <= 0:
        return []
    where: list[str] = []
    args: list[Any] = []
    for column in _EQUAL:
        value = getattr(q, column)
        if value:
            where.append(f"a.{column} = %s")
            args.append(value)
    for column, values in (("type", q.types), ("outcome", q.outcomes)):
        if values:
            where.append(f"a.{column} = ANY(%s)")
            args.append(list(dict.fromkeys(values)))
    if q.rule:
        where.append("EXISTS (SELECT 1 FROM audit_rules AS r WHERE r.rule = %s AND r.seq = a.seq)")
        args.append(q.rule)
    _name_filter("a.action_name", q.action_glob, where, args)
    if q.since is not None:
        where.append("a.time >= %s")
        args.append(aware(q.since))
    if q.until is not None:
        where.append("a.time < %s")
        args.append(aware(q.until))
    if q.from_seq > 0:
        where.append("a.seq >= %s")
        args.append(q.from_seq)
    if q.to_seq > 0:
        where.append("a.seq <= %s")
        args.append(q.to_seq)
    if after_seq is not None:
        where.append(f"a.seq {'<' if descending else '>'} %s")
        args.append(after_seq)
    sql = f"SELECT {_COLUMNS} FROM audit AS a"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY a.seq {'DESC' if descending else 'ASC'} LIMIT %s"
    cur = await conn.execute(sql, [*args, limit])
    return [POSTGRES.entry(row) for row in await cur.fetchall()]


async def list_reviews(conn: Conn, q: ReviewQuery) -> list[ReviewRecord]:
    """Return one page of `q`, ordered by (created_at, review_id)."""
    if q.limit <= 0:
        return []
    sql, args = review_sql.list_reviews(SELECT_REVIEW, q, _DIALECT)
    cur = await conn.execute(sql, args)
    return [POSTGRES.review(row) for row in await cur.fetchall()]


# LIKE is case-sensitive; the "C" collation lets a prefix use the index.
_DIALECT = review_sql.Dialect(
    any_of=lambda column, values: (f"{column} = ANY(%s)", [list(values)]),
    glob=lambda column, glob: (f"{column} LIKE %s", [like_pattern(glob)]),
    time=aware,
)


async def due_reviews(conn: Conn, now: dt.datetime, limit: int) -> list[ReviewRecord]:
    """Return PENDING reviews with expires_at <= `now`, oldest deadline first."""
    if limit <= 0:
        return []
    # Matches the partial index reviews_pending_expiry, already in deadline order.
    cur = await conn.execute(
        f"{SELECT_REVIEW} WHERE state = 'PENDING' AND expires_at <= %s "
        "ORDER BY expires_at, review_id LIMIT %s",
        (aware(now), limit),
    )
    return [POSTGRES.review(row) for row in await cur.fetchall()]


async def pending_backlog(conn: Conn, groups: Sequence[str]) -> list[GroupBacklog]:
    """Per group with PENDING reviews (of `groups`; empty = all): count, oldest, next deadline."""
    # The literal `state = 'PENDING'` matches the partial index reviews_pending_backlog.
    where, args = "state = 'PENDING'", []
    if groups:
        where += " AND reviewer_group = ANY(%s)"
        args.append(list(dict.fromkeys(groups)))
    cur = await conn.execute(
        "SELECT reviewer_group, count(*), min(created_at), min(expires_at) "
        f"FROM reviews WHERE {where} GROUP BY reviewer_group ORDER BY reviewer_group",
        args,
    )
    return [POSTGRES.backlog(row) for row in await cur.fetchall()]


# Spelled as in the partial index reviews_decided_action, which the planner can then prove
# covers the query.
_DECIDED = f"state IN ({', '.join(repr(s) for s in DECIDED_STATES)})"


async def decided_reviews(
    conn: Conn, action_name: str, exclude_review_id: str, limit: int
) -> list[ReviewRecord]:
    """Reviews of `action_name` in DECIDED_STATES, latest resolution (updated_at) first."""
    if limit <= 0:
        return []
    cur = await conn.execute(
        f"{SELECT_REVIEW} WHERE action_name = %s AND {_DECIDED} AND review_id <> %s "
        "ORDER BY updated_at DESC, review_id DESC LIMIT %s",
        (action_name, exclude_review_id, limit),
    )
    return [POSTGRES.review(row) for row in await cur.fetchall()]


async def opened_reviews(
    conn: Conn,
    since: dt.datetime,
    until: dt.datetime,
    after: tuple[dt.datetime, str] | None,
    limit: int,
) -> list[ReviewRecord]:
    """Reviews opened in [since, until) past `after`, by (created_at, review_id)."""
    if limit <= 0:
        return []
    low, low_id = (since, "") if after is None else after
    # A row-value range on the index reviews_created: (since, "") makes it created_at >= since.
    cur = await conn.execute(
        f"{SELECT_REVIEW} WHERE (created_at, review_id) > (%s, %s) AND created_at < %s "
        "ORDER BY created_at, review_id LIMIT %s",
        (aware(low), low_id, aware(until), limit),
    )
    return [POSTGRES.review(row) for row in await cur.fetchall()]
