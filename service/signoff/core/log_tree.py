"""The audit log as one RFC 9162 Merkle tree: tree heads, inclusion and consistency proofs.

The hash chain (`signoff.core.audit`) proves a whole log from its first entry; the tree
proves one entry, or that one log is a prefix of another, with log2(n) hashes. Leaf i (from
0) is entry seq i+1, and its payload is the entry's canonical bytes (`leaf_bytes`): the very
bytes its chain hash covers, prev_hash and seq included, so the tree and the chain vouch for
one text of each entry and an auditor's tool encodes an entry once for both. Hashing as
`signoff.core.merkle` (RFC 6962: 0x00 leaf, 0x01 node prefixes).

Storage keeps the perfect subtrees only: node (level, index) covers leaves
[index * 2**level, (index + 1) * 2**level). Every range the RFC's definitions use (MTH, PATH,
SUBPROOF) starts at a multiple of a power of two at least as large as itself, so its hash is
the right fold of at most log2(n) such nodes (`pieces`). A proof is planned as ranges
(`inclusion_ranges`, `consistency_ranges`), the nodes they need are read at once
(`needed`), and the hashes are folded (`range_hash`): O(log n) reads, whatever n is.

The nodes are written by whoever appends leaves in order (`Frontier`): the perfect subtrees
that end at leaf i are those of levels 0..t, t the number of trailing one bits of i, and they
are stored together in one row keyed by i+1 (`row_key`), the hash of level L at byte 32*L.
The verifiers are the client's (`signoff_client.merkle`), written from the RFC separately.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from signoff.core.audit import AuditEntry, canonical_bytes
from signoff.core.merkle import leaf_hash, node_hash
from signoff_client.canonical import legacy_canonical_json
from signoff_client.merkle import (  # noqa: F401 -- re-exported: the tests import them here
    BadPath,
    verify_consistency,
    verify_inclusion,
)

Node = tuple[int, int]  # (level, index)
Range = tuple[int, int]  # leaves [lo, hi)
EMPTY_ROOT = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def _split(n: int) -> int:
    """The largest power of two below `n` (n >= 2): where the RFC splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def pieces(lo: int, hi: int) -> list[Node]:
    """The perfect subtrees that make up leaves [lo, hi), left to right (largest first)."""
    out: list[Node] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        if lo:
            level = min(level, (lo & -lo).bit_length() - 1)  # the alignment of lo
        out.append((level, lo >> level))
        lo += 1 << level
    return out


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The ranges whose hashes make PATH(index, D[0:size]) (RFC 9162 2.1.3.1), leaf up."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not below the tree size {size}")
    path: list[Range] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append((lo + k, hi))
            hi = lo + k
        else:
            path.append((lo, lo + k))
            lo += k
    return path[::-1]


def consistency_ranges(first: int, second: int) -> list[Range]:
    """The ranges whose hashes make PROOF(first, D[0:second]) (RFC 9162 2.1.4.1)."""
    if not 0 < first <= second:
        raise ValueError(f"sizes {first}, {second} are not 0 < first <= second")
    out: list[Range] = []  # collected root down: the RFC appends on the way back up
    lo, hi, whole, m = 0, second, True, first
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        out.append((lo, hi))
    return out[::-1]


def needed(ranges: Iterable[Range]) -> list[Node]:
    """The stored nodes that the hashes of `ranges` are folded from (no repeats)."""
    return list(dict.fromkeys(node for lo, hi in ranges for node in pieces(lo, hi)))


def range_hash(lo: int, hi: int, nodes: Mapping[Node, bytes]) -> bytes:
    """MTH(D[lo:hi]) from the stored nodes (KeyError if one is missing)."""
    if lo == hi:
        return EMPTY_ROOT
    parts = [nodes[node] for node in pieces(lo, hi)]
    h = parts[-1]
    for left in reversed(parts[:-1]):
        h = node_hash(left, h)
    return h


def hashes(ranges: Sequence[Range], nodes: Mapping[Node, bytes]) -> list[bytes]:
    """The hashes of `ranges`: a proof, once planned and its nodes read."""
    return [range_hash(lo, hi, nodes) for lo, hi in ranges]


def row_key(node: Node) -> int:
    """The stored row that holds `node`: the seq of its last leaf (its hash at 32 * level)."""
    level, index = node
    return (index + 1) << level


def from_rows(nodes: Iterable[Node], rows: Mapping[int, bytes]) -> dict[Node, bytes]:
    """Cut `nodes` out of the stored rows (key -> concatenated hashes); KeyError if absent."""
    out: dict[Node, bytes] = {}
    for level, index in nodes:
        row = rows[row_key((level, index))]
        h = row[32 * level : 32 * level + 32]
        if len(h) != 32:
            raise KeyError((level, index))
        out[(level, index)] = h
    return out


class Frontier:
    """The roots of the perfect subtrees of a tree being grown leaf by leaf (its right edge)."""

    def __init__(self, size: int = 0, nodes: Mapping[Node, bytes] | None = None) -> None:
        # Given the nodes of `pieces(0, size)` (as read from storage), go on from `size`.
        self.size = size
        self._stack: list[bytes] = [dict(nodes or {})[n] for n in pieces(0, size)]

    def append(self, leaf: bytes) -> bytes:
        """Add a leaf hash; return the row of nodes it completes (levels 0..t, concatenated)."""
        row = [leaf]
        h, i = leaf, self.size
        while i & 1:  # each trailing one bit of the index closes a subtree one level up
            h = node_hash(self._stack.pop(), h)
            row.append(h)
            i >>= 1
        self._stack.append(h)
        self.size += 1
        return b"".join(row)

    def root(self) -> bytes:
        """MTH of the leaves so far (the empty tree's hash when there are none)."""
        if not self._stack:
            return EMPTY_ROOT
        h = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            h = node_hash(left, h)
        return h


def leaf_bytes(entry: AuditEntry) -> bytes | None:
    """The canonical bytes of `entry` that its chain hash covers (the tree's leaf payload),
    in the pre-0.2.0 form if that is the one it was hashed in; None if neither matches (the
    stored row was altered: the tree must not vouch for it)."""
    if not entry.prev_hash.isascii():
        return None
    prev = entry.prev_hash.encode("ascii")
    data = canonical_bytes(entry, seq=entry.seq, prev_hash=entry.prev_hash)
    if hashlib.sha256(prev + data).hexdigest() == entry.hash:
        return data
    legacy = legacy_canonical_json(entry.payload)
    if legacy is None:
        return None
    data = canonical_bytes(entry, seq=entry.seq, prev_hash=entry.prev_hash, payload_json=legacy)
    return data if hashlib.sha256(prev + data).hexdigest() == entry.hash else None


def entry_leaf_hash(entry: AuditEntry) -> bytes | None:
    """The leaf hash of `entry` (None when its row was altered, as `leaf_bytes`)."""
    data = leaf_bytes(entry)
    return None if data is None else leaf_hash(data)
