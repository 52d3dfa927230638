"""`audit verify`'s second half: the tables that decide agree with the chain it just walked.

The chain walk proves the log intact; these checks prove that what the server serves from
other tables is what the log recorded (`signoff.app.audit.rows` compares one row):

* the rule index (``audit_rules``) of each verified page against the entries' ``rules``;
* every review row against the latest ``review.*`` entry of that review;
* every grant row against its ``grant.created``/``grant.revoked`` entries, and its ``uses``
  against the decisions that used it;
* every decision row against its ``decision`` entry.

Rows are read by primary key a page at a time and their entries through the (id, seq)
indexes, one query per page, so memory stays flat and the cost grows with the tables. A row
that disagrees is read again once before it is reported: it may have changed (a review
acted on, a grant revoked) between the two reads of a running server.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from signoff.app.audit.rows import (
    GRANT_TYPES,
    REVIEW_TYPES,
    Mismatch,
    decision_mismatch,
    grant_mismatch,
    grant_uses_mismatch,
    granted_with,
    latest_review_entries,
    review_mismatch,
    rules_mismatch,
)
from signoff.core.audit import AuditEntry
from signoff.store.base import AuditQuery, DecisionRecord, ReviewRecord, Store
from signoff.store.grants_sql import GrantRecord

PAGE = 500
R = TypeVar("R")
__all__ = ["Mismatch", "check_rule_index", "check_tables"]
USES_PAGE = 1000


async def check_rule_index(store: Store, page: Sequence[AuditEntry]) -> Mismatch | None:
    """The first disagreement between the rule index and the `rules` of `page` (by seq)."""
    if not page:
        return None
    return rules_mismatch(page, await store.rule_index(page[0].seq, page[-1].seq))


async def check_tables(store: Store) -> Mismatch | None:
    """The first row of reviews, grants or decisions that disagrees with the audit log."""
    for check in (_reviews, _grants, _decisions):
        if (found := await check(store)) is not None:
            return found
    return None


async def _reviews(store: Store) -> Mismatch | None:
    async def compare(rows: Sequence[ReviewRecord]) -> list[tuple[str, Mismatch | None]]:
        ids = [r.review_id for r in rows]
        latest = latest_review_entries(await store.audit_by_ids("review_id", ids, REVIEW_TYPES))
        return [(r.review_id, review_mismatch(r, latest.get(r.review_id))) for r in rows]

    async def again(key: str) -> Mismatch | None:
        rec = await store.get_review(key)
        return None if rec is None else (await compare([rec]))[0][1]

    return await _walk(store.reviews_page, lambda r: r.review_id, compare, again)


async def _grants(store: Store) -> Mismatch | None:
    async def compare(rows: Sequence[GrantRecord]) -> list[tuple[str, Mismatch | None]]:
        ids = list(dict.fromkeys(granted_with(g) for g in rows))
        entries = await store.audit_by_ids("review_id", ids, GRANT_TYPES)
        out = []
        for g in rows:
            found = grant_mismatch(g, entries) or await _uses(store, g, entries)
            out.append((g.grant_id, found))
        return out

    async def again(key: str) -> Mismatch | None:
        rec = await store.get_grant(key)
        return None if rec is None else (await compare([rec]))[0][1]

    return await _walk(store.grants_page, lambda g: g.grant_id, compare, again)


async def _uses(store: Store, g: GrantRecord, entries: Sequence[AuditEntry]) -> Mismatch | None:
    """The decisions that used `g` (entries naming it), against the row's `uses`."""
    created = next(
        e for e in entries if e.type == "grant.created" and e.payload.get("grant_id") == g.grant_id
    )
    # A use is a decision of the grant's rule between its creation and its expiry: read
    # through the rule index, in that window only.
    q = AuditQuery(
        types=("decision",),
        rule=g.rule,
        from_seq=created.seq,
        until=g.expires_at + dt.timedelta(seconds=1),
    )
    used, after = 0, None
    while page := await store.query_audit(q, after_seq=after, limit=USES_PAGE):
        used += sum(1 for e in page if e.payload.get("grant_id") == g.grant_id)
        after = page[-1].seq
    return grant_uses_mismatch(g, used, created.seq)


async def _decisions(store: Store) -> Mismatch | None:
    async def compare(rows: Sequence[DecisionRecord]) -> list[tuple[str, Mismatch | None]]:
        ids = [d.decision_id for d in rows]
        entries = await store.audit_by_ids("decision_id", ids, ("decision",))
        by_id = {e.decision_id: e for e in entries}
        return [(d.decision_id, decision_mismatch(d, by_id.get(d.decision_id))) for d in rows]

    # A decision row never changes: no second look.
    return await _walk(store.decisions_page, lambda d: d.decision_id, compare, None)


async def _walk(
    page: Callable[[str, int], Awaitable[list[R]]],
    key: Callable[[R], str],
    compare: Callable[[Sequence[R]], Awaitable[list[tuple[str, Mismatch | None]]]],
    again: Callable[[str], Awaitable[Mismatch | None]] | None,
) -> Mismatch | None:
    after = ""
    while rows := await page(after, PAGE):
        for row_key, found in await compare(rows):
            if found is not None and again is not None:
                found = await again(row_key)
            if found is not None:
                return found
        after = key(rows[-1])
    return None
