"""Witnesses: co-signatures of the log's tree heads, a witness's memory, and its verdict.

A witness is run by someone other than the operator. It keeps, per log key, the last tree
head it co-signed; shown a newer version 2 checkpoint, it co-signs only if the log's key
signed it and a consistency proof shows the head it remembers is a prefix of the new one.
Anything else is an alarm: the server (or whoever holds its key) cut, rewrote or forked the
log. Everything here is pure: the caller fetches checkpoints and proofs and persists state.

Co-signature contract (version 1), built by `signoff_client.audit_proofs.cosignature_bytes`
-- auditors re-implement this to check one. The signed
bytes are the RFC 8785 canonical JSON (see `signoff.core.checkpoints`) of::

    {"v": 1, "type": "signoff.witness.cosignature", "log_key_id": "<16 hex>",
     "tree_size": <int>, "root_hash": "<64 hex>",
     "time": "<RFC 3339 UTC, six fractional digits, Z>", "key_id": "<16 hex>"}

``key_id`` names the witness's key (the signer, as in a checkpoint), ``log_key_id`` the key
of the log whose tree head it vouches for. ``signature`` is the base64 Ed25519 signature of
those bytes. Its ``type`` differs from a checkpoint's and an export's, so a co-signature can
never be replayed as either, nor either as a co-signature; and it has no ``seq`` member, so
a checkpoint verifier fed one rejects it.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from signoff.core.audit import format_time, parse_time
from signoff.core.checkpoints import Checkpoint, key_id, sign_bytes, verify, verify_bytes
from signoff_client.audit_proofs import cosignature_bytes
from signoff_client.merkle import BadPath, verify_consistency

HISTORY_LIMIT = 256  # heads kept per log: enough to compare with a peer, small on disk
STATE_VERSION = 1

_HASH = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[0-9a-f]{16}")


# -- the co-signature ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Cosignature:
    """A witness's signed statement "the log `log_key_id` had this tree head at `time`"."""

    log_key_id: str
    tree_size: int
    root_hash: str
    time: dt.datetime
    key_id: str  # the witness's key
    signature: str  # base64 Ed25519


def cosign(key: Ed25519PrivateKey, cp: Checkpoint, time: dt.datetime) -> Cosignature:
    """Co-sign the tree head of version 2 checkpoint `cp` with the witness's `key`."""
    if not cp.root_hash:
        raise ValueError(f"checkpoint at seq {cp.seq} signs no tree head (version 1)")
    kid = key_id(key)
    data = cosignature_bytes(cp.key_id, cp.tree_size, cp.root_hash, time, kid)
    return Cosignature(
        log_key_id=cp.key_id,
        tree_size=cp.tree_size,
        root_hash=cp.root_hash,
        time=time.astimezone(dt.UTC),
        key_id=kid,
        signature=sign_bytes(key, data),
    )


def verify_cosignature(public_key: Ed25519PublicKey, cs: Cosignature) -> bool:
    """True if the witness key `public_key` signed `cs`; never raises."""
    try:
        if cs.key_id != key_id(public_key):
            return False
        data = cosignature_bytes(cs.log_key_id, cs.tree_size, cs.root_hash, cs.time, cs.key_id)
    except (ValueError, TypeError, AttributeError):
        return False
    return verify_bytes(public_key, data, cs.signature)


def covers(cs: Cosignature, cp: Checkpoint) -> bool:
    """True if `cs` vouches for the tree head that checkpoint `cp` signs."""
    return (
        bool(cp.root_hash)
        and cs.log_key_id == cp.key_id
        and cs.tree_size == cp.tree_size
        and cs.root_hash == cp.root_hash
    )


# -- the witness's memory --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Head:
    """A tree head: the log had `size` entries and their tree had root `root` (64 hex)."""

    size: int
    root: str


@dataclass(frozen=True, slots=True)
class LogState:
    """What a witness remembers of one log: the heads it co-signed, oldest first (bounded)."""

    heads: tuple[Head, ...] = ()

    @property
    def last(self) -> Head | None:
        """The head co-signed last (None before the first)."""
        return self.heads[-1] if self.heads else None

    def root_at(self, size: int) -> str | None:
        """The root this witness co-signed for `size`, if it remembers one."""
        for head in reversed(self.heads):
            if head.size == size:
                return head.root
        return None

    def advance(self, head: Head) -> LogState:
        """The state after co-signing `head` (a repeat of the last head adds nothing)."""
        if self.last == head:
            return self
        return LogState((*self.heads, head)[-HISTORY_LIMIT:])


