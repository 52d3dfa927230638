"""SQLite statements for reviews: insert, conditional update, lookups, listing, expiry sweep,
and the console's reads (group backlogs, decided reviews of an action).

Functions here run on a connection the caller owns (the writer's transaction or a reader);
`SqliteStore` decides where they run. See migrations/sqlite/0002_reviews.sql for the schema
and the triggers that keep resolved reviews immutable.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from typing import Any

from signoff.core.audit import format_time
from signoff.errors import FailedPrecondition, NotFound
from signoff.store import review_sql
from signoff.store.base import DECIDED_STATES, GroupBacklog, ReviewQuery, ReviewRecord
from signoff.store.grants_sql import for_sqlite
from signoff.store.rows import REVIEW_COLUMNS, REVIEW_FIELDS, SQLITE

_SELECT = f"SELECT {REVIEW_COLUMNS} FROM reviews"
_INSERT = f"INSERT INTO reviews ({REVIEW_COLUMNS}) VALUES ({', '.join('?' * len(REVIEW_FIELDS))})"
# The guard is the whole point: the row changes only if nobody changed it since the caller
# read `version`, and only while it is PENDING (the trigger would refuse a resolved one, but
# then the caller would get a constraint error instead of the current state).
_UPDATE = (
    "UPDATE reviews SET reviewer_group = ?, state = ?, version = ?, updated_at = ?, "
    "expires_at = ?, review = ? "
    "WHERE review_id = ? AND version = ? AND state = 'PENDING' "
    f"RETURNING {REVIEW_COLUMNS}"
)
_IDENTITY = ("decision_id", "principal_id", "on_behalf_of", "action_name", "created_at")


def insert(conn: sqlite3.Connection, rec: ReviewRecord) -> None:
    """Insert a newly opened review."""
    conn.execute(_INSERT, _row(rec))


def update(conn: sqlite3.Connection, new: ReviewRecord, expected_version: int) -> ReviewRecord:
    """Apply the conditional update and return the stored row, or raise why it did not apply."""
    updated = conn.execute(
        _UPDATE,
        (
            *(new.reviewer_group, new.state, new.version, format_time(new.updated_at)),
            *(_opt_time(new.expires_at), new.review, new.review_id, expected_version),
        ),
    ).fetchall()  # drain RETURNING so the statement is finished before the savepoint ends
    if updated:
        stored = SQLITE.review(updated[0])
        # The UPDATE leaves identity columns alone; a caller that changed them in `new` has a
        # bug, and must not get back a record that differs from what is stored (raising
        # rolls this operation back to its savepoint, UPDATE included).
        changed = [name for name in _IDENTITY if getattr(stored, name) != getattr(new, name)]
        if changed:
            raise ValueError(f"update_review cannot change {', '.join(changed)}")
        return stored
    # Nothing matched; this read is in the same write transaction, so it is the state that
    # beat the caller, not a later one.
    found = conn.execute(
        "SELECT state, version FROM reviews WHERE review_id = ?", (new.review_id,)
    ).fetchone()
    if found is None:
        raise NotFound(f"review {new.review_id!r} not found")
    state, version = str(found[0]), int(found[1])
    if state != "PENDING":
        raise FailedPrecondition(
            f"review {new.review_id!r} is already {state} (version {version}); "
            "resolved reviews cannot change",
            current_state=state,
        )
    raise FailedPrecondition(
        f"review {new.review_id!r} changed since version {expected_version}: it is now "
        f"{state} at version {version}; reload it and decide again",
        current_state=state,
    )


def get(conn: sqlite3.Connection, review_id: str) -> ReviewRecord | None:
    """Return the review with this id, if any."""
    row = conn.execute(f"{_SELECT} WHERE review_id = ?", (review_id,)).fetchone()
    return None if row is None else SQLITE.review(row)


def for_decision(conn: sqlite3.Connection, decision_id: str) -> ReviewRecord | None:
    """Return the review opened by this decision, if any."""
    row = conn.execute(f"{_SELECT} WHERE decision_id = ?", (decision_id,)).fetchone()
    return None if row is None else SQLITE.review(row)


def query(conn: sqlite3.Connection, q: ReviewQuery) -> list[ReviewRecord]:
    """Return one page of `q`, ordered by (created_at, review_id)."""
    if q.limit <= 0:
        return []
    sql, args = review_sql.list_reviews(_SELECT, q, _DIALECT)
    return [SQLITE.review(row) for row in conn.execute(for_sqlite(sql), args)]


def _any_of(column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
    return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)


_DIALECT = review_sql.Dialect(
    any_of=_any_of,
    glob=lambda column, glob: (f"{column} GLOB %s", [sqlite_glob(glob)]),
    time=format_time,
)


def due(conn: sqlite3.Connection, now: dt.datetime, limit: int) -> list[ReviewRecord]:
    """Return PENDING reviews with expires_at <= `now`, oldest deadline first."""
    if limit <= 0:
        return []
    # Without statistics the planner prefers the (state, ...) index and sorts; the partial
    # index holds only pending rows, already in deadline order.
    rows = conn.execute(
        f"{_SELECT} INDEXED BY reviews_pending_expiry WHERE state = 'PENDING' AND expires_at <= ? "
        "ORDER BY expires_at, review_id LIMIT ?",
        (format_time(now), limit),
    )
    return [SQLITE.review(row) for row in rows]


def backlog(conn: sqlite3.Connection, groups: Sequence[str]) -> list[GroupBacklog]:
    """Per group with PENDING reviews (of `groups`; empty = all): count, oldest, next deadline."""
    where, args = "state = 'PENDING'", list(dict.fromkeys(groups))
    if args:
        where += f" AND reviewer_group IN ({', '.join('?' * len(args))})"
    # The literal `state = 'PENDING'` is what lets the planner use the partial index; named
    # because without statistics it would rather take reviews_state_group and then fetch
    # expires_at from every pending row.
    rows = conn.execute(
        "SELECT reviewer_group, count(*), min(created_at), min(expires_at) "
        f"FROM reviews INDEXED BY reviews_pending_backlog WHERE {where} "
        "GROUP BY reviewer_group ORDER BY reviewer_group",
        args,
    )
    return [SQLITE.backlog(row) for row in rows]


# Spelled as in the partial index reviews_decided_action: SQLite uses a partial index only
# when the query's WHERE contains the index's terms as written.
_DECIDED = f"state IN ({', '.join(repr(s) for s in DECIDED_STATES)})"


def decided(
    conn: sqlite3.Connection, action_name: str, exclude_review_id: str, limit: int
) -> list[ReviewRecord]:
    """Reviews of `action_name` in DECIDED_STATES, latest resolution (updated_at) first."""
    if limit <= 0:
        return []
    rows = conn.execute(
        f"{_SELECT} INDEXED BY reviews_decided_action "
        f"WHERE action_name = ? AND {_DECIDED} AND review_id <> ? "
        "ORDER BY updated_at DESC, review_id DESC LIMIT ?",
        (action_name, exclude_review_id, limit),
    )
    return [SQLITE.review(row) for row in rows]


def opened(
    conn: sqlite3.Connection,
    since: dt.datetime,
    until: dt.datetime,
    after: tuple[dt.datetime, str] | None,
    limit: int,
) -> list[ReviewRecord]:
    """Reviews opened in [since, until) past `after`, by (created_at, review_id)."""
    if limit <= 0:
        return []
    low, low_id = (since, "") if after is None else after
    # (created_at, review_id) > (since, "") is created_at >= since: every id is > "".
    rows = conn.execute(
        f"{_SELECT} INDEXED BY reviews_created "
        "WHERE (created_at, review_id) > (?, ?) AND created_at < ? "
        "ORDER BY created_at, review_id LIMIT ?",
        (format_time(low), low_id, format_time(until), limit),
    )
    return [SQLITE.review(row) for row in rows]


def sqlite_glob(action_glob: str) -> str:
    """Translate an action glob (only `*` is special) into an SQLite GLOB pattern."""
    # GLOB also treats `?` and `[` as wildcards; a one-character class makes them literal.
    return action_glob.replace("[", "[[]").replace("?", "[?]")


def _row(rec: ReviewRecord) -> tuple[Any, ...]:
    return (
        *(rec.review_id, rec.decision_id, rec.principal_id, rec.on_behalf_of, rec.action_name),
        *(rec.reviewer_group, rec.state, rec.version, format_time(rec.created_at)),
        *(format_time(rec.updated_at), _opt_time(rec.expires_at), rec.review),
    )


def _opt_time(t: dt.datetime | None) -> str | None:
    return None if t is None else format_time(t)
