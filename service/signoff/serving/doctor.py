"""`signoff doctor`'s checks: what would stop (or worry) a `signoff serve` with these settings.

Every check only reads: no migration runs, no key or database file is created. The checks
return rows; the command line renders them.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signoff.auth import AuthConfigError, build_authenticator
from signoff.core.audit import parse_time
from signoff.ids import Clock, SystemClock
from signoff.net import is_loopback
from signoff.policy import BundleError, load_bundle
from signoff.serving import tls
from signoff.serving.doctor_keys import Check, Status, signing_key_check, trusted_keys_check
from signoff.settings.model import Settings
from signoff.store import migrations

SKEW_WARN = dt.timedelta(seconds=1)
SKEW_FAIL = dt.timedelta(seconds=30)
CONNECT_TIMEOUT = 5


@dataclass
class _Db:
    """What the database check found, for the checks that follow it."""

    reachable: bool = False
    fresh: bool = False  # no database yet: the first start creates it
    skew: dt.timedelta | None = None  # our clock minus the database server's (PostgreSQL)
    last_audit: dt.datetime | None = None
    entries: int = 0
    checkpoint: tuple[int, str] | None = None  # the newest: (seq, key id)


async def run_checks(settings: Settings, clock: Clock | None = None) -> list[Check]:
    """Every check for `settings`, in the order an operator would fix them."""
    clock = clock or SystemClock()
    rows = [policies_check(settings)]
    db = _Db()
    rows.append(await database_check(settings, db, clock))
    rows.append(audit_check(db))
    auth_row, dev_mode = auth_check(settings)
    rows.append(auth_row)
    rows.append(tls_check(settings, clock.now()))
    rows.append(signing_key_check(settings, dev_mode))
    rows.append(trusted_keys_check(settings, db.checkpoint))
    rows += listen_checks(settings)
    rows += clock_checks(settings, db, clock.now())
    return rows


def policies_check(settings: Settings) -> Check:
    """The policy directory loads, as `signoff policy check` would say."""
    try:
        bundle = load_bundle(settings.policies)
    except BundleError as exc:
        shown = "; ".join(str(e) for e in exc.errors[:3])
        more = f" (and {len(exc.errors) - 3} more)" if len(exc.errors) > 3 else ""
        named = exc.errors[0].file == str(settings.policies)  # the directory itself
        where = "" if named else f"{settings.policies}: "
        return Check("policies", "fail", f"{where}{shown}{more}")
    detail = (
        f"{settings.policies}: {len(bundle.policies)} policies, {bundle.rule_count} rules, "
        f"version {_short(bundle.version)}"
    )
    if bundle.warnings:
        return Check(
            "policies",
            "warn",
            f"{detail}; {len(bundle.warnings)} warning(s): " + "; ".join(bundle.warnings[:2]),
        )
    return Check("policies", "ok", detail)


async def database_check(settings: Settings, db: _Db, clock: Clock) -> Check:
    """The database is reachable and its schema is this build's (or only behind it)."""
    if settings.is_postgres:
        return await _postgres(settings, db, clock)
    return _sqlite(settings.sqlite_path, db)


