"""Builders for audit query tests: a varied log, and a reference filter to check pages against."""

from __future__ import annotations

import datetime as dt
import re

from signoff.core.audit import AuditEntry, AuditRecord
from signoff.store import AuditQuery

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
US = dt.timedelta(microseconds=1)


def at_minutes(minutes: float) -> dt.datetime:
    """T0 plus `minutes`."""
    return T0 + dt.timedelta(minutes=minutes)


ACTIONS = ("refund.issue", "refund.void", "db.migrate", "db.migrate.prod", "email.send")
TYPES = ("decision", "review.opened", "review.approved", "review.rejected", "policy.loaded")
OUTCOMES = ("AUTO_ALLOW", "REQUIRE_REVIEW", "DENY")
# Entries whose time is earlier than an earlier entry's: n -> minutes after T0. Everything
# else is at n minutes. 10 and 11 lag by 5 minutes (out-of-order commits); 30 by 28 (a
# clock stepped back); 31 lags entry 29 by one microsecond.
LAGGING = {10: at_minutes(5), 11: at_minutes(6), 30: at_minutes(2), 31: at_minutes(29) - US}


def record(n: int, *, time: dt.datetime | None = None) -> AuditRecord:
    """Entry number `n` of the catalogue: every field varies with n, deterministically."""
    kind = TYPES[n % len(TYPES)]
    review = kind.startswith("review.")
    return AuditRecord(
        type=kind,
        time=time or LAGGING.get(n, at_minutes(n)),
        actor=f"agent-{n % 3}",
        request_id=f"req-{n // 2}",
        decision_id=f"dec-{n // 2}" if kind != "policy.loaded" else "",
        review_id=f"rev-{n // 3}" if review else "",
        action_name=ACTIONS[n % len(ACTIONS)] if kind != "policy.loaded" else "",
        outcome=OUTCOMES[n % 3] if kind == "decision" else "",
        principal=f"agent-{n % 3}",
        reviewer=("alice", "bob")[n % 2] if review else "",
        reviewer_group=("finance", "ops")[n % 2] if review or kind == "decision" else "",
        review_state=("PENDING", "APPROVED", "REJECTED")[n % 3] if review else "",
        rules=(("small-refund",), ("vip", "small-refund"), (), ("vip",))[n % 4],
        policy_version="v1" if n < 20 else "v2",
        payload={"n": n},
    )


def glob_re(glob: str) -> re.Pattern[str]:
    """The reference meaning of an action glob: only '*' is special, it spans dots."""
    return re.compile(".*".join(re.escape(p) for p in glob.split("*")), re.DOTALL)


def matches(e: AuditEntry, q: AuditQuery) -> bool:
    """Whether `e` matches `q`, written plainly (the oracle for the SQL)."""
    equal = {
        "principal": q.principal,
        "reviewer": q.reviewer,
        "reviewer_group": q.reviewer_group,
        "review_state": q.review_state,
        "policy_version": q.policy_version,
        "decision_id": q.decision_id,
        "review_id": q.review_id,
        "request_id": q.request_id,
    }
    return (
        all(not want or getattr(e, name) == want for name, want in equal.items())
        and (q.since is None or e.time >= q.since)
        and (q.until is None or e.time < q.until)
        and (not q.types or e.type in q.types)
        and (not q.outcomes or e.outcome in q.outcomes)
        and (not q.action_glob or bool(glob_re(q.action_glob).fullmatch(e.action_name)))
        and (not q.rule or q.rule in e.rules)
        and (not q.from_seq or e.seq >= q.from_seq)
        and (not q.to_seq or e.seq <= q.to_seq)
    )
