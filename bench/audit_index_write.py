"""What a decision's commit costs with the auditors' per-column indexes (migrations 0001 and
0003, up to 0006) and with the side index built in bulk (0007): WAL pages written and µs.

In process, one SQLite file per variant, both prefilled with PREFILL entries of the audit
query bench's mix (bench/audit_query.py: ~200 actions, 50 principals, random ids), then
measured alternately in blocks of BLOCK commits, ROUNDS times, so that a noisy minute of a
shared machine hits both alike. A commit is what the writer does for one decision alone:
BEGIN IMMEDIATE, the chain head and high-water reads, the decision row, its audit entry and
rule rows (and the review.opened entry of a REQUIRE_REVIEW), COMMIT -- synchronous=OFF, so
that µs is CPU and page writes, not the fsync (one per commit in both). Pages are WAL frames
appended by the commit (autocheckpoint off while measuring). For the side index, the bulk
step that indexes every INDEX_EVERY entries (the store's default) is measured too, and
reported per decision (amortized) beside the commit. The third variant (0008) adds the
audit log's Merkle tree: its commit is the side index's (the tree is off the commit path),
and its bulk step every TREE_EVERY entries -- reading the tree's right edge and the new
entries, hashing their canonical bytes, writing the rows (store/tree.py) -- is reported per
decision too: in the store the reading and hashing run off the writer's thread, only the
write on it (tree_write_us), all of it here on one thread; as in the store, the step takes
the entries the writer appended instead of decoding their rows.

    python bench/audit_index_write.py   # BENCH_PREFILL=100000 BENCH_ROUNDS=10
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from audit_query import STEP, T0, _decision, _derive
from common import write

from signoff.core.audit import GENESIS, AuditEntry, AuditRecord, seal
from signoff.store import migrations
from signoff.store.sqlite import audit as audit_sql
from signoff.store.sqlite import audit_index
from signoff.store.sqlite import tree as tree_sql
from signoff.store.sqlite.indexer import INDEX_EVERY
from signoff.store.tree import TREE_EVERY, grow

PREFILL = int(os.environ.get("BENCH_PREFILL", "100000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "10"))
BLOCK = 200
_DECISION = "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


class Variant:
    """One database and its writer-side state."""

    def __init__(self, name: str, path: Path, upto: int) -> None:
        self.name, self.side, self.tree = name, upto >= 7, upto >= 8
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = OFF")
        self.conn.execute("PRAGMA temp_store = MEMORY")
        self.conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, at TEXT)"
        )
        for number, file, sql in migrations.load("sqlite")[:upto]:
            for statement in migrations.sqlite_statements(sql):
                self.conn.execute(statement)
            self.conn.execute("INSERT INTO schema_migrations VALUES (?, ?, '')", (number, file))
        self.wal = path.with_name(path.name + "-wal")
        self.page = int(self.conn.execute("PRAGMA page_size").fetchone()[0])
        self.head: tuple[int, str] = (0, GENESIS)
        self.unindexed = 0
        self.commit_us: list[float] = []
        self.commit_pages: list[float] = []
        self.step_us = 0.0
        self.step_pages = 0.0
        self.step_entries = 0
        self.untreed = 0
        self.recent: dict[int, AuditEntry] = {}
        self.tree_us = 0.0
        self.tree_write_us = 0.0
        self.tree_pages = 0.0

    def frames(self) -> float:
        """WAL frames so far."""
        return os.path.getsize(self.wal) / (self.page + 24) if self.wal.exists() else 0.0

    def high_water(self) -> str:
        """The writer's high-water read of this schema."""
        if self.side:
            return audit_sql.high_water(self.conn)
        return str(self.conn.execute("SELECT coalesce(max(time), '') FROM audit").fetchone()[0])

    def commit(self, records: list[AuditRecord], measured: bool) -> None:
        """One decision's transaction (and, for the side index, a step when it is due)."""
        before, start = self.frames(), time.perf_counter()
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        self.head = audit_sql.read_head(conn)
        high_water = self.high_water()
        d = records[0]
        conn.execute(
            _DECISION,
            (d.decision_id, d.principal, d.request_id, "0" * 64, d.action_name, d.outcome,
             d.time.isoformat(), b"x" * 300),
        )  # fmt: skip
        for record in records:
            entry = seal(record, seq=self.head[0] + 1, prev_hash=self.head[1])
            high_water = audit_sql.insert(conn, entry, self.head, high_water)
            self.head = (entry.seq, entry.hash)
            if self.tree:
                self.recent[entry.seq] = entry  # as the store's writer hands them over
        conn.execute("COMMIT")
        if measured:
            self.commit_us.append((time.perf_counter() - start) * 1e6)
            self.commit_pages.append(self.frames() - before)
        self.unindexed += len(records)
        if self.side and self.unindexed >= INDEX_EVERY:
            before, start = self.frames(), time.perf_counter()
            audit_index.step(conn, 10**9)
            if measured:
                self.step_us += (time.perf_counter() - start) * 1e6
                self.step_pages += self.frames() - before
                self.step_entries += self.unindexed
            self.unindexed = 0
        self.untreed += len(records)
        if self.tree and self.untreed >= TREE_EVERY:
            before, start = self.frames(), time.perf_counter()
            write_us = tree_step(conn, self.recent)
            self.recent.clear()
            if measured:
                self.tree_us += (time.perf_counter() - start) * 1e6
                self.tree_write_us += write_us
                self.tree_pages += self.frames() - before
            self.untreed = 0


