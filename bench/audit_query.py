"""Audit queries over a 1,000,000-entry SQLite log: filtered first pages, a deep page, export.

The log is built directly on a connection (valid hash chain via signoff.core.audit.seal, big
executemany transactions, the writer bypassed) with a realistic mix: ~200 action names, three
outcomes, ~50 principals, ~20 reviewer groups, reviews for ~30% of decisions, a few matched
rules per decision, ten policy versions, and ~5% of entries committed a few ms out of time
order (concurrent requests). The build runs in a child process so that the peak RSS measured
here is the query side's. Then the real SqliteStore answers: median latency of each filter's
first page of 100 (ascending and descending), a deep cursor page, and a full export walk in
pages of 1,000 (entries/s, RSS along the way). The auditors' side index is built by the store
when it opens the log (timed: index_s), as for any log written before migration 0007.
Writes bench/results/audit_query.json.

    python bench/audit_query.py [--entries 1000000] [--db PATH (reused if it exists)] [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import os
import random
import resource
import sqlite3
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from common import median, write

from signoff.core.audit import GENESIS, AuditEntry, AuditRecord, seal, verify_chain
from signoff.ids import SystemClock
from signoff.store import AuditQuery, SqliteStore
from signoff.store.sqlite import audit as sqlite_audit

DOMAINS = [f"d{i:02}" for i in range(20)]
VERBS = ("read", "list", "create", "update", "delete", "issue", "void", "send", "grant", "sync")
ACTIONS = [f"{d}.{v}" for d in DOMAINS for v in VERBS]  # 200 names
PRINCIPALS = [f"agent-{i:02}" for i in range(50)]
GROUPS = [f"group-{i:02}" for i in range(20)]
REVIEWERS = [f"reviewer-{i:02}" for i in range(40)]
RESOLUTIONS = (
    ("review.approved", "APPROVED"),
    ("review.rejected", "REJECTED"),
    ("review.modified", "MODIFIED"),
    ("review.expired", "EXPIRED"),
)
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
STEP = dt.timedelta(seconds=2)  # ~23 days for 1,000,000 entries
BATCH = 50_000


def build(path: Path, entries: int, seed: int = 7) -> None:
    """Write an `entries`-long valid chain to a migrated database at `path`."""
    asyncio.run(_migrate(path))
    rnd = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # a bulk load: durability is not measured here
    seq, prev, high_water = 0, GENESIS, ""
    pending: deque[tuple[int, AuditRecord]] = deque()  # reviews waiting for a resolution
    decision_no = 0
    rows: list[tuple[Any, ...]] = []
    rules_rows: list[tuple[str, int]] = []
    late_rows: list[tuple[int, int]] = []

    def flush() -> None:
        conn.execute("BEGIN")
        conn.executemany(_INSERT, rows)
        conn.executemany("INSERT INTO audit_rules (rule, seq) VALUES (?, ?)", rules_rows)
        conn.executemany("INSERT INTO audit_time_regressions VALUES (?, ?)", late_rows)
        conn.execute("COMMIT")
        for buffer in (rows, rules_rows, late_rows):
            buffer.clear()

    while seq < entries:
        now = T0 + STEP * seq
        if rnd.random() < 0.05:  # committed after a request that started later
            now -= dt.timedelta(milliseconds=rnd.randint(1, 50))
        version = f"v{seq * 10 // entries}"
        if pending and (pending[0][0] <= seq or len(pending) > 5000):
            _, opened = pending.popleft()
            kind, state = rnd.choice(RESOLUTIONS)
            record = _derive(opened, kind, now, state, rnd.choice(REVIEWERS))
        elif seq % 100_000 == 0:
            record = AuditRecord(
                type="policy.loaded", time=now, actor="signoff", policy_version=version
            )
        else:
            decision_no += 1
            record = _decision(rnd, decision_no, now, version)
            if record.outcome == "REQUIRE_REVIEW":
                opened = _derive(record, "review.opened", now, "PENDING", "")
                pending.append((seq + rnd.randint(2, 2000), opened))
                # The decision and its review.opened entry commit together.
                for r in (record, opened):
                    seq, prev, high_water = _add(
                        r, seq, prev, high_water, rows, rules_rows, late_rows
                    )
                continue
        seq, prev, high_water = _add(record, seq, prev, high_water, rows, rules_rows, late_rows)
        if len(rows) >= BATCH:
            flush()
    flush()
    conn.close()


_INSERT = f"INSERT INTO audit ({sqlite_audit.AUDIT_COLUMNS}) VALUES ({', '.join('?' * 18)})"


async def _migrate(path: Path) -> None:
    store = SqliteStore(path, SystemClock())
    await store.open()
    await store.close()


def _add(
    record: AuditRecord,
    seq: int,
    prev: str,
    high_water: str,
    rows: list[tuple[Any, ...]],
    rules_rows: list[tuple[str, int]],
    late_rows: list[tuple[int, int]],
) -> tuple[int, str, str]:
    entry = seal(record, seq=seq + 1, prev_hash=prev)
    row = sqlite_audit.audit_row(entry)
    rows.append(row)
    rules_rows.extend((rule, entry.seq) for rule in entry.rules)
    if row[1] < high_water:  # the same bookkeeping as the store's writer
        lag = dt.datetime.strptime(high_water, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
        late_rows.append((entry.seq, (lag - entry.time) // dt.timedelta(microseconds=1)))
    else:
        high_water = row[1]
    return entry.seq, entry.hash, high_water


def _decision(rnd: random.Random, n: int, now: dt.datetime, version: str) -> AuditRecord:
    action = rnd.choice(ACTIONS)
    r = rnd.random()
    outcome = "AUTO_ALLOW" if r < 0.6 else "REQUIRE_REVIEW" if r < 0.9 else "DENY"
    # Two rules of the action's own and sometimes a shared one: ~400 rule names.
    rules = [f"{action}-r{rnd.randint(0, 1)}", f"{action.split('.')[0]}-guard"]
    if rnd.random() < 0.3:
        rules.append(f"global-{rnd.randint(0, 9)}")
    principal = rnd.choice(PRINCIPALS)
    return AuditRecord(
        type="decision",
        time=now,
        actor=principal,
        request_id=f"req-{n:08}",
        decision_id=f"dec-{n:08}",
        review_id=f"rev-{n:08}" if outcome == "REQUIRE_REVIEW" else "",
        action_name=action,
        outcome=outcome,
        principal=principal,
        reviewer_group=GROUPS[ACTIONS.index(action) % len(GROUPS)]
        if outcome == "REQUIRE_REVIEW"
        else "",
        rules=tuple(rules),
        policy_version=version,
        payload={"params": {"amount": rnd.randint(1, 10_000), "order": f"o-{n}"}},
    )


def _derive(
    src: AuditRecord, kind: str, now: dt.datetime, state: str, reviewer: str
) -> AuditRecord:
    return AuditRecord(
        type=kind,
        time=now,
        actor=reviewer or src.principal,
        request_id=src.request_id,
        decision_id=src.decision_id,
        review_id=src.review_id,
        action_name=src.action_name,
        outcome=src.outcome,
        principal=src.principal,
        reviewer=reviewer,
        reviewer_group=src.reviewer_group,
        review_state=state,
        rules=src.rules,
        policy_version=src.policy_version,
        payload={"comment": "ok"} if reviewer else {},
    )


def queries(mid: dt.datetime, head: dt.datetime, review: AuditEntry) -> dict[str, AuditQuery]:
    """The filters measured, each alone, then common combinations."""
    day = dt.timedelta(days=1)
    return {
        "none": AuditQuery(),
        "type=decision": AuditQuery(types=("decision",)),
        "types=approved|rejected": AuditQuery(types=("review.approved", "review.rejected")),
        "action=d07.delete": AuditQuery(action_glob="d07.delete"),
        "action=d07.* (10 names)": AuditQuery(action_glob="d07.*"),
        "action=*.delete (20 names)": AuditQuery(action_glob="*.delete"),
        "action=d1* (100 names)": AuditQuery(action_glob="d1*"),
        "outcome=DENY": AuditQuery(outcomes=("DENY",)),
        "outcome=DENY|REQUIRE_REVIEW": AuditQuery(outcomes=("DENY", "REQUIRE_REVIEW")),
        "principal": AuditQuery(principal="agent-17"),
        "reviewer": AuditQuery(reviewer="reviewer-03"),
        "reviewer_group": AuditQuery(reviewer_group="group-05"),
        "rule": AuditQuery(rule="d03.issue-r1"),
        "rule (shared)": AuditQuery(rule="global-4"),
        "review_state=APPROVED": AuditQuery(review_state="APPROVED"),
        "policy_version=v5": AuditQuery(policy_version="v5"),
        "decision_id": AuditQuery(decision_id=review.decision_id),
        "review_id": AuditQuery(review_id=review.review_id),
        "request_id": AuditQuery(request_id=review.request_id),
        "time: one day mid-log": AuditQuery(since=mid, until=mid + day),
        "time: last hour": AuditQuery(since=head - dt.timedelta(hours=1)),
        "principal+outcome=DENY": AuditQuery(principal="agent-17", outcomes=("DENY",)),
        "group+type=approved": AuditQuery(reviewer_group="group-05", types=("review.approved",)),
        "action d07.*+DENY+day": AuditQuery(
            action_glob="d07.*", outcomes=("DENY",), since=mid, until=mid + day
        ),
        "rule+principal": AuditQuery(rule="d03.issue-r1", principal="agent-17"),
        "principal+action (sparse)": AuditQuery(principal="agent-17", action_glob="d07.delete"),
        "reviewer+state=REJECTED+v5": AuditQuery(
            reviewer="reviewer-03", review_state="REJECTED", policy_version="v5"
        ),
        "principal (no match)+DENY": AuditQuery(principal="nobody", outcomes=("DENY",)),
    }


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB."""
    with open("/proc/self/statm") as f:
        current = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def timed(store: SqliteStore, q: AuditQuery, runs: int, **kw: Any) -> tuple[float, int]:
    """Median milliseconds of one page, and its size."""
    times, size = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        size = len(await store.query_audit(q, **kw))
        times.append((time.perf_counter() - start) * 1000)
    return median(times), size


