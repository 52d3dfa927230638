"""The review listing (ListReviews, the console's queue) written once for both backends.

The two dialects differ in three places only, which a `Dialect` names: how a set of values
is matched (`IN (?, ?)` against `= ANY(%s)`), how an action glob is matched (SQLite's GLOB
against a LIKE pattern that the "C" collation lets use an index) and how a time is passed
(RFC 3339 text against a timestamptz). The statement uses psycopg's `%s`; SQLite's caller
turns it into `?` (grants_sql.for_sqlite).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from signoff.store.base import ReviewQuery


@dataclass(frozen=True, slots=True)
class Dialect:
    """What one backend's review listing spells its own way."""

    # (column, values) -> (condition, its arguments)
    any_of: Callable[[str, Sequence[str]], tuple[str, list[Any]]]
    # (column, glob with a `*`) -> (condition, its arguments)
    glob: Callable[[str, str], tuple[str, list[Any]]]
    time: Callable[[dt.datetime], Any]


def list_reviews(select: str, q: ReviewQuery, dialect: Dialect) -> tuple[str, list[Any]]:
    """The statement and arguments of one page of `q`, ordered by (created_at, review_id)."""
    where: list[str] = []
    args: list[Any] = []
    for column, values in (("reviewer_group", q.groups), ("state", q.states)):
        if values:
            _add(where, args, dialect.any_of(column, values))
    if q.action_glob and q.action_glob != "*":
        if "*" in q.action_glob:
            _add(where, args, dialect.glob("action_name", q.action_glob))
        else:
            _add(where, args, ("action_name = %s", [q.action_glob]))
    if q.created_before is not None:
        _add(where, args, ("created_at < %s", [dialect.time(q.created_before)]))
    if q.principal_id:
        _add(where, args, ("principal_id = %s", [q.principal_id]))
    direction = "DESC" if q.newest_first else "ASC"
    if q.after is not None:
        # A row-value comparison on the sort key: strictly past the previous page's last row,
        # so rows added meanwhile neither repeat nor shift anything already listed.
        cmp = "<" if q.newest_first else ">"
        after = [dialect.time(q.after[0]), q.after[1]]
        _add(where, args, (f"(created_at, review_id) {cmp} (%s, %s)", after))
    sql = select
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY created_at {direction}, review_id {direction} LIMIT %s"
    return sql, [*args, q.limit]


def _add(where: list[str], args: list[Any], cond: tuple[str, list[Any]]) -> None:
    where.append(cond[0])
    args.extend(cond[1])
