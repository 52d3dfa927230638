"""Versioned schema migrations: numbered SQL files per dialect, applied in order, atomically.

Files live in ``migrations/<dialect>/NNNN_name.sql`` and are numbered 1..n without gaps. The
database records what it has applied in ``schema_migrations``; a database whose version is
newer than the files this build knows is refused rather than guessed at.
"""

from __future__ import annotations

import importlib.resources
import sqlite3
from collections.abc import Iterator

from signoff.core.audit import format_time
from signoff.errors import FailedPrecondition
from signoff.ids import Clock


def load(dialect: str) -> list[tuple[int, str, str]]:
    """Return the packaged migrations of `dialect` as (version, file name, SQL), in order."""
    root = importlib.resources.files(__name__).joinpath(dialect)
    found = sorted(
        (int(f.name.split("_", 1)[0]), f.name, f.read_text(encoding="utf-8"))
        for f in root.iterdir()
        if f.name.endswith(".sql")
    )
    for expected, (version, name, _) in enumerate(found, start=1):
        if version != expected:
            raise RuntimeError(f"migration {dialect}/{name}: expected number {expected:04d}")
    return found


def migrate_sqlite(conn: sqlite3.Connection, clock: Clock) -> int:
    """Apply pending SQLite migrations in one transaction; return the schema version."""
    known = load("sqlite")
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        version = int(current.fetchone()[0])
        check_version(version, len(known))
        for number, name, sql in known[version:]:
            for statement in sqlite_statements(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (number, name, format_time(clock.now())),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return len(known)


def check_version(found: int, known: int) -> None:
    """Refuse a database whose schema is newer than this build's migrations."""
    if found > known:
        raise FailedPrecondition(
            f"database schema version {found} is newer than this signoff supports "
            f"({known}): upgrade signoff to open it",
            current_state=str(found),
        )


def sqlite_statements(sql: str) -> Iterator[str]:
    """Split a migration file into statements (trigger bodies stay whole)."""
    # executescript() would COMMIT first and break the migration's atomicity, so statements
    # run one by one; complete_statement() knows that a trigger body's ';' does not end it.
    buf = ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            yield buf
            buf = ""
    leftover = [ln for ln in buf.splitlines() if ln.strip() and not ln.strip().startswith("--")]
    if leftover:
        raise RuntimeError(f"migration ends with an incomplete statement: {leftover[0]!r}")
