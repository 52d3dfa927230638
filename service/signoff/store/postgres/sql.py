"""PostgreSQL statements: decisions, audit entries, checkpoints and reviews (rows: rows.py).

Functions here run on a connection the caller owns (the writer's transaction or a pooled
reader); `PostgresStore` decides where they run. The schema and its triggers are in
migrations/postgres/. Audit queries and review listings are in postgres_query.py.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection, AsyncCursor

from signoff.core.audit import GENESIS, AuditEntry, format_time
from signoff.errors import FailedPrecondition, NotFound
from signoff.store.base import (
    Checkpoint,
    CheckpointSuperseded,
    DecisionRecord,
    ReviewRecord,
    check_replay,
)
from signoff.store.postgres import tree as tree_sql
from signoff.store.rows import (
    AUDIT_COLUMNS,
    AUDIT_FIELDS,
    CHECKPOINT_COLUMNS,
    DECISION_COLUMNS,
    DECISION_FIELDS,
    POSTGRES,
    REVIEW_COLUMNS,
    REVIEW_FIELDS,
)
from signoff.store.tree import edge_keys, tree_head_problem

Conn = AsyncConnection[Any]
SELECT_DECISION = (
    f"SELECT {DECISION_COLUMNS} FROM decisions "
    "WHERE principal_id = %s AND request_id = %s AND request_id <> ''"
)
# ON CONFLICT waits for a concurrent insert of the same key and then does nothing, so a
# duplicate never fails its batch; the caller then reads the row that won.
_INSERT_DECISION = (
    f"INSERT INTO decisions ({DECISION_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (principal_id, request_id) WHERE request_id <> '' DO NOTHING "
    "RETURNING decision_id"
)

# The stored decisions of many idempotency keys at once: what a pipelined batch reads first.
_SELECT_DECISIONS = (
    f"SELECT {DECISION_COLUMNS} FROM decisions WHERE request_id <> '' "
    "AND (principal_id, request_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
)
HEAD = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"


def _bulk(table: str, columns: str, order: str = "") -> str:
    # The rows travel as one JSON array, a single parameter encoded in C by json.dumps, and
    # json_populate_recordset turns them into the table's rows: one statement for any number
    # of rows, where executemany costs a statement each (measured: 3 per decision, most of
    # the client's time in a pipelined batch). Column types come from the table's row type.
    return (
        f"INSERT INTO {table} ({columns}) SELECT {columns} "
        f"FROM json_populate_recordset(NULL::{table}, %s::json){order}"
    )


# In seq order: the chain trigger checks each row against the one inserted before it.
_BULK_AUDIT = _bulk("audit", AUDIT_COLUMNS, " ORDER BY seq")
_BULK_RULES = _bulk("audit_rules", "rule, seq")
_BULK_DECISIONS = _bulk("decisions", DECISION_COLUMNS)
_BULK_REVIEWS = _bulk("reviews", REVIEW_COLUMNS)

_INSERT_AUDIT = f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES ({', '.join(['%s'] * 18)})"

SELECT_REVIEW = f"SELECT {REVIEW_COLUMNS} FROM reviews"
_INSERT_REVIEW = f"INSERT INTO reviews ({REVIEW_COLUMNS}) VALUES ({', '.join(['%s'] * 12)})"
# The guard is the whole point: the row changes only if nobody changed it since the caller
# read `version`, and only while it is PENDING (the trigger would refuse a resolved one, but
# then the caller would get a constraint error instead of the current state).
_UPDATE_REVIEW = (
    "UPDATE reviews SET reviewer_group = %s, state = %s, version = %s, updated_at = %s, "
    "expires_at = %s, review = %s "
    "WHERE review_id = %s AND version = %s AND state = 'PENDING' "
    f"RETURNING {REVIEW_COLUMNS}"
)
_REVIEW_CONVERTED = ("created_at", "updated_at", "expires_at", "review")
_AUDIT_CONVERTED = ("time", "rules", "payload")
_IDENTITY = ("decision_id", "principal_id", "on_behalf_of", "action_name", "created_at")


def aware(t: dt.datetime) -> dt.datetime:
    """Return `t` unchanged, refusing a naive time (PostgreSQL would read it in its own zone)."""
    format_time(t)  # raises ValueError("time must be timezone-aware")
    return t


# -- decisions -------------------------------------------------------------------------------


def _decision_args(rec: DecisionRecord) -> tuple[Any, ...]:
    return (
        *(rec.decision_id, rec.principal_id, rec.request_id, rec.request_digest),
        *(rec.action_name, rec.outcome, aware(rec.created_at), rec.decision),
    )


async def insert_decision(conn: Conn, rec: DecisionRecord) -> DecisionRecord | None:
    """Insert `rec`; on an idempotency-key hit return the stored decision instead (a replay)."""
    cur = await conn.execute(_INSERT_DECISION, _decision_args(rec))
    if await cur.fetchone() is not None:
        return None
    found = await select_decision(conn, rec.principal_id, rec.request_id)
    if found is None:  # conflict and no row: only a concurrent delete could do that
        raise FailedPrecondition("idempotency conflict without a stored decision; retry")
    return check_replay(found, rec)


async def select_decision(conn: Conn, principal_id: str, request_id: str) -> DecisionRecord | None:
    """Return the decision stored under this idempotency key, if any."""
    cur = await conn.execute(SELECT_DECISION, (principal_id, request_id))
    row = await cur.fetchone()
    return None if row is None else POSTGRES.decision(row)


async def send_select_decisions(conn: Conn, keys: Sequence[tuple[str, str]]) -> AsyncCursor[Any]:
    """Send the read of the decisions stored under `keys`; return the cursor to fetch from."""
    principals, requests = [k[0] for k in keys], [k[1] for k in keys]
    return await conn.execute(_SELECT_DECISIONS, (principals, requests))


async def fetch_decisions(cur: AsyncCursor[Any]) -> dict[tuple[str, str], DecisionRecord]:
    """The decisions of `send_select_decisions`' cursor, by idempotency key."""
    found = [POSTGRES.decision(row) for row in await cur.fetchall()]
    return {(d.principal_id, d.request_id): d for d in found}