async def measure(path: Path, runs: int) -> dict[str, Any]:
    """Run every measurement against the database at `path` with the real store."""
    store = SqliteStore(path, SystemClock())
    await store.open()
    # The build bypassed the writer: the side index (migration 0007) is built now, as the
    # store does for a log written before it, and waited for so that no tail is scanned.
    start = time.perf_counter()
    await store.index_audit()
    index_s = time.perf_counter() - start
    print(f"side index built in {index_s:.1f} s")
    head_seq, _ = await store.audit_head()
    [first] = await store.read_audit(1, 1)
    [last] = await store.read_audit(head_seq, 1)
    mid = first.time + (last.time - first.time) / 2
    # Ids of a review opened a third of the way in: its decision, opening and resolution.
    [review] = await store.query_audit(
        AuditQuery(types=("review.opened",), from_seq=head_seq // 3), limit=1
    )
    rows = []
    print(f"{'query (first page of 100)':32} {'asc ms':>8} {'desc ms':>8} {'rows':>5}")
    for name, q in queries(mid, last.time, review).items():
        asc, n = await timed(store, q, runs)
        desc, _ = await timed(store, q, runs, descending=True)
        rows.append({"query": name, "asc_ms": round(asc, 2), "desc_ms": round(desc, 2), "rows": n})
        print(f"{name:32} {asc:8.2f} {desc:8.2f} {n:5}")
    deep = {}
    for name, q in (("none", AuditQuery()), ("principal", AuditQuery(principal="agent-17"))):
        after = head_seq // 2
        asc, _ = await timed(store, q, runs, after_seq=after)
        desc, _ = await timed(store, q, runs, after_seq=after, descending=True)
        deep[name] = {"after_seq": after, "asc_ms": round(asc, 2), "desc_ms": round(desc, 2)}
        print(f"deep page after seq {after:,} ({name}): asc {asc:.2f} ms, desc {desc:.2f} ms")
    export = await export_walk(store, AuditQuery(), head_seq)
    filtered = await export_walk(store, AuditQuery(outcomes=("DENY",)), head_seq)
    await store.close()
    return {
        "head_seq": head_seq,
        "index_s": round(index_s, 1),
        "queries": rows,
        "deep_page": deep,
        "export": export,
        "export_deny": filtered,
    }


async def export_walk(store: SqliteStore, q: AuditQuery, head_seq: int) -> dict[str, Any]:
    """Walk every matching entry in pages of 1,000, verifying the chain when unfiltered."""
    before = rss_mib()
    samples = []
    count, after, tail = 0, None, None
    start = time.perf_counter()
    while page := await store.query_audit(q, after_seq=after, limit=1000):
        if q == AuditQuery():  # an export is verified as it streams; the chain continues
            result = verify_chain(page, *(tail or (GENESIS, 1)))
            assert result.ok, result
            tail = (page[-1].hash, page[-1].seq + 1)
        count += len(page)
        after = page[-1].seq
        if count // 1000 % 100 == 0:
            samples.append({"entries": count, "rss_mib": round(rss_mib()[0], 1)})
    elapsed = time.perf_counter() - start
    current, peak = rss_mib()
    out = {
        "filter": "none (verified)" if q == AuditQuery() else "outcome=DENY",
        "entries": count,
        "seconds": round(elapsed, 2),
        "entries_per_s": round(count / elapsed),
        "rss_mib_before": round(before[0], 1),
        "rss_mib_after": round(current, 1),
        "peak_rss_mib_before": round(before[1], 1),
        "peak_rss_mib_after": round(peak, 1),
        "rss_samples": samples,
    }
    print(
        f"export {out['filter']}: {count:,} entries in {elapsed:.1f} s = "
        f"{out['entries_per_s']:,}/s; RSS {before[0]:.0f} -> {current:.0f} MiB, "
        f"peak {before[1]:.0f} -> {peak:.0f} MiB"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "audit.db"
        build_s = 0.0
        if not path.exists():
            start = time.perf_counter()
            child = multiprocessing.get_context("spawn").Process(
                target=build, args=(path, args.entries)
            )
            child.start()
            child.join()
            if child.exitcode != 0:
                raise SystemExit(f"build failed with exit code {child.exitcode}")
            build_s = time.perf_counter() - start
            print(f"built {args.entries:,} entries in {build_s:.0f} s")
        size_mib = sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20
        results = asyncio.run(measure(path, args.runs))
    out = write(
        "audit_query",
        {
            "entries": results.pop("head_seq"),
            "build_s": round(build_s, 1) if build_s else None,  # None: --db was reused
            "db_mib": round(size_mib, 1),
            "sqlite": sqlite3.sqlite_version,
            "runs_per_median": args.runs,
            **results,
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
