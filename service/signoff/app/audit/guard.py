"""Rows are checked against the audit chain before they decide anything (use cases; the
comparisons are in `signoff.app.audit.rows`).

* A review is reported resolved (GetReview, WatchReview, ListReviews, precedents), and so
  receipted, only if its row agrees with the latest ``review.*`` entry of that review; one
  indexed read per call, and only for resolved reviews: a pending one decides nothing until
  somebody acts on it, and an act checks the pending row first (``acting=True``).
* A decision is replayed (a retry with the same request_id) only if its row agrees with its
  ``decision`` entry.
* A grant allows a request only if its row agrees with its ``grant.created`` entry and no
  ``grant.revoked`` entry exists: a row that disagrees is left out, so the request goes to
  review instead (never a failed decision).

A disagreement is logged as a ``chain.mismatch`` event (ERROR) naming the table, the row and
the field; `signoff audit verify` finds the same rows (audit_tables.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from signoff import pb
from signoff.app.audit.rows import (
    GRANT_TYPES,
    REVIEW_TYPES,
    Mismatch,
    decision_mismatch,
    grant_mismatch,
    granted_with,
    latest_review_entries,
    review_mismatch,
)
from signoff.errors import DataLoss
from signoff.logs import event
from signoff.store.base import DecisionRecord, ReviewRecord, Store
from signoff.store.grants_sql import GrantRecord

log = logging.getLogger("signoff.chain")


def report(m: Mismatch) -> None:
    """Log a row that disagrees with the audit log (one structured ERROR event)."""
    event(
        log,
        "chain.mismatch",
        logging.ERROR,
        table=m.table,
        key=m.key,
        field=m.field,
        seq=m.seq,
        problem=str(m),
    )


async def check_reviews(
    store: Store,
    loaded: Sequence[tuple[ReviewRecord, pb.review.Review]],
    *,
    acting: bool = False,
) -> None:
    """Raise DataLoss naming the first review whose row disagrees with the audit log.

    Checks the resolved ones (by the row's state column or its stored message), and with
    `acting` the pending ones too.
    """
    pending = pb.review.REVIEW_STATE_PENDING
    todo = [rec for rec, r in loaded if acting or rec.state != "PENDING" or r.state != pending]
    if not todo:
        return
    ids = list(dict.fromkeys(rec.review_id for rec in todo))
    latest = latest_review_entries(await store.audit_by_ids("review_id", ids, REVIEW_TYPES))
    for rec in todo:
        entry = latest.get(rec.review_id)
        if acting and entry is not None and _version(entry.payload) > rec.version:
            # Behind the chain: read before a change that committed since (the act's
            # conditional update then refuses the stale version), or rolled back to an
            # older version by hand -- which a fresh read tells, as a row and its entry
            # commit together.
            fresh = await store.get_review(rec.review_id)
            if fresh is not None and fresh.version >= _version(entry.payload):
                continue
        m = review_mismatch(rec, entry)
        if m is not None:
            report(m)
            raise DataLoss(
                f"review {rec.review_id}: the stored review disagrees with the audit log "
                f"({m.field}: {m.row} in the row, {m.chain} in the log); it is not reported "
                "or acted on. Run `signoff audit verify` and restore the database"
            )


async def check_decision(store: Store, rec: DecisionRecord) -> None:
    """Raise DataLoss unless the stored decision a retry would get agrees with its entry."""
    entries = await store.audit_by_ids("decision_id", [rec.decision_id], ("decision",))
    m = decision_mismatch(rec, entries[0] if entries else None)
    if m is not None:
        report(m)
        raise DataLoss(
            f"decision {rec.decision_id}: the stored decision disagrees with the audit log "
            f"({m.field}: {m.row} in the row, {m.chain} in the log); it is not replayed. "
            "Run `signoff audit verify` and restore the database"
        )


async def checked_grants(store: Store, grants: Sequence[GrantRecord]) -> list[GrantRecord]:
    """`grants` without those whose row disagrees with their audit entries (each logged)."""
    if not grants:
        return []
    ids = list(dict.fromkeys(granted_with(g) for g in grants))
    entries = await store.audit_by_ids("review_id", ids, GRANT_TYPES)
    out = []
    for g in grants:
        m = grant_mismatch(g, entries)
        if m is None:
            out.append(g)
        else:
            report(m)
    return out


def _version(payload: object) -> int:
    version = payload.get("version", 0) if isinstance(payload, dict) else 0
    return version if isinstance(version, int) else 0
