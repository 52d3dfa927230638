"""Check Merkle proofs (RFC 9162 2.1.3.2 inclusion, 2.1.4.2 consistency) without the server.

Two trees use them. Version 2 receipts are leaves of a tree signed once per write batch (the
server's `signoff.core.merkle` builds it): `root_from_path` recomputes the root a receipt
claims. The audit log is itself one growing tree (`signoff.core.log_tree`) whose heads are
signed in version 2 checkpoints: `verify_inclusion` checks that an entry is in the log of a
given size, `verify_consistency` that the log of one size is a prefix of the log of a larger
one. Written from the RFC, independently of the server's code, and tested against the
published vectors of transparency-dev/merkle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


class BadPath(ValueError):
    """The path (or proof) does not fit the leaf index and tree sizes, or does not verify."""


def leaf_hash(payload: bytes) -> bytes:
    """The RFC 6962 hash of one leaf: SHA-256(0x00 || payload)."""
    return hashlib.sha256(b"\x00" + payload).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        raise BadPath(f"{what} is not 32 bytes")


def root_from_path(payload: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root hash that leaf `payload` at `index` of a tree of `size` leaves proves with
    `path`; BadPath if the path cannot belong to such a leaf."""
    return root_from_leaf_hash(leaf_hash(payload), index, size, path)


def root_from_leaf_hash(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root that the leaf hash `leaf` at `index` of a tree of `size` leads to along
    `path` (RFC 9162 2.1.3.2, steps 1-4); BadPath if the path cannot belong to it."""
    if not 0 <= index < size:
        raise BadPath(f"leaf index {index} is not below the tree size {size}")
    _check_hash(leaf, "the leaf hash")
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        _check_hash(p, "a path node")
        if sn == 0:
            raise BadPath("the path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise BadPath("the path is shorter than the tree is deep")
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> None:
    """Raise BadPath unless `path` proves leaf hash `leaf` at `index` in the tree of `size`
    leaves whose root is `root` (RFC 9162 2.1.3.2)."""
    if root_from_leaf_hash(leaf, index, size, path) != root:
        raise BadPath(
            f"the inclusion proof of leaf {index} leads to another root than the tree of "
            f"size {size} has"
        )


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> None:
    """Raise BadPath unless `proof` shows the tree of `first` leaves with root `first_root`
    is a prefix of the tree of `second` leaves with root `second_root` (RFC 9162 2.1.4.2)."""
    if not 0 < first <= second:
        # Every tree extends the empty one: a proof from size 0 would prove nothing.
        raise BadPath(f"sizes {first}, {second} are not 0 < first <= second")
    if first == second:
        # The RFC's algorithm starts at first < second; equal sizes prove with nothing.
        if proof:
            raise BadPath("equal sizes take an empty proof")
        if first_root != second_root:
            raise BadPath(f"two different roots for the same size {first}")
        return
    if not proof:
        raise BadPath(f"an empty proof cannot show size {first} is a prefix of size {second}")
    for p in proof:
        _check_hash(p, "a proof node")
    path = list(proof)
    if first & (first - 1) == 0:  # step 2: a power of two is itself a node of both trees
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:  # step 6
        if sn == 0:
            raise BadPath("the consistency proof is longer than the trees are deep")
        if fn & 1 or fn == sn:
            fr = _node(c, fr)
            sr = _node(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise BadPath("the consistency proof is shorter than the trees are deep")
    if fr != first_root:
        raise BadPath(f"the consistency proof does not lead to the root of size {first}")
    if sr != second_root:
        raise BadPath(f"the consistency proof does not lead to the root of size {second}")