@dataclass(frozen=True, slots=True)
class WitnessState:
    """A witness's whole memory: one `LogState` per log key id."""

    logs: Mapping[str, LogState] = field(default_factory=dict)

    def log(self, log_key_id: str) -> LogState:
        """The memory of log `log_key_id` (empty if never seen)."""
        return self.logs.get(log_key_id, LogState())

    def with_log(self, log_key_id: str, state: LogState) -> WitnessState:
        """A copy with log `log_key_id`'s memory replaced."""
        return WitnessState({**self.logs, log_key_id: state})


def merged(state: WitnessState, log_key_ids: Sequence[str]) -> LogState:
    """The memory of one log signed by any of `log_key_ids` (its keys across rotations):
    every head co-signed under any of them, by size (a log only grows, so the largest is
    the last), the newest HISTORY_LIMIT."""
    if len(log_key_ids) == 1:
        return state.log(log_key_ids[0])
    heads = {h for kid in log_key_ids for h in state.log(kid).heads}
    return LogState(tuple(sorted(heads, key=lambda h: (h.size, h.root)))[-HISTORY_LIMIT:])


def state_to_json(state: WitnessState) -> dict[str, Any]:
    """The JSON form a witness persists (versioned)."""
    return {
        "v": STATE_VERSION,
        "logs": {
            kid: [{"size": h.size, "root": h.root} for h in log.heads]
            for kid, log in sorted(state.logs.items())
        },
    }


def state_from_json(doc: Any, where: str = "state") -> WitnessState:
    """Read `state_to_json`'s form back; ValueError naming `where` and the bad member."""
    if not isinstance(doc, dict) or doc.get("v") != STATE_VERSION:
        raise ValueError(f"{where}: not a version {STATE_VERSION} witness state")
    logs = doc.get("logs")
    if not isinstance(logs, dict):
        raise ValueError(f"{where}: logs is not an object")
    out: dict[str, LogState] = {}
    for kid, heads in logs.items():
        if not _KEY_ID.fullmatch(kid) or not isinstance(heads, list):
            raise ValueError(f"{where}: logs.{kid[:40]!r} is not a key id with a list of heads")
        parsed: list[Head] = []
        for i, h in enumerate(heads):
            size = h.get("size") if isinstance(h, dict) else None
            root = h.get("root") if isinstance(h, dict) else None
            if type(size) is not int or size < 0 or not isinstance(root, str):
                raise ValueError(f"{where}: logs.{kid}[{i}] is not {{size, root}}")
            if not _HASH.fullmatch(root):
                raise ValueError(f"{where}: logs.{kid}[{i}].root is not 64 hex characters")
            if parsed and size < parsed[-1].size:
                raise ValueError(f"{where}: logs.{kid}[{i}] goes back from size {parsed[-1].size}")
            parsed.append(Head(size, root))
        out[kid] = LogState(tuple(parsed))
    return WitnessState(out)


# -- the verdict -----------------------------------------------------------------------------


class Reason(enum.StrEnum):
    """Why a witness refuses to co-sign; each is an alarm."""

    BAD_LOG_SIGNATURE = "bad_log_signature"  # not the pinned log key's, or altered
    NOT_A_TREE_HEAD = "not_a_tree_head"  # a version 1 checkpoint: nothing to check
    SIZE_WENT_DOWN = "size_went_down"  # an older head it co-signed shown again
    TRUNCATED = "truncated"  # fewer entries than co-signed, under a head never co-signed
    FORKED = "forked"  # the same size with another root
    PROOF_FAILS = "proof_fails"  # no proof, or one that does not verify


@dataclass(frozen=True, slots=True)
class Cosign:
    """The verdict "co-sign": `head` is consistent with all the witness co-signed."""

    head: Head


@dataclass(frozen=True, slots=True)
class Alarm:
    """The verdict "refuse and raise the alarm", with why and a message naming sizes/roots."""

    reason: Reason
    message: str


Verdict = Cosign | Alarm


def _short(root: str) -> str:
    return root[:16]


