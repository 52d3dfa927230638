"""JSON Lines export: entry, checkpoint and end lines, to and from JSON (format in __init__)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff.core.audit import GENESIS, AuditEntry, format_time, parse_time
from signoff.core.checkpoints import (
    CheckpointLike,
    check_head,
    check_tree_head,
    key_id,
    make_checkpoint,
    sign_bytes,
    signed_document,
)
from signoff.core.witness import Cosignature, cosignature_json, parse_cosignature
from signoff.errors import DataLoss

ENTRY_FIELDS = (
    *("seq", "time", "type", "actor", "request_id", "decision_id", "review_id"),
    *("action_name", "outcome", "principal", "reviewer", "reviewer_group", "review_state"),
    *("rules", "policy_version", "payload", "prev_hash", "hash"),
)
_STRING_FIELDS = (
    *("type", "actor", "request_id", "decision_id", "review_id", "action_name", "outcome"),
    *("principal", "reviewer", "reviewer_group", "review_state", "policy_version"),
)
CHECKPOINT_FIELDS = ("seq", "head_hash", "time", "key_id", "signature")
TREE_FIELDS = ("tree_size", "root_hash")  # version 2 checkpoints only (core/checkpoints.py)
END_FIELDS = ("entries", "filtered", "digest", "checkpoint")
END_TYPE = "signoff.export"

_HASH = re.compile(r"[0-9a-f]{64}")


# -- entries ---------------------------------------------------------------------------------


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    """The entry line's object for `entry`: every input of its hash, and the hash."""
    return {
        "seq": entry.seq,
        "time": format_time(entry.time),
        "type": entry.type,
        "actor": entry.actor,
        "request_id": entry.request_id,
        "decision_id": entry.decision_id,
        "review_id": entry.review_id,
        "action_name": entry.action_name,
        "outcome": entry.outcome,
        "principal": entry.principal,
        "reviewer": entry.reviewer,
        "reviewer_group": entry.reviewer_group,
        "review_state": entry.review_state,
        "rules": list(entry.rules),
        "policy_version": entry.policy_version,
        "payload": entry.payload,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def entry_from_json(obj: Any) -> AuditEntry:
    """Parse an entry line's object; ValueError names the bad field (the hash is not checked)."""
    _check_keys(obj, ENTRY_FIELDS, "entry")
    seq = obj["seq"]
    if type(seq) is not int or seq < 1:
        raise ValueError(f"entry field 'seq': {seq!r} is not a positive integer")
    for name in _STRING_FIELDS:
        if not isinstance(obj[name], str):
            raise ValueError(f"entry seq {seq}: field {name!r} is not a string")
    rules = obj["rules"]
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        raise ValueError(f"entry seq {seq}: field 'rules' is not an array of strings")
    if not isinstance(obj["payload"], dict):
        raise ValueError(f"entry seq {seq}: field 'payload' is not an object")
    for name in ("prev_hash", "hash"):
        if not isinstance(obj[name], str) or not _HASH.fullmatch(obj[name]):
            raise ValueError(f"entry seq {seq}: field {name!r} is not 64 lowercase hex characters")
    fields = {name: obj[name] for name in _STRING_FIELDS}
    try:
        time = _time(obj["time"])
        return AuditEntry(
            **fields,
            time=time,
            rules=tuple(rules),
            payload=obj["payload"],
            seq=seq,
            prev_hash=obj["prev_hash"],
            hash=obj["hash"],
        )
    except ValueError as exc:
        raise ValueError(f"entry seq {seq}: {exc}") from None


def _time(text: Any) -> dt.datetime:
    # Exactly format_time's layout: parse_time alone would also take ".1Z" or 2-digit fractions.
    try:
        parsed = parse_time(text)
        if format_time(parsed) == text:
            return parsed
    except (TypeError, ValueError):
        pass
    raise ValueError(
        f"field 'time': {text!r} is not RFC 3339 UTC with six fractional digits "
        "(2024-05-01T12:00:00.000000Z)"
    )


def _check_keys(obj: Any, expected: tuple[str, ...], what: str) -> None:
    if not isinstance(obj, dict):
        raise ValueError(f"{what} is not a JSON object")
    for name in expected:
        if name not in obj:
            raise ValueError(f"{what} field {name!r} is missing")
    extra = sorted(set(obj) - set(expected))
    if extra:
        # A field outside the signed or hashed bytes would be unverifiable text in an
        # evidence file; refusing it keeps everything a reader sees covered.
        raise ValueError(f"{what} field {extra[0]!r} is not part of the format")


# -- checkpoints and the end line ------------------------------------------------------------


def checkpoint_json(cp: CheckpointLike) -> dict[str, Any]:
    """The object of a checkpoint line (and of an end line's `checkpoint`): a version 2
    checkpoint adds its tree head, a version 1 checkpoint is written as it always was."""
    out: dict[str, Any] = {
        "seq": cp.seq,
        "head_hash": cp.head_hash,
        "time": format_time(cp.time),
        "key_id": cp.key_id,
        "signature": cp.signature,
    }
    if root_hash := getattr(cp, "root_hash", ""):
        out["tree_size"] = getattr(cp, "tree_size", 0)
        out["root_hash"] = root_hash
    return out


def checkpoint_from_json(obj: Any, *, tree: bool = True) -> CheckpointLike:
    """Parse a checkpoint object (with a tree head only if `tree`: an end line signs none);
    ValueError names the bad field (the signature is not checked)."""
    v2 = tree and isinstance(obj, dict) and any(name in obj for name in TREE_FIELDS)
    _check_keys(obj, CHECKPOINT_FIELDS + TREE_FIELDS if v2 else CHECKPOINT_FIELDS, "checkpoint")
    try:
        check_head(obj["seq"], obj["head_hash"])
        for name in ("key_id", "signature"):
            if not isinstance(obj[name], str):
                raise ValueError(f"field {name!r} is not a string")
        time = _time(obj["time"])
        if v2:
            check_tree_head(obj["seq"], obj["tree_size"], obj["root_hash"])
    except ValueError as exc:
        raise ValueError(f"checkpoint: {exc}") from None
    return make_checkpoint(
        seq=obj["seq"],
        head_hash=obj["head_hash"],
        time=time,
        key_id=obj["key_id"],
        signature=obj["signature"],
        tree_size=obj["tree_size"] if v2 else 0,
        root_hash=obj["root_hash"] if v2 else "",
    )


COSIGNATURE_FIELDS = ("log_key_id", "tree_size", "root_hash", "time", "key_id", "signature")
MAX_COSIGNATURES = 32  # as the store keeps at most (store/cosignatures.py)


def cosignatures_from_json(value: Any) -> list[Cosignature]:
    """Parse a checkpoint line's `cosignatures` array; ValueError names the bad one (their
    signatures are checked by whoever holds the witnesses' keys)."""
    if not isinstance(value, list) or not 0 < len(value) <= MAX_COSIGNATURES:
        raise ValueError(f"cosignatures: not an array of 1-{MAX_COSIGNATURES} co-signatures")
    out = []
    for i, obj in enumerate(value):
        _check_keys(obj, COSIGNATURE_FIELDS, f"cosignatures[{i}]")
        if type(obj["tree_size"]) is not int:
            raise ValueError(f"cosignatures[{i}]: tree_size is not an integer")
        try:
            out.append(parse_cosignature(obj))
        except ValueError as exc:
            raise ValueError(f"cosignatures[{i}]: {exc}") from None
    return out


def end_bytes(cp: CheckpointLike, *, entries: int, filtered: bool, digest: str) -> bytes:
    """The bytes an end line's signature covers (`signoff.export` document, see __init__)."""
    return signed_document(
        END_TYPE,
        seq=cp.seq,
        head_hash=cp.head_hash,
        time=cp.time,
        key_id=cp.key_id,
        entries=entries,
        filtered=filtered,
        digest=digest,
    )


# -- lines -----------------------------------------------------------------------------------


def encode_line(obj: Any) -> bytes:
    """Compact UTF-8 JSON of `obj` and a newline (JSON escapes newlines inside strings)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8") + b"\n"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_line(line: bytes | str) -> Any:
    """Parse one line (its newline included or not); ValueError says why it is not JSON."""
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 at byte {exc.start}") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text.strip():
        raise ValueError("blank line")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at column {exc.colno}") from None


class ExportWriter:
    """Encodes one JSON Lines export, line by line, and signs its end (streaming: O(1) state)."""

    def __init__(self, key: Ed25519PrivateKey, *, filtered: bool) -> None:
        """Start an export signed with `key`; `filtered`: entries were selected by a filter."""
        self._key = key
        self._key_id = key_id(key.public_key())
        self.filtered = filtered
        self.entries = 0
        self._seq, self._hash = 0, GENESIS
        self._digest = hashlib.sha256()
        self._ended = False

    def entry(self, entry: AuditEntry) -> bytes:
        """The line for the next entry (ascending seq; gap-free unless filtered)."""
        self._check_open()
        if self.entries and entry.seq <= self._seq:
            raise ValueError(f"export out of order: seq {entry.seq} after seq {self._seq}")
        if self.entries and not self.filtered and entry.seq != self._seq + 1:
            # The store hands out seqs without gaps: a missing one is a lost row, not a bug
            # here. The caller gets DATA_LOSS naming it, not INTERNAL.
            first, last = self._seq + 1, entry.seq - 1
            missing = f"seq {first}" if first == last else f"seq {first} to {last}"
            raise DataLoss(
                f"the audit log is missing {missing} (seq {entry.seq} follows {self._seq}); "
                "entries were deleted from the database: run `signoff audit verify`"
            )
        self.entries += 1
        self._seq, self._hash = entry.seq, entry.hash
        self._digest.update(entry.hash.encode("ascii"))
        return encode_line(entry_json(entry))

    def checkpoint(self, cp: CheckpointLike, cosignatures: Sequence[Cosignature] = ()) -> bytes:
        """The line for a stored checkpoint of the entry just written, with the witnesses'
        co-signatures of its tree head when it has any."""
        self._check_open()
        # Only the position is checked: a checkpoint that no longer matches its entry is
        # evidence of a rewritten log, and is exported as stored for the verifier to report.
        if not self.entries or cp.seq != self._seq:
            raise ValueError(f"checkpoint at seq {cp.seq} does not follow its entry")
        line: dict[str, Any] = {"checkpoint": checkpoint_json(cp)}
        if cosignatures:
            line["cosignatures"] = [cosignature_json(cs) for cs in cosignatures]
        return encode_line(line)

    def end(self, time: dt.datetime) -> bytes:
        """The signed end line, made at `time` (now): no line may follow it."""
        self._check_open()
        self._ended = True
        digest = self._digest.hexdigest()
        head = {"seq": self._seq, "head_hash": self._hash, "time": time, "key_id": self._key_id}
        data = signed_document(
            END_TYPE, **head, entries=self.entries, filtered=self.filtered, digest=digest
        )
        cp = make_checkpoint(**head, signature=sign_bytes(self._key, data))
        end = {
            "entries": self.entries,
            "filtered": self.filtered,
            "digest": digest,
            "checkpoint": checkpoint_json(cp),
        }
        return encode_line({"end": end})

    def _check_open(self) -> None:
        if self._ended:
            raise ValueError("the export has ended")


def export_lines(
    entries: Iterable[AuditEntry],
    checkpoints: Iterable[CheckpointLike],
    key: Ed25519PrivateKey,
    *,
    filtered: bool,
    now: Callable[[], dt.datetime],
) -> Iterator[bytes]:
    """Every line of an export: entries (ascending), their checkpoints (ascending), the end."""
    writer = ExportWriter(key, filtered=filtered)
    cps = iter(checkpoints)
    cp = next(cps, None)
    for entry in entries:
        yield writer.entry(entry)
        # Checkpoints of entries the export skips (filtered out) are skipped with them.
        while cp is not None and cp.seq <= entry.seq:
            if cp.seq == entry.seq:
                yield writer.checkpoint(cp)
            cp = next(cps, None)
    # The end is signed last, after every entry was produced: its time is the export's.
    yield writer.end(now())
