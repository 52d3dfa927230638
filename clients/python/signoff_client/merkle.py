"""Check a Merkle inclusion path (RFC 9162 2.1.3.2): the root a leaf's path leads to.

Version 2 receipts are leaves of a tree signed once per write batch (the server's
`signoff.core.merkle` builds it); this recomputes the root a receipt claims, which the
batch signature then covers. Written from the RFC, independently of the server's code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


class BadPath(ValueError):
    """The path does not fit the leaf index and tree size."""


def root_from_path(payload: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root hash that leaf `payload` at `index` of a tree of `size` leaves proves with
    `path`; BadPath if the path cannot belong to such a leaf."""
    if not 0 <= index < size:
        raise BadPath(f"leaf index {index} is not below the tree size {size}")
    fn, sn = index, size - 1
    r = hashlib.sha256(b"\x00" + payload).digest()
    for p in path:
        if len(p) != 32:
            raise BadPath("a path node is not 32 bytes")
        if sn == 0:
            raise BadPath("the path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise BadPath("the path is shorter than the tree is deep")
    return r
