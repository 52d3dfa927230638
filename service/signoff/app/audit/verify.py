"""VerifyAudit: walk the hash chain over a range, page by page, with the checkpoints that
sign it and (from seq 1) the Merkle tree their version 2 heads sign; then the rows outside
the chain that must agree with it. The report names the first inconsistency."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from signoff import pb
from signoff.app.audit import checkpoints
from signoff.app.audit import tables as audit_tables
from signoff.core import log_tree
from signoff.core.audit import GENESIS, AuditEntry, verify_chain
from signoff.core.checkpoints import TrustedKeys
from signoff.errors import InvalidArgument
from signoff.logs import event
from signoff.store.base import AuditQuery, Checkpoint, Store

log = logging.getLogger("signoff.audit")
A = pb.audit
PAGE = 5000  # entries read at a time: memory stays flat however long the log


async def check(
    store: Store, trusted: TrustedKeys, req: A.VerifyAuditRequest
) -> A.VerifyAuditResponse:
    """Walk the chain and the checkpoints in a range; report the first inconsistency."""
    start = max(req.from_seq, 1)
    if req.from_last_checkpoint:
        last = await store.last_checkpoint()
        start = last.seq if last else 1
    if req.to_seq and req.to_seq < start:
        raise InvalidArgument("to_seq", f"{req.to_seq} is before the start {start}")
    prev = GENESIS
    if start > 1:
        before = await store.query_audit(AuditQuery(from_seq=start - 1), limit=1)
        if not before or before[0].seq != start - 1:
            return A.VerifyAuditResponse(
                ok=False, first_bad_seq=start - 1, problem="missing", from_seq=start
            )
        prev = before[0].hash
    q = AuditQuery(from_seq=start, to_seq=req.to_seq)
    checked, head_seq, head_hash, cps_ok = 0, start - 1, prev, 0
    # From seq 1 the tree is recomputed from the verified entries, and every version 2
    # checkpoint's signed root compared with it (a range cannot show the tree).
    tree: log_tree.Frontier | None = log_tree.Frontier() if start == 1 else None
    async for page, cps in _pages(store, q):
        result = verify_chain(page, head_hash, head_seq + 1)
        checked += result.checked
        if not result.ok:
            return A.VerifyAuditResponse(
                ok=False,
                entries_checked=checked,
                first_bad_seq=result.first_bad_seq or 0,
                problem=f"{result.problem}: {result.detail}",
                head_seq=result.head_seq,
                head_hash=result.head_hash,
                checkpoints_verified=cps_ok,
                from_seq=start,
            )
        by_seq = {e.seq: e.hash for e in page}
        roots = _tree_roots(tree, page, cps)
        if roots is None:
            tree = None
        for cp in cps:
            problem = checkpoints.problem(
                trusted, cp, by_seq.get(cp.seq), (roots or {}).get(cp.seq)
            )
            if problem:
                return A.VerifyAuditResponse(
                    ok=False,
                    entries_checked=checked,
                    first_bad_seq=cp.seq,
                    problem=problem,
                    checkpoints_verified=cps_ok,
                    from_seq=start,
                )
            cps_ok += 1
        head_seq, head_hash = result.head_seq, result.head_hash
        # The rule index is outside the chain: what `rule=` queries find must be what
        # the verified entries say.
        if (found := await audit_tables.check_rule_index(store, page)) is not None:
            return _disagrees(found, checked, start, cps_ok)
    beyond = await store.checkpoints(head_seq + 1, 0) if not req.to_seq else []
    # Only a trusted checkpoint past the end shows a cut tail; any other is itself forged.
    forged = next(((cp, p) for cp in beyond if (p := trusted.problem(cp))), None)
    if forged:
        return A.VerifyAuditResponse(
            ok=False,
            entries_checked=checked,
            first_bad_seq=forged[0].seq,
            problem=f"bad signature: {forged[1]}",
            checkpoints_verified=cps_ok,
            from_seq=start,
        )
    if beyond:
        return A.VerifyAuditResponse(
            ok=False,
            entries_checked=checked,
            first_bad_seq=head_seq + 1,
            problem=f"truncated: a checkpoint covers seq {beyond[-1].seq} but the log "
            f"ends at {head_seq}",
            checkpoints_verified=cps_ok,
            from_seq=start,
        )
    # Up to the head: the rows that decide (reviews, grants, decisions) must be what the
    # chain recorded. A range that stops short of the head leaves them to the last one.
    if not req.to_seq and (found := await audit_tables.check_tables(store)) is not None:
        return _disagrees(found, checked, start, cps_ok)
    return A.VerifyAuditResponse(
        ok=True,
        entries_checked=checked,
        head_seq=head_seq,
        head_hash=head_hash,
        checkpoints_verified=cps_ok,
        from_seq=start,
    )


async def _pages(
    store: Store, q: AuditQuery
) -> AsyncIterator[tuple[list[AuditEntry], list[Checkpoint]]]:
    """The entries of `q` a page at a time, each with the checkpoints in its seq range."""
    after = None
    while True:
        rows = await store.query_audit(q, after_seq=after, limit=PAGE)
        if not rows:
            return
        yield rows, await store.checkpoints(rows[0].seq, rows[-1].seq)
        after = rows[-1].seq


def _tree_roots(
    tree: log_tree.Frontier | None, page: list[AuditEntry], cps: list[Checkpoint]
) -> dict[int, str] | None:
    """Grow `tree` by the verified `page`; the roots at the seqs of version 2 checkpoints
    (None: no tree to grow, or an entry without a leaf)."""
    if tree is None:
        return None
    wanted = {cp.seq for cp in cps if cp.root_hash}
    roots: dict[int, str] = {}
    for e in page:
        leaf = log_tree.entry_leaf_hash(e)
        if leaf is None or e.seq != tree.size + 1:
            return None
        tree.append(leaf)
        if e.seq in wanted:
            roots[e.seq] = tree.root().hex()
    return roots


def _disagrees(
    found: audit_tables.Mismatch, checked: int, start: int, cps_ok: int
) -> A.VerifyAuditResponse:
    """A verification that failed on a table row; `first_bad_seq` is the entry it contradicts."""
    event(log, "chain.mismatch", logging.ERROR, table=found.table, key=found.key, seq=found.seq)
    return A.VerifyAuditResponse(
        ok=False,
        entries_checked=checked,
        first_bad_seq=found.seq,
        problem=f"table mismatch: {found}",
        checkpoints_verified=cps_ok,
        from_seq=start,
    )
