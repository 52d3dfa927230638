"""The reads that check rows against the chain, on every backend: entries by id through the
(id, seq) indexes, the rule index of a seq range, and every row of the deciding tables."""

from __future__ import annotations

import pytest

from signoff.app.audit.rows import REVIEW_TYPES
from signoff.core.audit import AuditRecord, entry_hash, verify_chain
from signoff.store import Store
from signoff_client.canonical import legacy_canonical_json

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


async def test_an_entry_hashed_by_0_1_with_a_large_number_reads_back_and_verifies(
    store: Store,
) -> None:
    # 0.1.x stored and hashed 2.0**60 as 1152921504606846976 (its fast path); 0.2.0 writes
    # 1152921504606847000. The stored text is what it was: verification falls back to it.
    old = AuditRecord(type="decision", time=T0, payload={"amount": 2.0**60, "n": 3.0})
    legacy = legacy_canonical_json(old.payload)
    assert legacy == '{"amount":1152921504606846976,"n":3}'
    object.__setattr__(old, "payload_json", legacy)  # as 0.1.x built the record
    entries = await store.append([old, AuditRecord(type="decision", time=T0)])
    back = await store.read_audit(entries[0].seq, 2)
    assert [e.hash for e in back] == [e.hash for e in entries]
    # Read back, the payload encodes in the exact form, which is not what was hashed...
    assert entry_hash(back[0], seq=back[0].seq, prev_hash=back[0].prev_hash) != back[0].hash
    # ...and the chain verifies all the same, through the old form.
    assert verify_chain(back, entries[0].prev_hash, entries[0].seq).ok