# -- audit -----------------------------------------------------------------------------------


async def read_head(conn: Conn) -> tuple[int, str]:
    """Return the last committed (seq, hash), or (0, GENESIS) when the log is empty."""
    return await fetch_head(await conn.execute(HEAD))


async def fetch_head(cur: AsyncCursor[Any]) -> tuple[int, str]:
    """The (seq, hash) of a cursor that ran HEAD, or (0, GENESIS) when the log is empty."""
    row = await cur.fetchone()
    return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))


async def insert_entries(conn: Conn, entries: Sequence[AuditEntry]) -> None:
    """Insert `entries` (in seq order) and their matched rules."""
    rows = [
        (
            *(e.seq, e.time, e.type, e.actor, e.request_id, e.decision_id, e.review_id),
            *(e.action_name, e.outcome, e.principal, e.reviewer, e.reviewer_group),
            *(e.review_state, list(e.rules), e.policy_version, e.payload_json),
            *(e.prev_hash, e.hash),
        )
        for e in entries
    ]
    async with conn.cursor() as cur:
        await cur.executemany(_INSERT_AUDIT, rows)
        rules = [(rule, e.seq) for e in entries for rule in dict.fromkeys(e.rules)]
        if rules:
            await cur.executemany("INSERT INTO audit_rules (rule, seq) VALUES (%s, %s)", rules)


def decision_json(rec: DecisionRecord) -> dict[str, Any]:
    """`rec` as a row of `insert_bulk` (bytea as hex, times as ISO 8601 with their offset)."""
    return {
        **{f: getattr(rec, f) for f in DECISION_FIELDS if f not in ("created_at", "decision")},
        "created_at": aware(rec.created_at).isoformat(),
        "decision": "\\x" + rec.decision.hex(),
    }


def review_json(rec: ReviewRecord) -> dict[str, Any]:
    """`rec` as a row of `insert_bulk`."""
    expires = _opt(rec.expires_at)
    return {
        **{f: getattr(rec, f) for f in REVIEW_FIELDS if f not in _REVIEW_CONVERTED},
        "created_at": aware(rec.created_at).isoformat(),
        "updated_at": aware(rec.updated_at).isoformat(),
        "expires_at": None if expires is None else expires.isoformat(),
        "review": "\\x" + rec.review.hex(),
    }


async def insert_bulk(
    conn: Conn,
    decisions: Sequence[dict[str, Any]],
    reviews: Sequence[dict[str, Any]],
    entries: Sequence[AuditEntry],
) -> None:
    """Insert rows of `decision_json`, `review_json` and `entries` with a statement per table."""
    if decisions:
        await conn.execute(_BULK_DECISIONS, (json.dumps(decisions),))
    if reviews:
        await conn.execute(_BULK_REVIEWS, (json.dumps(reviews),))
    if not entries:
        return
    rows = [
        {
            **{f: getattr(e, f) for f in AUDIT_FIELDS if f not in _AUDIT_CONVERTED},
            "time": aware(e.time).isoformat(),
            "rules": list(e.rules),
            "payload": e.payload_json,
        }
        for e in entries
    ]
    await conn.execute(_BULK_AUDIT, (json.dumps(rows),))
    rules = [{"rule": rule, "seq": e.seq} for e in entries for rule in dict.fromkeys(e.rules)]
    if rules:
        await conn.execute(_BULK_RULES, (json.dumps(rules),))


async def read_entries(conn: Conn, from_seq: int, limit: int) -> list[AuditEntry]:
    """Return up to `limit` entries with seq >= `from_seq`, in seq order."""
    cur = await conn.execute(
        f"SELECT {AUDIT_COLUMNS} FROM audit WHERE seq >= %s ORDER BY seq LIMIT %s",
        (max(from_seq, 1), limit),
    )
    return [POSTGRES.entry(row) for row in await cur.fetchall()]


