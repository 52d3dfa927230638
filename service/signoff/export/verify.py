"""Offline verification of a JSON Lines export, streaming in flat memory (format in __init__)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from signoff.core import log_tree
from signoff.core.audit import GENESIS, AuditEntry, hash_matches
from signoff.core.checkpoints import CheckpointLike, TrustedKeys, verify_bytes
from signoff.core.witness import Cosignature
from signoff.export.lines import (
    END_FIELDS,
    checkpoint_from_json,
    cosignatures_from_json,
    decode_line,
    end_bytes,
    entry_from_json,
)
from signoff.export.witnessed import Witnesses, head_problem, quorum_problem

PROBLEMS = frozenset(
    {
        "changed",
        "missing",
        "reordered",
        "truncated",
        "bad signature",
        "checkpoint mismatch",
        "malformed",
        "not witnessed",
    }
)
PROGRESS_EVERY = 10_000  # lines between progress callbacks

_HASH = re.compile(r"[0-9a-f]{64}")


@dataclass(slots=True, kw_only=True)
class ExportReport:
    """What `verify_export` found: ok, or the first problem, where, and what was not checked."""

    ok: bool
    entries: int = 0  # entry lines read (reading stops soon after the first problem)
    checkpoints_verified: int = 0  # signature valid and matching the entry at its seq
    tree_heads_verified: int = 0  # version 2 roots recomputed from the entries and matching
    first_bad_seq: int = 0  # 0 when the problem is not about one entry
    first_bad_line: int = 0  # 1-based
    problem: str = ""  # one of PROBLEMS
    detail: str = ""
    head_seq: int = 0  # the last entry read before the problem (the last entry when ok)
    head_hash: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Problem:
    line: int
    seq: int
    problem: str
    detail: str
    head_seq: int
    head_hash: str


def verify_export(
    lines: Iterable[bytes],
    public_key: Ed25519PublicKey | Sequence[Ed25519PublicKey] | TrustedKeys | None,
    *,
    progress: Callable[[int], None] | None = None,
    witnesses: Witnesses | None = None,
) -> ExportReport:
    """Check an export's hashes, chain, checkpoints and end line; report the first problem.

    `public_key` is the trusted key, or several (the current one and those it rotated from):
    a checkpoint or end line signed by any other key id, or whose signature does not verify
    with the trusted key of its id, is a "bad signature". Without a key no signature is
    checked and `ok` covers hashes and links only (the report's notes say so).
    `progress` gets the number of lines read, every `PROGRESS_EVERY` lines and at the end.
    With `witnesses`, the newest checkpoint must also carry their quorum of co-signatures and
    the export must reach, with the same root, the trusted head (`export.witnessed`).
    """
    v = _Verifier(_trusted(public_key))
    v.witnesses = witnesses
    for raw in lines:
        v.line += 1
        if progress is not None and v.line % PROGRESS_EVERY == 0:
            progress(v.line)
        if v.hard is None:
            v.read(raw)
        elif v.chain is not None and v.end is None:
            # Which problem comes first depends on whether the export is filtered, which only
            # its last line says: read on, for that line only.
            v.seek_end(raw)
        if v.hard is not None and (v.chain is None or v.end is not None):
            break
    if progress is not None:
        progress(v.line)
    return v.report()


class _Verifier:
    """The state of one verification: O(1) in the size of the export."""

    def __init__(self, keys: TrustedKeys | None) -> None:
        self.key = keys
        self.line = 0
        self.entries = 0
        self.digest = hashlib.sha256()
        self.first_seq = 0
        self.last_seq, self.last_hash = 0, GENESIS  # the last entry line read
        self.expected, self.link = 0, GENESIS  # the chain as an unfiltered export continues it
        self.checkpoints = 0  # verified (signed, matching)
        self.matched_unsigned = 0  # matching the chain, signature not checked (no key)
        self.last_cp_seq = 0
        self.hard: _Problem | None = None  # the first problem whatever the export is
        self.chain: _Problem | None = None  # the first gap or misorder (unfiltered only)
        self.missing_at = 0  # seq after a gap: a smaller next seq makes the gap a swap
        self.end: dict[str, Any] | None = None
        # The log's Merkle tree, grown over the entries while they are the log from seq 1
        # without a gap: a version 2 checkpoint's root is then recomputed and compared. An
        # export of a range or a filter cannot show the tree (None).
        self.tree: log_tree.Frontier | None = log_tree.Frontier()
        self.tree_heads = 0  # version 2 roots recomputed and matching
        # The newest checkpoint line and its witnesses' co-signatures (for a quorum check).
        self.last_checkpoint: CheckpointLike | None = None
        self.last_cosignatures: list[Cosignature] = []
        self.witnesses: Witnesses | None = None
        self.root_at_trusted: str | None = None  # the tree's root at the trusted head's size

    # -- recording problems --

    def fail(self, problem: str, detail: str, seq: int = 0) -> None:
        if self.hard is None:
            self.hard = _Problem(self.line, seq, problem, detail, self.last_seq, self.last_hash)

    def chain_fail(self, problem: str, detail: str, seq: int) -> None:
        if self.chain is None:
            self.chain = _Problem(self.line, seq, problem, detail, self.last_seq, self.last_hash)

    # -- lines --

    def read(self, raw: bytes) -> None:
        try:
            obj = decode_line(raw)
        except ValueError as exc:
            self.fail("malformed", f"line {self.line}: {exc}")
            return
        if self.end is not None:
            self.fail("malformed", f"line {self.line}: a line after the end line")
        elif isinstance(obj, dict) and obj.keys() == {"checkpoint"}:
            self.read_checkpoint(obj["checkpoint"])
        elif isinstance(obj, dict) and obj.keys() == {"checkpoint", "cosignatures"}:
            try:
                cosigned = cosignatures_from_json(obj["cosignatures"])
            except ValueError as exc:
                self.fail("malformed", f"line {self.line}: {exc}")
                return
            self.read_checkpoint(obj["checkpoint"])
            self.last_cosignatures = cosigned
        elif isinstance(obj, dict) and obj.keys() == {"end"}:
            self.read_end(obj["end"])
        else:
            self.read_entry(obj)

    def seek_end(self, raw: bytes) -> None:
        try:
            obj = decode_line(raw)
        except ValueError:
            return
        if isinstance(obj, dict) and obj.keys() == {"end"}:
            self.read_end(obj["end"])

    def read_entry(self, obj: Any) -> None:
        try:
            entry = entry_from_json(obj)
        except ValueError as exc:
            self.fail("malformed", f"line {self.line}: {exc}")
            return
        self.entries += 1
        self.digest.update(entry.hash.encode("ascii"))
        self.check_order(entry)
        if not hash_matches(entry):  # the pre-0.2.0 number form too (core/audit.py)
            self.tree = None
            self.fail("changed", f"seq {entry.seq}: content does not match its hash", entry.seq)
            return
        if entry.seq == self.expected and entry.prev_hash != self.link:
            self.chain_fail(
                "reordered",
                f"seq {entry.seq}: prev_hash {entry.prev_hash[:12]}... is not the hash of seq "
                f"{entry.seq - 1} ({self.link[:12]}...): an entry was moved, removed or "
                "inserted here",
                entry.seq,
            )
        self.last_seq, self.last_hash = entry.seq, entry.hash
        self.expected, self.link = entry.seq + 1, entry.hash
        if self.tree is not None:
            leaf = log_tree.entry_leaf_hash(entry) if entry.seq == self.tree.size + 1 else None
            if leaf is None:
                self.tree = None
            else:
                self.tree.append(leaf)
                w = self.witnesses
                if w is not None and w.trusted_head and self.tree.size == w.trusted_head.size:
                    self.root_at_trusted = self.tree.root().hex()

    def check_order(self, entry: AuditEntry) -> None:
        """Record a gap or a step back; the chain resumes from this entry either way."""
        if not self.first_seq:
            self.first_seq = entry.seq
            # The first entry's link is checked only if it is the chain's first: an export of
            # a range cannot show the hash of the entry before it.
            self.expected = entry.seq
            self.link = GENESIS if entry.seq == 1 else entry.prev_hash
            return
        if self.missing_at:
            if entry.seq < self.missing_at and self.chain is not None:
                self.chain = _Problem(
                    self.chain.line,
                    self.chain.seq,
                    "reordered",
                    f"seq {self.missing_at} comes before seq {entry.seq}",
                    self.chain.head_seq,
                    self.chain.head_hash,
                )
            self.missing_at = 0
        if entry.seq < self.expected:
            self.chain_fail(
                "reordered", f"seq {entry.seq} follows seq {self.expected - 1}", entry.seq
            )
        elif entry.seq > self.expected:
            last = entry.seq - 1
            span = (
                f"seq {self.expected}" if last == self.expected else f"seq {self.expected}..{last}"
            )
            if self.chain is None:
                self.missing_at = entry.seq
            self.chain_fail("missing", f"{span} missing before seq {entry.seq}", self.expected)

    def read_checkpoint(self, obj: Any) -> None:
        try:
            cp = checkpoint_from_json(obj)
        except ValueError as exc:
            self.fail("malformed", f"line {self.line}: {exc}")
            return
        self.last_checkpoint, self.last_cosignatures = cp, []
        if self.key is not None and (problem := self.key.problem(cp)):
            self.fail("bad signature", problem, cp.seq)
            return
        if self.entries and cp.seq > self.last_seq:
            # In an unfiltered export this is a gap: its entry was removed with what follows.
            span = f"seq {self.last_seq + 1}" + (
                f"..{cp.seq}" if cp.seq > self.last_seq + 1 else ""
            )
            self.chain_fail(
                "missing",
                f"{span} missing before the checkpoint at seq {cp.seq}",
                self.last_seq + 1,
            )
        if not self.entries or cp.seq != self.last_seq:
            after = f"entry {self.last_seq}" if self.entries else "no entry"
            self.fail(
                "checkpoint mismatch",
                f"checkpoint at seq {cp.seq} is not right after its entry (it follows {after}): "
                "entries were removed or moved",
                cp.seq,
            )
        elif cp.head_hash != self.last_hash:
            self.fail(
                "checkpoint mismatch",
                f"checkpoint at seq {cp.seq} does not match the chain: it signed hash "
                f"{cp.head_hash[:12]}..., the entry has {self.last_hash[:12]}... "
                "(the log was rewritten after the checkpoint was signed)",
                cp.seq,
            )
        elif problem := self.tree_problem(cp):
            self.fail("checkpoint mismatch", problem, cp.seq)
        elif self.key is not None:
            self.checkpoints += 1
            self.last_cp_seq = cp.seq
        else:
            self.matched_unsigned += 1

    def tree_problem(self, cp: CheckpointLike) -> str:
        """Why `cp`'s signed tree head is not the tree of the entries read ("" if it is, or
        if it signs none, or the export cannot show the tree)."""
        root_hash = getattr(cp, "root_hash", "")
        if not root_hash or self.tree is None or self.tree.size != cp.seq:
            return ""
        found = self.tree.root().hex()
        if found != root_hash:
            return (
                f"checkpoint at seq {cp.seq} signs tree root {root_hash[:12]}..., the entries "
                f"give {found[:12]}... (the tree head does not match the log)"
            )
        self.tree_heads += 1
        return ""

    def read_end(self, obj: Any) -> None:
        try:
            end = _end_from_json(obj)
        except ValueError as exc:
            self.fail("malformed", f"line {self.line}: {exc}")
            return
        self.end = end
        cp: CheckpointLike = end["checkpoint"]
        if self.key is not None:
            data = end_bytes(
                cp, entries=end["entries"], filtered=end["filtered"], digest=end["digest"]
            )
            key = self.key.get(cp.key_id)
            if key is None or not verify_bytes(key, data, cp.signature):
                # An unsigned "filtered: true" must not switch the chain checks off.
                end["filtered"] = False
                self.fail("bad signature", _end_problem(self.key, cp, key is None), cp.seq)
                return
        if self.hard is not None:
            return  # seeking the filter flag only
        digest = self.digest.hexdigest()
        cut = self.last_seq + 1
        if cp.seq == self.last_seq and cp.head_hash == self.last_hash:
            if end["entries"] != self.entries:
                self.fail(
                    "missing",
                    f"the end line counts {end['entries']} entries, the file has "
                    f"{self.entries}: entries were removed",
                )
            elif end["digest"] != digest:
                self.fail(
                    "changed",
                    "the entries are not those exported (their digest differs from the signed "
                    "one): an entry was replaced, removed or moved",
                )
        elif cp.seq > self.last_seq:
            self.fail(
                "truncated",
                f"truncated: the end line covers {end['entries']} entries up to seq {cp.seq}, "
                f"the file has {self.entries} up to seq {self.last_seq}",
                cut,
            )
        else:
            self.fail(
                "changed",
                f"the end line covers {end['entries']} entries up to seq {cp.seq} (hash "
                f"{cp.head_hash[:12]}...), the file has {self.entries} up to seq "
                f"{self.last_seq} ({self.last_hash[:12]}...): entries were added or replaced",
                cp.seq,
            )

    # -- the result --

    def report(self) -> ExportReport:
        if self.end is None and self.hard is None:
            self.hard = _Problem(
                self.line + 1,  # where the end line should have been
                self.last_seq + 1,
                "truncated",
                "truncated: no end line (the export was cut short)",
                self.last_seq,
                self.last_hash,
            )
        filtered = bool(self.end and self.end["filtered"])
        # On the same line, a gap or misorder explains the rest (as in verify_chain): first.
        found = [p for p in (None if filtered else self.chain, self.hard) if p is not None]
        notes = self.notes(filtered)
        if not found and self.witnesses is not None and (problem := self.witness_problem()):
            found = [
                _Problem(self.line, 0, "not witnessed", problem, self.last_seq, self.last_hash)
            ]
        if not found:
            return ExportReport(
                ok=True,
                entries=self.entries,
                checkpoints_verified=self.checkpoints,
                tree_heads_verified=self.tree_heads,
                head_seq=self.last_seq,
                head_hash=self.last_hash,
                notes=notes,
            )
        first = min(found, key=lambda p: p.line)
        return ExportReport(
            ok=False,
            entries=self.entries,
            checkpoints_verified=self.checkpoints,
            first_bad_seq=first.seq,
            first_bad_line=first.line,
            problem=first.problem,
            detail=first.detail,
            head_seq=first.head_seq,
            head_hash=first.head_hash,
            notes=notes,
        )

    def witness_problem(self) -> str:
        """Why the witnesses do not vouch for this export ("" when they do)."""
        assert self.witnesses is not None
        head = self.witnesses.trusted_head
        if head is not None and (
            problem := head_problem(head, self.last_seq, self.root_at_trusted)
        ):
            return problem
        return quorum_problem(self.witnesses, self.last_checkpoint, self.last_cosignatures)

    def notes(self, filtered: bool) -> list[str]:
        notes: list[str] = []
        if self.end is None:
            notes.append("no end line: read as an unfiltered export")
        if filtered:
            notes.append(
                "filtered export: each entry's hash and the signatures were checked; links "
                "and gaps between entries were not (the signed end digest covers the selection)"
            )
        elif self.first_seq > 1:
            notes.append(
                f"the export starts at seq {self.first_seq}: entries before it are not covered"
            )
        if self.key is None:
            notes.append(
                "no public key: signatures were not checked; ok covers hashes and links only"
                + (
                    f" ({self.matched_unsigned} checkpoints match the chain)"
                    if self.matched_unsigned
                    else ""
                )
            )
        elif self.entries and self.last_seq > self.last_cp_seq:
            since = f"after seq {self.last_cp_seq}" if self.last_cp_seq else "in this file"
            notes.append(
                f"entries {since} have no stored checkpoint here: only the export's own "
                "end signature (made at export time) vouches for them"
            )
        return notes


def _trusted(
    keys: Ed25519PublicKey | Sequence[Ed25519PublicKey] | TrustedKeys | None,
) -> TrustedKeys | None:
    if keys is None or isinstance(keys, TrustedKeys):
        return keys
    return TrustedKeys([keys] if isinstance(keys, Ed25519PublicKey) else keys)


def _end_problem(keys: TrustedKeys, cp: CheckpointLike, unknown: bool) -> str:
    if unknown:
        return keys.problem(cp, "end line")  # names the untrusted key id
    return (
        f"end line at seq {cp.seq}: the signature does not verify with trusted key "
        f"{cp.key_id} (forged or altered)"
    )


def _end_from_json(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError("the end line's 'end' is not a JSON object")
    for name in END_FIELDS:
        if name not in obj:
            raise ValueError(f"end field {name!r} is missing")
    extra = sorted(set(obj) - set(END_FIELDS))
    if extra:
        raise ValueError(f"end field {extra[0]!r} is not part of the format")
    if type(obj["entries"]) is not int or obj["entries"] < 0:
        raise ValueError("end field 'entries' is not a non-negative integer")
    if type(obj["filtered"]) is not bool:
        raise ValueError("end field 'filtered' is not true or false")
    if not isinstance(obj["digest"], str) or not _HASH.fullmatch(obj["digest"]):
        raise ValueError("end field 'digest' is not 64 lowercase hex characters")
    try:
        cp = checkpoint_from_json(obj["checkpoint"], tree=False)
    except ValueError as exc:
        raise ValueError(f"end {exc}") from None
    return {**obj, "checkpoint": cp}
