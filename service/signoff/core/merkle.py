"""Merkle trees of receipts (RFC 9162 2.1): the root, and every leaf's inclusion path.

Hashing as RFC 6962/9162: a leaf is SHA-256(0x00 || payload), an inner node
SHA-256(0x01 || left || right); the tree over n leaves splits at the largest power of two
below n, so any size (1 included: the root is the leaf's hash, the path empty) has one
shape. The verifiers (`signoff_client.merkle`, the TypeScript `receipts.ts`) recompute the
root from a leaf, its index, the tree size and its path (RFC 9162 2.1.3.2).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def leaf_hash(payload: bytes) -> bytes:
    """The hash of one leaf (domain-separated from inner nodes by the 0x00 prefix)."""
    return hashlib.sha256(b"\x00" + payload).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an inner node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def tree(payloads: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """The root over `payloads` (at least one) and each leaf's inclusion path, leaf up."""
    if not payloads:
        raise ValueError("a Merkle tree needs at least one leaf")
    return _subtree([leaf_hash(p) for p in payloads])


def _subtree(hashes: list[bytes]) -> tuple[bytes, list[list[bytes]]]:
    n = len(hashes)
    if n == 1:
        return hashes[0], [[]]
    k = 1 << ((n - 1).bit_length() - 1)  # the largest power of two below n
    left, left_paths = _subtree(hashes[:k])
    right, right_paths = _subtree(hashes[k:])
    # A path lists siblings from the leaf up: this level's sibling subtree comes last.
    paths = [[*p, right] for p in left_paths] + [[*p, left] for p in right_paths]
    return node_hash(left, right), paths