def tree_step(conn: sqlite3.Connection, recent: dict[int, AuditEntry] | None = None) -> float:
    """Build the tree up to the head as the store's step does (with the entries the writer
    appended, when given); return the write's µs."""
    pending = tree_sql.pending(conn, 10**9, recent)
    rows, _ = grow(pending)
    start = time.perf_counter()
    tree_sql.write(conn, pending.size, pending.size + len(rows), rows)
    return (time.perf_counter() - start) * 1e6


def decisions(rnd: random.Random, start: int, n: int) -> list[list[AuditRecord]]:
    """`n` decisions' records (a REQUIRE_REVIEW one opens a review in its transaction)."""
    out = []
    for i in range(start, start + n):
        now = T0 + STEP * i
        record = _decision(rnd, i, now, f"v{i * 10 // (PREFILL * 2)}")
        if record.outcome == "REQUIRE_REVIEW":
            out.append([record, _derive(record, "review.opened", now, "PENDING", "")])
        else:
            out.append([record])
    return out


def prefill(v: Variant, rnd: random.Random) -> None:
    """PREFILL entries in big transactions, the side index built, the WAL emptied."""
    n = 0
    while n < PREFILL:
        v.conn.execute("BEGIN")
        for records in decisions(rnd, n, 5000):
            high_water = v.high_water()
            for record in records:
                entry = seal(record, seq=v.head[0] + 1, prev_hash=v.head[1])
                audit_sql.insert(v.conn, entry, v.head, high_water)
                v.head = (entry.seq, entry.hash)
        v.conn.execute("COMMIT")
        n += 5000
    if v.side:
        audit_index.step(v.conn, 10**9)
    if v.tree:
        tree_step(v.conn)
    v.conn.execute("PRAGMA wal_autocheckpoint = 0")
    v.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def summary(v: Variant) -> dict[str, Any]:
    """Medians per commit and, for the side index, its steps amortized per decision."""
    per = max(len(v.commit_us), 1)
    return {
        "variant": v.name,
        "commits": len(v.commit_us),
        "us_per_commit": round(statistics.median(v.commit_us), 1),
        "pages_per_commit": round(statistics.median(v.commit_pages), 1),
        "pages_per_commit_mean": round(statistics.fmean(v.commit_pages), 2),
        "index_step_us_per_decision": round(v.step_us / per, 1),
        "index_step_pages_per_decision": round(v.step_pages / per, 2),
        "tree_step_us_per_decision": round(v.tree_us / per, 1),
        "tree_write_us_per_decision": round(v.tree_write_us / per, 1),
        "tree_step_pages_per_decision": round(v.tree_pages / per, 2),
    }


def main() -> int:
    """Measure both variants alternately and write results/audit_index_write.json."""
    with tempfile.TemporaryDirectory() as tmp:
        variants = [Variant("per-column indexes (0006)", Path(tmp) / "old.db", 6)]
        variants.append(Variant("side index (0007)", Path(tmp) / "new.db", 7))
        variants.append(Variant("side index + tree (0008)", Path(tmp) / "tree.db", 8))
        for v in variants:
            start = time.perf_counter()
            prefill(v, random.Random(7))
            print(f"{v.name}: prefilled {PREFILL:,} in {time.perf_counter() - start:.0f} s")
        n = PREFILL
        for rnd_no in range(ROUNDS + 1):
            batch = decisions(random.Random(rnd_no), n, BLOCK)
            n += BLOCK
            for v in variants:  # the same decisions, alternately
                for records in batch:
                    v.commit(records, measured=rnd_no > 0)  # round 0 warms up
        rows = [summary(v) for v in variants]
        for v in variants:
            v.conn.close()
    for r in rows:
        print(
            f"{r['variant']:<28} {r['us_per_commit']:7.1f} µs/commit "
            f"{r['pages_per_commit']:5.1f} pages/commit (mean {r['pages_per_commit_mean']}); "
            f"index steps {r['index_step_us_per_decision']} µs, "
            f"{r['index_step_pages_per_decision']} pages per decision; tree steps "
            f"{r['tree_step_us_per_decision']} µs (write {r['tree_write_us_per_decision']}), "
            f"{r['tree_step_pages_per_decision']} pages per decision"
        )
    out = {
        "prefill": PREFILL,
        "rounds": ROUNDS,
        "block": BLOCK,
        "index_every": INDEX_EVERY,
        "tree_every": TREE_EVERY,
    }
    print(f"wrote {write('audit_index_write', {**out, 'rows': rows})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