# -- checkpoints -----------------------------------------------------------------------------


async def insert_checkpoint(conn: Conn, cp: Checkpoint) -> None:
    """Insert `cp` after checking it moves forward and signs the stored chain head at its seq."""
    cur = await conn.execute("SELECT coalesce(max(seq), 0) FROM checkpoints")
    last = (await cur.fetchone() or (0,))[0]
    if cp.seq <= last:
        # Replicas' writers queue on the chain lock (writer.py), so a replica that signed the
        # same head finds the other's checkpoint here, never as a duplicate key below.
        raise CheckpointSuperseded(cp.seq, last)
    cur = await conn.execute("SELECT hash FROM audit WHERE seq = %s", (cp.seq,))
    found = await cur.fetchone()
    if found is None:
        head, _ = await read_head(conn)
        raise ValueError(f"checkpoint seq {cp.seq} is past the audit head ({head})")
    if found[0] != cp.head_hash:
        # A signature over a hash the log does not hold would be a false statement.
        raise ValueError(f"checkpoint head_hash is not the hash of audit entry seq {cp.seq}")
    if cp.root_hash:
        built = await tree_sql.tree_size(conn)
        edge = await tree_sql.tree_rows(conn, edge_keys(cp.tree_size))
        if problem := tree_head_problem(cp.tree_size, cp.root_hash, built, edge):
            raise ValueError(problem)
    await conn.execute(
        f"INSERT INTO checkpoints ({CHECKPOINT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (cp.seq, cp.head_hash, aware(cp.time), cp.key_id, cp.signature, cp.tree_size, cp.root_hash),
    )


async def checkpoints(conn: Conn, from_seq: int, to_seq: int) -> list[Checkpoint]:
    """Return the checkpoints with from_seq <= seq <= to_seq (0 = no bound), ascending."""
    cur = await conn.execute(
        f"SELECT {CHECKPOINT_COLUMNS} FROM checkpoints "
        "WHERE seq >= %s AND (%s = 0 OR seq <= %s) ORDER BY seq",
        (max(from_seq, 0), max(to_seq, 0), to_seq),
    )
    return [POSTGRES.checkpoint(row) for row in await cur.fetchall()]


async def last_checkpoint(conn: Conn) -> Checkpoint | None:
    """Return the checkpoint with the highest seq, if any."""
    cur = await conn.execute(
        f"SELECT {CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY seq DESC LIMIT 1"
    )
    row = await cur.fetchone()
    return None if row is None else POSTGRES.checkpoint(row)


# -- reviews ---------------------------------------------------------------------------------


async def insert_review(conn: Conn, rec: ReviewRecord) -> None:
    """Insert a newly opened review."""
    await conn.execute(
        _INSERT_REVIEW,
        (
            *(rec.review_id, rec.decision_id, rec.principal_id, rec.on_behalf_of),
            *(rec.action_name, rec.reviewer_group, rec.state, rec.version),
            *(aware(rec.created_at), aware(rec.updated_at), _opt(rec.expires_at), rec.review),
        ),
    )


async def update_review(conn: Conn, new: ReviewRecord, expected_version: int) -> ReviewRecord:
    """Apply the conditional update and return the stored row, or raise why it did not apply."""
    cur = await conn.execute(
        _UPDATE_REVIEW,
        (
            *(new.reviewer_group, new.state, new.version, aware(new.updated_at)),
            *(_opt(new.expires_at), new.review, new.review_id, expected_version),
        ),
    )
    row = await cur.fetchone()
    if row is not None:
        stored = POSTGRES.review(row)
        # The UPDATE leaves identity columns alone; a caller that changed them in `new` has a
        # bug and must not get back a record that differs from what is stored (raising rolls
        # this operation back to its savepoint, UPDATE included).
        changed = [name for name in _IDENTITY if getattr(stored, name) != getattr(new, name)]
        if changed:
            raise ValueError(f"update_review cannot change {', '.join(changed)}")
        return stored
    # Nothing matched; the writer holds the chain lock, which every review change takes, so
    # this is the state that beat the caller, not a later one.
    cur = await conn.execute(
        "SELECT state, version FROM reviews WHERE review_id = %s", (new.review_id,)
    )
    found = await cur.fetchone()
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


async def review_where(conn: Conn, column: str, value: str) -> ReviewRecord | None:
    """Return the review whose `column` (review_id or decision_id) is `value`, if any."""
    cur = await conn.execute(f"{SELECT_REVIEW} WHERE {column} = %s", (value,))
    row = await cur.fetchone()
    return None if row is None else POSTGRES.review(row)


def _opt(t: dt.datetime | None) -> dt.datetime | None:
    return None if t is None else aware(t)
