"""The cost of one audit entry's INSERT in SQLite: with and without the per-row chain trigger
(dropped by migration 0006), with temp_store FILE (SQLite's default) and MEMORY.

In process, on the schema this tree migrates to, entries sealed beforehand (the hash is not
what is measured): each sample inserts BATCH entries with their rule rows in one
transaction through the writer's own `insert`, synchronous=OFF so that no fsync hides the
difference. Median µs per entry over ROUNDS samples; each variant on a fresh database of
PREFILL entries, in turn.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import write

from signoff.core.audit import GENESIS, AuditRecord, seal
from signoff.ids import SystemClock
from signoff.store.migrations import migrate_sqlite
from signoff.store.sqlite import audit as audit_sql

PREFILL = int(os.environ.get("BENCH_PREFILL", "20000"))
BATCH = 50
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "40"))
# The trigger of migration 0001, as it was.
CHAIN_TRIGGER = """CREATE TRIGGER audit_chain_insert BEFORE INSERT ON audit
WHEN NEW.seq <> coalesce((SELECT max(seq) FROM audit), 0) + 1
  OR NEW.prev_hash <> coalesce(
        (SELECT hash FROM audit ORDER BY seq DESC LIMIT 1),
        '0000000000000000000000000000000000000000000000000000000000000000')
BEGIN
    SELECT RAISE(ABORT, 'audit log: entry does not extend the chain head');
END"""
T0 = dt.datetime(2026, 12, 4, 12, tzinfo=dt.UTC)


def record(i: int) -> AuditRecord:
    """A decision entry shaped like the server's (rules, a request and a decision)."""
    return AuditRecord(
        type="decision",
        time=T0 + dt.timedelta(milliseconds=i),
        actor="bench-bot",
        request_id=f"req-{i}",
        decision_id=f"dec-{i:012d}",
        action_name="refund.issue",
        outcome="REQUIRE_REVIEW",
        principal="bench-bot",
        reviewer_group="finance",
        rules=("large-refund", "eu-currency"),
        policy_version="v1-0123456789ab",
        payload={
            "request": {"action": {"name": "refund.issue", "params": {"amount": 750}}},
            "decision": {"outcome": "REQUIRE_REVIEW", "decision_id": f"dec-{i:012d}"},
            "decided_by": "rule large-refund (policies/refunds.yaml:12)",
            "shadow": [],
        },
    )


def chain(n: int, head: tuple[int, str]) -> list:
    """`n` entries sealed after `head`."""
    seq, prev = head
    out = []
    for i in range(n):
        entry = seal(record(seq + i), seq=seq + i + 1, prev_hash=prev)
        out.append(entry)
        prev = entry.hash
    return out


def measure(trigger: bool, temp_store: str) -> float:
    """Median µs per entry inserted, for one variant on a fresh database."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "bench.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute(f"PRAGMA temp_store = {temp_store}")
        migrate_sqlite(conn, SystemClock())
        if trigger:
            conn.execute(CHAIN_TRIGGER)
        head: tuple[int, str] = (0, GENESIS)
        high_water = ""
        samples = []
        for rnd in range(PREFILL // BATCH + ROUNDS):
            entries = chain(BATCH, head)
            t = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            for e in entries:
                high_water = audit_sql.insert(conn, e, head, high_water)
                head = (e.seq, e.hash)
            conn.execute("COMMIT")
            if rnd >= PREFILL // BATCH:
                samples.append((time.perf_counter() - t) / BATCH * 1e6)
        conn.close()
        return statistics.median(samples)


def main() -> int:
    """Measure the four variants and write results/audit_insert.json."""
    rows = []
    for trigger in (True, False):
        for temp_store in ("FILE", "MEMORY"):
            us = measure(trigger, temp_store)
            rows.append(
                {"trigger": trigger, "temp_store": temp_store, "us_per_entry": round(us, 1)}
            )
            print(f"trigger={trigger!s:<5} temp_store={temp_store:<6} {us:6.1f} µs / entry")
    print(f"wrote {write('audit_insert', {'rows': rows, 'prefill': PREFILL, 'batch': BATCH})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
