"""Receipts sealed once per write batch: the hook through which a group commit signs them.

The app gives a decision a receipt leaf (`DecisionRecord.receipt_leaf`: the payload to
seal) and injects a `Sealer` (`Store.use_sealer`; the store does not import the app). The
writer that takes a batch calls the sealer once with the batch's leaves, before its
transaction, and each decision is stored with what came back appended to its bytes: a
serialized `Decision(receipt=...)`, and protobuf bytes concatenate as a merge. The store
never parses a Decision. The contract of the receipts is in `signoff.app.receipts`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from signoff.store.base import DecisionRecord

# leaf payloads, in batch order -> for each, the bytes to append to its decision
Sealer = Callable[[list[bytes]], list[bytes]]


@dataclass(slots=True)
class Leaf:
    """One operation's receipt leaf; the writer fills `sealed` before the operation runs."""

    payload: bytes
    sealed: bytes = b""


def leaf_of(rec: DecisionRecord) -> Leaf | None:
    """The leaf to seal with `rec`'s batch, if it carries one."""
    return Leaf(rec.receipt_leaf) if rec.receipt_leaf else None


def seal(sealer: Sealer | None, leaves: Sequence[Leaf]) -> None:
    """Fill every leaf's `sealed` with ONE call of `sealer` (one signature for the batch)."""
    if not leaves:
        return
    if sealer is None:
        raise RuntimeError("a decision carries a receipt leaf but the store has no sealer")
    sealed = sealer([leaf.payload for leaf in leaves])
    if len(sealed) != len(leaves):
        raise RuntimeError("the sealer returned a receipt count unlike the leaf count")
    for leaf, value in zip(leaves, sealed, strict=True):
        leaf.sealed = value


def with_receipt(rec: DecisionRecord, leaf: Leaf | None) -> DecisionRecord:
    """`rec` as stored: its bytes with the sealed receipt appended, no leaf."""
    if leaf is None:
        return rec
    if not leaf.sealed:
        raise RuntimeError("the decision's receipt leaf was not sealed")
    # Built directly: dataclasses.replace took three times as long, on every decision.
    return DecisionRecord(
        decision_id=rec.decision_id,
        principal_id=rec.principal_id,
        request_id=rec.request_id,
        request_digest=rec.request_digest,
        action_name=rec.action_name,
        outcome=rec.outcome,
        created_at=rec.created_at,
        decision=rec.decision + leaf.sealed,
    )
