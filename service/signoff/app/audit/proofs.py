"""Inclusion and consistency proofs of the audit log's Merkle tree, read from the store.

A proof is planned as ranges of leaves (core/log_tree.py), the stored rows holding their
nodes are read in one query -- O(log n) rows whatever the log's size -- and the hashes are
folded. Sizes are checked against the newest signed tree head: a proof is only worth
something against a root that a checkpoint signed (and witnesses saw).
"""

from __future__ import annotations

from collections.abc import Sequence

from signoff import pb
from signoff.app.audit.query import entry_proto
from signoff.core import log_tree
from signoff.errors import FailedPrecondition, InvalidArgument
from signoff.store.base import Store

A = pb.audit


async def read(store: Store, ranges: Sequence[log_tree.Range]) -> list[bytes]:
    """The hashes of `ranges` from the stored tree (all in one read)."""
    nodes = log_tree.needed(ranges)
    rows = await store.tree_rows([log_tree.row_key(n) for n in nodes])
    try:
        return log_tree.hashes(ranges, log_tree.from_rows(nodes, rows))
    except KeyError as exc:
        # Sizes were checked against a signed head, which the store signs only when built.
        raise FailedPrecondition(
            f"the stored audit tree lacks node {exc.args[0]} (level, index): run "
            "`signoff audit verify`",
            current_state="tree incomplete",
        ) from None


async def root(store: Store, size: int) -> bytes:
    """The root of the stored tree of the first `size` entries."""
    [h] = await read(store, [(0, size)])
    return h


async def signed_size(store: Store) -> int:
    """The tree size the newest checkpoint signs (0: none signs a tree head yet)."""
    last = await store.last_checkpoint()
    return last.tree_size if last is not None else 0


def check_size(field: str, value: int, signed: int) -> int:
    """`value` as a tree size a proof may use; InvalidArgument naming `field` if not."""
    if value < 1:
        raise InvalidArgument(field, f"must be at least 1, not {value}")
    if signed == 0:
        raise InvalidArgument(
            field,
            "no checkpoint signs a tree head yet (version 2 checkpoints are made as the log grows)",
        )
    if value > signed:
        raise InvalidArgument(field, f"{value} is beyond the newest signed tree head ({signed})")
    return value


async def inclusion(store: Store, req: A.GetInclusionProofRequest) -> A.GetInclusionProofResponse:
    """GetInclusionProof: entry `seq`, its leaf and its path in the log of `tree_size`."""
    size = check_size("tree_size", req.tree_size, await signed_size(store))
    if not 1 <= req.seq <= size:
        raise InvalidArgument("seq", f"{req.seq} is not an entry of the log of size {size}")
    ranges = log_tree.inclusion_ranges(req.seq - 1, size)
    *path, root_ = await read(store, [*ranges, (0, size)])
    [entry] = await store.read_audit(req.seq, 1)
    leaf = log_tree.leaf_bytes(entry)
    if leaf is None:  # the tree was built over the entry as it was: it changed since
        raise FailedPrecondition(
            f"audit entry seq {req.seq} no longer hashes to its chain hash (altered): run "
            "`signoff audit verify`",
            current_state="altered",
        )
    return A.GetInclusionProofResponse(
        entry=entry_proto(entry),
        leaf=leaf,
        leaf_index=req.seq - 1,
        tree_size=size,
        proof=path,
        root_hash=root_.hex(),
    )


async def consistency(
    store: Store, req: A.GetConsistencyProofRequest
) -> A.GetConsistencyProofResponse:
    """GetConsistencyProof: the log of `first` entries is a prefix of the log of `second`."""
    second = check_size("second", req.second, await signed_size(store))
    if req.first < 1:
        raise InvalidArgument("first", f"must be at least 1, not {req.first}")
    if req.first > second:
        raise InvalidArgument("first", f"{req.first} is greater than second ({second})")
    ranges = log_tree.consistency_ranges(req.first, second)
    *proof, first_root, second_root = await read(store, [*ranges, (0, req.first), (0, second)])
    return A.GetConsistencyProofResponse(
        first=req.first,
        second=second,
        proof=proof,
        first_root_hash=first_root.hex(),
        second_root_hash=second_root.hex(),
    )