def decide(
    state: LogState,
    cp: Checkpoint,
    log_key: Ed25519PublicKey,
    proof: Sequence[bytes] | None,
) -> Verdict:
    """Judge checkpoint `cp` of the log pinned to `log_key`, given what the witness co-signed
    (`state`) and a consistency proof from its last head to `cp`'s (None: none offered)."""
    if not verify(log_key, cp):
        return Alarm(
            Reason.BAD_LOG_SIGNATURE,
            f"checkpoint at seq {cp.seq} (key {str(cp.key_id)[:16]!r}) is not signed by the "
            f"pinned log key {key_id(log_key)}",
        )
    if not cp.root_hash:
        return Alarm(
            Reason.NOT_A_TREE_HEAD,
            f"checkpoint at seq {cp.seq} signs no tree head (version 1): nothing to co-sign",
        )
    new = Head(cp.tree_size, cp.root_hash)
    last = state.last
    if last is None or last.size == 0:
        return Cosign(new)  # first contact: trust on first use, as any witness must
    if new.size < last.size:
        if state.root_at(new.size) == new.root:
            return Alarm(
                Reason.SIZE_WENT_DOWN,
                f"the log went back from size {last.size} (root {_short(last.root)}) to the "
                f"older head of size {new.size} (root {_short(new.root)}): entries "
                f"{new.size + 1}..{last.size} are no longer shown",
            )
        return Alarm(
            Reason.TRUNCATED,
            f"the log shrank from size {last.size} (root {_short(last.root)}) to size "
            f"{new.size} (root {_short(new.root)}), a head never co-signed: entries "
            f"{new.size + 1}..{last.size} are gone",
        )
    known = state.root_at(new.size)
    if known is not None and known != new.root:
        return Alarm(
            Reason.FORKED,
            f"two roots for size {new.size}: co-signed {_short(known)}, now shown "
            f"{_short(new.root)} (the log was rewritten or forked)",
        )
    if new.size == last.size:
        return Cosign(new)
    if proof is None:
        return Alarm(
            Reason.PROOF_FAILS,
            f"no consistency proof from size {last.size} to size {new.size}",
        )
    try:
        verify_consistency(
            last.size, new.size, proof, bytes.fromhex(last.root), bytes.fromhex(new.root)
        )
    except BadPath as exc:
        return Alarm(
            Reason.PROOF_FAILS,
            f"size {last.size} (root {_short(last.root)}) is not shown to be a prefix of "
            f"size {new.size} (root {_short(new.root)}): {exc}",
        )
    return Cosign(new)


def parse_cosignature(doc: Mapping[str, Any]) -> Cosignature:
    """Build a `Cosignature` from its JSON form (as exports carry it); ValueError if bad."""
    try:
        return Cosignature(
            log_key_id=str(doc["log_key_id"]),
            tree_size=int(doc["tree_size"]),
            root_hash=str(doc["root_hash"]),
            time=parse_time(str(doc["time"])),
            key_id=str(doc["key_id"]),
            signature=str(doc["signature"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a co-signature: {exc}") from None


def cosignature_json(cs: Cosignature) -> dict[str, Any]:
    """The JSON form of `cs` (as exports carry it)."""
    return {
        "log_key_id": cs.log_key_id,
        "tree_size": cs.tree_size,
        "root_hash": cs.root_hash,
        "time": format_time(cs.time),
        "key_id": cs.key_id,
        "signature": cs.signature,
    }


def compare(a: LogState, b: LogState) -> Alarm | tuple[Head, Head] | None:
    """Split-view check of two witnesses' memories of one log: an Alarm if they co-signed
    two roots for one size; else the (smaller, larger) last heads a consistency proof must
    join, or None when both last co-signed the same head (or one saw nothing)."""
    mine = {h.size: h.root for h in a.heads}
    for h in b.heads:
        if mine.get(h.size, h.root) != h.root:
            return Alarm(
                Reason.FORKED,
                f"split view: for size {h.size} one witness co-signed root "
                f"{_short(mine[h.size])}, the other {_short(h.root)}",
            )
    if a.last is None or b.last is None or a.last == b.last:
        return None
    return (a.last, b.last) if a.last.size < b.last.size else (b.last, a.last)


def check_pair(older: Head, newer: Head, proof: Sequence[bytes]) -> Alarm | None:
    """None if `proof` shows `older` is a prefix of `newer`; else a PROOF_FAILS alarm."""
    if older.size == 0:
        return None  # every log extends the empty one
    try:
        verify_consistency(
            older.size, newer.size, proof, bytes.fromhex(older.root), bytes.fromhex(newer.root)
        )
    except (BadPath, ValueError) as exc:
        return Alarm(
            Reason.PROOF_FAILS,
            f"split view: size {older.size} (root {_short(older.root)}) is not shown to be a "
            f"prefix of size {newer.size} (root {_short(newer.root)}): {exc}",
        )
    return None
