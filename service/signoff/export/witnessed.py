"""What witnesses add to an export's verification: a quorum of co-signatures on its newest
checkpoint, and consistency with the newest co-signed head the verifier already holds.

A log key alone cannot tell a cut or rewritten log from the true one: whoever holds the key
re-signs. Witnesses' keys are held by others, so a quorum of their co-signatures on the
newest checkpoint says the log was shown to them like this -- and a trusted head (a witness's
last co-signed size and root) that the export does not reach, or reaches with another root,
names what was cut or rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from signoff.core.checkpoints import CheckpointLike, key_id
from signoff.core.witness import Cosignature, Head, covers, verify_cosignature

_HEAD = re.compile(r"([0-9]+):([0-9a-f]{64})")


@dataclass(frozen=True, slots=True)
class Witnesses:
    """The verifier's trust in witnesses: their public keys, how many must co-sign, and the
    newest head one of them co-signed (if the verifier holds one)."""

    keys: Sequence[Ed25519PublicKey]
    quorum: int
    trusted_head: Head | None = None


def parse_head(text: str) -> Head:
    """`SIZE:ROOT` (ROOT 64 lowercase hex) as a Head; ValueError saying the form."""
    m = _HEAD.fullmatch(text.strip())
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"{text[:80]!r} is not SIZE:ROOT (a size >= 1 and 64 lowercase hex)")
    return Head(int(m.group(1)), m.group(2))


def quorum_problem(
    w: Witnesses, cp: CheckpointLike | None, cosignatures: Sequence[Cosignature]
) -> str:
    """Why the newest checkpoint `cp` lacks a quorum of valid co-signatures ("" if not)."""
    if cp is None:
        return "the export holds no checkpoint for witnesses to have co-signed"
    if not getattr(cp, "root_hash", ""):
        return f"the newest checkpoint (seq {cp.seq}) signs no tree head: nothing co-signed"
    keys = {key_id(k): k for k in w.keys}
    valid = {
        cs.key_id
        for cs in cosignatures
        if cs.key_id in keys and covers(cs, cp) and verify_cosignature(keys[cs.key_id], cs)
    }
    if len(valid) >= w.quorum:
        return ""
    return (
        f"the newest checkpoint (seq {cp.seq}, tree size {getattr(cp, 'tree_size', 0)}) "
        f"carries {len(valid)} valid co-signature(s) of the {len(keys)} witness key(s) given; "
        f"the quorum is {w.quorum}"
    )


def head_problem(trusted: Head, last_seq: int, root_at_trusted: str | None) -> str:
    """Why the export is not consistent with the trusted head ("" if it is): `last_seq` is
    its last entry, `root_at_trusted` the root it gives the first `trusted.size` entries
    (None when it cannot show the tree: a range or a filter)."""
    if last_seq < trusted.size:
        span = f"seq {last_seq + 1}" + (f"..{trusted.size}" if trusted.size > last_seq + 1 else "")
        return (
            f"the log witnessed at size {trusted.size} (root {trusted.root[:16]}) ends at seq "
            f"{last_seq} here: {span} lost (the tail was cut)"
        )
    if root_at_trusted is None:
        return "the export does not start at seq 1: the trusted head cannot be checked"
    if root_at_trusted != trusted.root:
        return (
            f"the first {trusted.size} entries have root {root_at_trusted[:16]}, not the "
            f"witnessed {trusted.root[:16]}: the history was rewritten and re-signed"
        )
    return ""