def _sqlite(path: Path, db: _Db) -> Check:
    if not path.exists():
        parent = _existing_parent(path)
        if not os.access(parent, os.W_OK | os.X_OK):
            return Check("database", "fail", f"{path}: missing, and {parent} is not writable")
        db.fresh = True
        return Check("database", "ok", f"{path}: does not exist yet; created on first start")
    if not os.access(path, os.R_OK | os.W_OK) or not os.access(path.parent, os.W_OK):
        return Check(
            "database",
            "fail",
            f"{path}: not writable (the file and its directory must be, for the write-ahead log)",
        )
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return Check("database", "fail", f"{path}: cannot open: {exc}")
    try:
        conn.execute("PRAGMA query_only = ON")
        has_table = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'schema_migrations'"
        ).fetchone()[0]
        version = 0
        if has_table:
            version = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
            version = int(version.fetchone()[0])
        if version:
            seq, time = conn.execute(
                "SELECT coalesce(max(seq), 0), (SELECT time FROM audit ORDER BY seq DESC LIMIT 1)"
                " FROM audit"
            ).fetchone()
            db.entries, db.last_audit = int(seq), parse_time(time) if time else None
            has_checkpoints = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'checkpoints'"
            ).fetchone()[0]
            if has_checkpoints:
                row = conn.execute(
                    "SELECT seq, key_id FROM checkpoints ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                db.checkpoint = (int(row[0]), str(row[1])) if row else None
    except sqlite3.Error as exc:
        return Check("database", "fail", f"{path}: not a signoff database: {exc}")
    finally:
        conn.close()
    db.reachable = True
    return _schema(str(path), version, len(migrations.load("sqlite")))


async def _postgres(settings: Settings, db: _Db, clock: Clock) -> Check:
    import psycopg

    where = settings.db.split("@")[-1]
    try:
        conn = await psycopg.AsyncConnection.connect(
            settings.db, autocommit=True, connect_timeout=CONNECT_TIMEOUT
        )
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Check("database", "fail", f"{where}: cannot connect: {first}")
    try:
        async with conn:
            await conn.execute("SET default_transaction_read_only = on")
            # Our time halfway through the round trip is what the server's now() is compared to.
            sent = clock.now()
            cur = await conn.execute(
                "SELECT clock_timestamp(), to_regclass('schema_migrations') IS NOT NULL"
            )
            row: Any = await cur.fetchone()
            received = clock.now()
            db.skew = sent + (received - sent) / 2 - row[0]
            has_table = row[1]
            version = 0
            if has_table:
                cur = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
                version = int((await cur.fetchone() or (0,))[0])
            if version:
                cur = await conn.execute(
                    "SELECT coalesce(max(seq), 0),"
                    " (SELECT time FROM audit ORDER BY seq DESC LIMIT 1) FROM audit"
                )
                row = await cur.fetchone()
                db.entries, db.last_audit = int(row[0]), row[1]
                cur = await conn.execute(
                    "SELECT seq, key_id FROM checkpoints ORDER BY seq DESC LIMIT 1"
                )
                row = await cur.fetchone()
                db.checkpoint = (int(row[0]), str(row[1])) if row else None
    except psycopg.Error as exc:
        return Check("database", "fail", f"{where}: {str(exc).strip().splitlines()[0]}")
    db.reachable = True
    return _schema(where, version, len(migrations.load("postgres")))


def _schema(where: str, version: int, known: int) -> Check:
    if version > known:
        return Check(
            "database",
            "fail",
            f"{where}: schema version {version} is newer than this "
            f"signoff supports ({known}): upgrade signoff",
        )
    if version < known:
        pending = known - version
        return Check(
            "database",
            "warn",
            f"{where}: schema version {version}, {pending} "
            "migration(s) pending: applied on start, or run `signoff db migrate`",
        )
    return Check("database", "ok", f"{where}: reachable, schema version {version} (current)")


def audit_check(db: _Db) -> Check:
    """The audit chain's head is readable."""
    if db.fresh:
        return Check("audit log", "ok", "none yet (new database)")
    if not db.reachable:
        return Check("audit log", "warn", "not checked: no database")
    if not db.entries:
        return Check("audit log", "ok", "empty")
    when = db.last_audit.isoformat(timespec="seconds") if db.last_audit else "?"
    return Check("audit log", "ok", f"head at seq {db.entries}, written {when}")


def auth_check(settings: Settings) -> tuple[Check, bool]:
    """The authentication config loads; dev mode (none) is a warning, or a failure where the
    server would refuse it (an address beyond loopback). Returns the row and dev mode."""
    try:
        configured = build_authenticator(settings.auth)
    except AuthConfigError as exc:
        return Check("auth", "fail", str(exc).replace("\n", "; ")), False
    if configured is not None:
        kinds = [
            k
            for k, v in (
                ("tokens file", settings.auth.tokens_file),
                ("JWT", settings.auth.jwt),
                ("client certificates", settings.auth.mtls),
            )
            if v is not None
        ]
        if settings.auth.trust_principal_claims:
            return Check(
                "auth",
                "warn",
                " and ".join(kinds) + " configured, but auth.trust_principal_claims is on:"
                " policies read what agents say about themselves (tags, roles, on_behalf_of)"
                " as fact; vouch for them in the tokens file's `principals` instead",
            ), False
        return Check("auth", "ok", " and ".join(kinds) + " configured"), False
    for key, address, host in (
        ("listen", settings.listen, settings.listen_host),
        ("http_listen", settings.http_listen, settings.http_listen_host),
    ):
        if address and not is_loopback(host):
            return Check(
                "auth",
                "fail",
                f"no authentication configured (dev mode) and {key} "
                f"{address} is beyond loopback: the server refuses to start; "
                "set auth.tokens_file or auth.jwt",
            ), True
    return Check(
        "auth",
        "warn",
        "no authentication configured: dev mode, loopback only, every caller may act as anyone",
    ), True


def tls_check(settings: Settings, now: dt.datetime) -> Check:
    """The TLS files check out as at start-up; expiring soon, or plaintext beyond loopback
    with authentication on (tokens in the clear), is a warning."""
    s = settings.tls
    try:
        if settings.auth.mtls is not None and not s.mutual:
            tls.certificate_files(s, mtls_identities=True)  # raises, naming what is missing
        material = tls.load_material(s, now) if s.enabled else None
    except tls.TlsError as exc:
        return Check("tls", "fail", str(exc))
    if material is None:
        exposed = [
            key
            for key, address, host in (
                ("listen", settings.listen, settings.listen_host),
                ("http_listen", settings.http_listen, settings.http_listen_host),
            )
            if address and not is_loopback(host)
        ]
        if exposed and (settings.auth.tokens_file or settings.auth.jwt):
            return Check(
                "tls",
                "warn",
                f"off: {', '.join(exposed)} beyond loopback, tokens in the clear (unless a proxy "
                "terminates TLS)",
            )
        return Check("tls", "ok", "off")
    until = material.not_after.strftime("%Y-%m-%d")
    detail = (
        f"{material.subject}, valid until {until}; client_auth {s.client_auth}; "
        f"HTTP port {'TLS' if s.http else 'plain'}"
    )
    if material.not_after - now < dt.timedelta(days=s.expiry_warning_days):
        return Check("tls", "warn", f"{detail}: expires in less than {s.expiry_warning_days} days")
    return Check("tls", "ok", detail)


def listen_checks(settings: Settings) -> list[Check]:
    """Each listen address can be bound (a port in use is a warning: maybe ours, running)."""
    rows = []
    for name, address in (("listen", settings.listen), ("http_listen", settings.http_listen)):
        if not address:
            rows.append(Check(name, "ok", "off"))
            continue
        host, _, port = address.rpartition(":")
        rows.append(_bind(name, host.strip("[]"), int(port), address))
    return rows


def _bind(name: str, host: str, port: int, address: str) -> Check:
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return Check(name, "fail", f"{address}: cannot resolve: {exc}")
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as s:
        try:
            s.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return Check(name, "warn", f"{address}: port in use (a server running already?)")
            return Check(name, "fail", f"{address}: cannot listen: {exc.strerror}")
    return Check(name, "ok", f"{address}: free")


def clock_checks(settings: Settings, db: _Db, now: dt.datetime) -> list[Check]:
    """The clock agrees with the database server and is not behind the audit log."""
    rows = []
    if db.skew is not None:
        size = abs(db.skew)
        side = "ahead of" if db.skew >= dt.timedelta(0) else "behind"
        detail = f"{_ms(db.skew)} {side} the database server's clock"
        status: Status = "fail" if size > SKEW_FAIL else "warn" if size > SKEW_WARN else "ok"
        rows.append(Check("clock", status, detail))
    elif not settings.is_postgres:
        rows.append(Check("clock", "ok", "SQLite: no database server clock to compare with"))
    if db.last_audit is not None:
        behind = db.last_audit - now
        if behind > dt.timedelta(0):
            rows.append(
                Check(
                    "clock vs audit log",
                    "fail",
                    f"the clock is {_ms(behind)} "
                    "behind the newest audit entry: time went backwards, and new "
                    "entries would be dated before older ones",
                )
            )
        else:
            rows.append(Check("clock vs audit log", "ok", "after the newest audit entry"))
    return rows


def _ms(delta: dt.timedelta) -> str:
    ms = abs(delta.total_seconds()) * 1000
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.0f} s"


def _short(version: str) -> str:
    # sha256:<64 hex>+git:<sha>: the first 12 hex digits tell bundles apart well enough.
    digest, plus, rest = version.partition("+")
    return digest[:19] + plus + rest


def _existing_parent(path: Path) -> Path:
    parent = path.resolve().parent
    while not parent.exists():
        parent = parent.parent
    return parent
