"""The reads that check rows against the chain, on every backend: entries by id through the
(id, seq) indexes, the rule index of a seq range, and every row of the deciding tables."""

from __future__ import annotations

import pytest

from signoff.app.audit.rows import REVIEW_TYPES
from signoff.core.audit import AuditRecord
from signoff.store import Store

from .reviews import T0, change_audit, changed, open_review


async def test_audit_by_ids_finds_the_entries_of_those_ids_and_types_in_seq_order(
    store: Store,
) -> None:
    for n in (1, 2, 3):
        r = await open_review(store, n)
        new = changed(r, "REJECTED")
        await store.update_review(new, 1, [change_audit(new)])
    found = await store.audit_by_ids("review_id", ["rev-3", "rev-1", "nope"], REVIEW_TYPES)
    assert [(e.review_id, e.type) for e in found] == [
        ("rev-1", "review.opened"),
        ("rev-1", "review.rejected"),
        ("rev-3", "review.opened"),
        ("rev-3", "review.rejected"),
    ]
    assert [e.seq for e in found] == sorted(e.seq for e in found)
    assert await store.audit_by_ids("review_id", ["rev-2"], ("review.rejected",)) != []
    decisions = await store.audit_by_ids("decision_id", ["dec-2"], ("decision",))
    assert [(e.decision_id, e.type) for e in decisions] == [("dec-2", "decision")]
    assert await store.audit_by_ids("review_id", [], REVIEW_TYPES) == []
    with pytest.raises(ValueError, match="'principal' is not one of"):
        await store.audit_by_ids("principal", ["x"], REVIEW_TYPES)


async def test_rule_index_returns_the_rows_of_a_seq_range(store: Store) -> None:
    entries = await store.append(
        [
            AuditRecord(type="decision", time=T0, rules=("b", "a")),
            AuditRecord(type="decision", time=T0),
            AuditRecord(type="decision", time=T0, rules=("c",)),
        ]
    )
    first = entries[0].seq
    assert await store.rule_index(first, first + 2) == [
        (first, "a"),
        (first, "b"),
        (first + 2, "c"),
    ]
    assert await store.rule_index(first + 1, first + 1) == []


async def test_the_deciding_tables_are_read_whole_page_by_page(store: Store) -> None:
    for n in range(5):
        await open_review(store, n)
    ids, after = [], ""
    while page := await store.reviews_page(after, 2):
        ids += [r.review_id for r in page]
        after = page[-1].review_id
    assert ids == [f"rev-{n}" for n in range(5)]
    decisions = await store.decisions_page("dec-2", 10)
    assert [d.decision_id for d in decisions] == ["dec-3", "dec-4"]
    assert await store.grants_page("", 10) == []
