"""The audit log's data model, canonical encoding and hash chain (pure: no I/O).

Encoding contract (version 1) -- auditors re-implement this to verify an export:

* Each entry is hashed over one JSON object holding every field except ``hash``:
  ``action_name, actor, decision_id, outcome, payload, policy_version, prev_hash, principal,
  request_id, review_id, review_state, reviewer, reviewer_group, rules, seq, time, type`` and
  ``v`` (the encoding version, the number 1). Absent values are ``""``; ``rules`` is an array of
  strings in decision order; ``payload`` is a JSON object; ``seq`` is an integer.
* The object is serialized with RFC 8785 (JSON Canonicalization Scheme): keys sorted by their
  UTF-16 code units, no whitespace, UTF-8, strings escaped minimally (``\\"``, ``\\\\``,
  ``\\b \\f \\n \\r \\t``, other control characters as lowercase ``\\u00xx``, everything
  else literal), numbers as ECMAScript's ``Number.prototype.toString`` (``1.0`` -> ``1``,
  ``2.0**60`` -> ``1152921504606847000``, ``1e21`` -> ``1e+21``, ``1e-7`` -> ``1e-7``, ``-0``
  -> ``0``). NaN, infinities, integers that denote no IEEE-754 double, lone surrogates and
  non-string keys are rejected.
* Entries written before signoff 0.2.0 may hold an integral number above 2**53 in its exact
  integer digits (``1152921504606846976``); `hash_matches` accepts that form when the exact
  one fails (`signoff_client.canonical.legacy_canonical_json` says which text it was).
* ``time`` is RFC 3339 in UTC with exactly six fractional digits and ``Z``:
  ``2024-05-01T12:00:00.000000Z``.
* ``hash = hex(sha256(ascii(prev_hash) || canonical_bytes))`` (lowercase hex). The first entry
  (``seq`` 1) has ``prev_hash`` = ``GENESIS`` (64 zeros); entry *n* has the hash of entry *n-1*.

Any change of a field, deletion or reordering of entries therefore breaks either an entry's own
hash or the link to its predecessor, which `verify_chain` reports.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from signoff.errors import InvalidArgument
from signoff_client.canonical import (
    canonical_json,  # noqa: F401 -- re-exported: the tests and auditors' tools import it here
    canonical_json_plain,
    check_unicode,
    legacy_canonical_json,
)

GENESIS = "0" * 64
ENCODING_VERSION = 1

ENTRY_TYPES = frozenset(
    {
        "decision",
        "review.opened",
        "review.approved",
        "review.modified",
        "review.rejected",
        "review.expired",
        "review.escalated",
        "review.cancelled",
        "policy.loaded",
        "policy.rejected",
        "access.denied",
        "grant.created",
        "grant.revoked",
    }
)
OUTCOMES = frozenset({"", "AUTO_ALLOW", "REQUIRE_REVIEW", "DENY"})


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    """What the application asks to append; the store adds seq and the chain hashes."""

    type: str
    time: dt.datetime
    actor: str = ""
    request_id: str = ""
    decision_id: str = ""
    review_id: str = ""
    action_name: str = ""
    outcome: str = ""
    principal: str = ""
    reviewer: str = ""
    reviewer_group: str = ""
    review_state: str = ""
    rules: tuple[str, ...] = ()
    policy_version: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)
    # The entry's canonical encoding, built once here (so that a bad record fails at the
    # caller, not inside the store's write batch) and carried to the store, which only
    # splices in the chain position (`canonical_bytes`) and stores these texts as they are:
    # canonical JSON of `payload`, of `rules`, and `time` as `format_time` writes it.
    payload_json: str = field(init=False, repr=False, compare=False)
    rules_json: str = field(init=False, repr=False, compare=False)
    time_text: str = field(init=False, repr=False, compare=False)
    # The canonical bytes around the payload, prev_hash and seq (see `_frame`).
    frame: tuple[bytes, bytes, bytes, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.type not in ENTRY_TYPES:
            raise ValueError(f"audit type {self.type!r} is not one of {sorted(ENTRY_TYPES)}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"audit outcome {self.outcome!r} is not one of {sorted(OUTCOMES)}")
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError("audit time must be timezone-aware")
        if not isinstance(self.payload, Mapping):
            raise ValueError("audit payload must be a JSON object")
        rules = tuple(self.rules)
        if not all(isinstance(r, str) for r in rules):
            raise ValueError("audit rules must be strings")
        # `plain` is the payload as it reads back from storage, so that an entry read back
        # compares equal to the one appended (made by the encoding's own walk, not a parse).
        text, plain = canonical_json_plain(self.payload)
        time = self.time.astimezone(dt.UTC)
        object.__setattr__(self, "time", time)
        object.__setattr__(self, "rules", rules)
        object.__setattr__(self, "payload", plain)
        object.__setattr__(self, "payload_json", text.decode("utf-8"))
        object.__setattr__(self, "time_text", format_time(time))
        frame, rules_json = _frame(self)
        object.__setattr__(self, "frame", frame)
        object.__setattr__(self, "rules_json", rules_json)

    def _strings(self) -> tuple[str, ...]:
        return (
            *(self.type, self.actor, self.request_id, self.decision_id, self.review_id),
            *(self.action_name, self.principal, self.reviewer, self.reviewer_group),
            *(self.review_state, self.policy_version),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry(AuditRecord):
    """An appended record: its position in the log and its place in the hash chain."""

    seq: int
    prev_hash: str
    hash: str


_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(AuditRecord))


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of walking a chain: ok, or the first bad entry and what is wrong with it."""

    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int = 0
    problem: str = ""  # "changed" | "missing" | "reordered"
    detail: str = ""


def format_time(t: dt.datetime) -> str:
    """Return `t` as RFC 3339 UTC with microseconds and 'Z' (the encoding's time format)."""
    if t.tzinfo is not dt.UTC:
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError("time must be timezone-aware")
        t = t.astimezone(dt.UTC)
    # isoformat, not strftime (half the cost, and it runs several times per decision): the
    # same text, "+00:00" cut for "Z". Its year is padded to four digits, as SQLite's text
    # comparisons need (a request's window can start before year 1000, and strftime wrote
    # year 500 as "500", which sorts after "2026").
    return t.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_time(text: str) -> dt.datetime:
    """Parse a time written by `format_time`."""
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


_PAYLOAD_AT = b',"policy_version":'
_PREV_HASH_AT = b',"prev_hash":"'
_RULES_AT = b',"rules":'
_SEQ_AT = b',"seq":'


def _frame(record: AuditRecord) -> tuple[tuple[bytes, bytes, bytes, bytes], str]:
    """The record's canonical header cut where the payload, prev_hash and seq go, and its
    rules' canonical JSON (the text the header holds for them)."""
    header = {
        "action_name": record.action_name,
        "actor": record.actor,
        "decision_id": record.decision_id,
        "outcome": record.outcome,
        "policy_version": record.policy_version,
        "prev_hash": "",
        "principal": record.principal,
        "request_id": record.request_id,
        "review_id": record.review_id,
        "review_state": record.review_state,
        "reviewer": record.reviewer,
        "reviewer_group": record.reviewer_group,
        "rules": list(record.rules),
        "seq": 0,
        "time": record.time_text,
        "type": record.type,
        "v": ENCODING_VERSION,
    }
    # Every header value is a string, a small int or a list of strings and every key is
    # ASCII: for those orjson writes RFC 8785 exactly (the same escapes and key order), at a
    # tenth of json.dumps' cost. It refuses lone surrogates (TypeError).
    try:
        head = orjson.dumps(header, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        check_unicode("".join(record._strings()) + "".join(record.rules))
        raise ValueError(f"audit entry header: {exc}") from None
    # The cuts are found by key: every value before them is an escaped string, which holds
    # no bare '"', so no value can fake one. "payload" sorts between "outcome" and
    # "policy_version"; prev_hash is written empty and seq as 0, both replaced when sealed.
    payload_at = head.index(_PAYLOAD_AT)
    prev_at = head.index(_PREV_HASH_AT, payload_at) + len(_PREV_HASH_AT)
    rules_at = head.index(_RULES_AT, prev_at) + len(_RULES_AT)
    seq_at = head.index(_SEQ_AT, rules_at) + len(_SEQ_AT)
    frame = (
        head[:payload_at] + b',"payload":',
        head[payload_at:prev_at],
        head[prev_at:seq_at],
        head[seq_at + 1 :],  # after the placeholder seq's one digit
    )
    return frame, head[rules_at : seq_at - len(_SEQ_AT)].decode("utf-8")


def canonical_bytes(
    record: AuditRecord, *, seq: int, prev_hash: str, payload_json: str | None = None
) -> bytes:
    """Return the canonical encoding of `record` at position `seq` after `prev_hash`.

    `payload_json` replaces the record's own canonical payload text (the pre-0.2.0 number
    form, when an old entry is verified)."""
    # The record built everything else once; only the chain position is spliced in here.
    before, middle, after_prev, tail = record.frame
    payload = (record.payload_json if payload_json is None else payload_json).encode("utf-8")
    if prev_hash.isascii() and prev_hash.isalnum():
        prev = prev_hash.encode("ascii")
    else:  # not a hash (a damaged row): escaped as JSON, as any string is
        prev = orjson.dumps(prev_hash)[1:-1]
    position = b"%d" % seq
    return b"".join((before, payload, middle, prev, after_prev, position, tail))


def entry_hash(
    record: AuditRecord, *, seq: int, prev_hash: str, payload_json: str | None = None
) -> str:
    """Return the chain hash of `record` at position `seq` after `prev_hash`."""
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical_bytes(record, seq=seq, prev_hash=prev_hash, payload_json=payload_json))
    return digest.hexdigest()


def hash_matches(entry: AuditEntry) -> bool:
    """True if `entry.hash` is the hash of its content, as written now or before 0.2.0.

    Up to 0.1.x an integral float above 2**53 in a payload could be hashed as its exact
    integer (`signoff_client.canonical.legacy_canonical_json`); such an entry reads back with
    that integer and verifies in that form. Tried only when the exact form fails, and only
    for a payload that has one: an intact log costs nothing more. Both forms name the same
    numbers, so accepting either vouches for the same content.
    """
    if entry_hash(entry, seq=entry.seq, prev_hash=entry.prev_hash) == entry.hash:
        return True
    legacy = legacy_canonical_json(entry.payload)
    return legacy is not None and entry.hash == entry_hash(
        entry, seq=entry.seq, prev_hash=entry.prev_hash, payload_json=legacy
    )


def seal(record: AuditRecord, *, seq: int, prev_hash: str) -> AuditEntry:
    """Return `record` as the entry at `seq` chained after `prev_hash`."""
    digest = entry_hash(record, seq=seq, prev_hash=prev_hash)
    # Copy the fields instead of calling the constructor: `record` was validated and
    # normalized when it was built, and re-encoding its payload would double the writer's work.
    entry = object.__new__(AuditEntry)
    for name in _RECORD_FIELDS:
        object.__setattr__(entry, name, getattr(record, name))
    object.__setattr__(entry, "seq", seq)
    object.__setattr__(entry, "prev_hash", prev_hash)
    object.__setattr__(entry, "hash", digest)
    return entry


def verify_chain(
    entries: Iterable[AuditEntry], prev_hash: str = GENESIS, expected_first_seq: int = 1
) -> VerifyResult:
    """Check `entries` are intact, gap-free and chained on from `prev_hash` at the given seq."""
    it: Iterator[AuditEntry] = iter(entries)
    expected, head_hash, checked = expected_first_seq, prev_hash, 0

    def bad(seq: int, problem: str, detail: str) -> VerifyResult:
        return VerifyResult(False, checked, expected - 1, head_hash, seq, problem, detail)

    for entry in it:
        if entry.seq < expected:
            return bad(entry.seq, "reordered", f"seq {entry.seq} follows seq {expected - 1}")
        if entry.seq > expected:
            # One entry of lookahead tells a swap ([.., 4, 3]) from a hole ([.., 4, 5]).
            nxt = next(it, None)
            if nxt is not None and nxt.seq < entry.seq:
                return bad(expected, "reordered", f"seq {entry.seq} comes before seq {nxt.seq}")
            last = entry.seq - 1
            span = f"seq {expected}" if last == expected else f"seq {expected}..{last}"
            return bad(expected, "missing", f"{span} missing before seq {entry.seq}")
        if not hash_matches(entry):
            return bad(entry.seq, "changed", f"seq {entry.seq}: content does not match its hash")
        if entry.prev_hash != head_hash:
            return bad(
                entry.seq,
                "reordered",
                f"seq {entry.seq}: prev_hash {entry.prev_hash[:12]}... is not the hash of "
                f"seq {expected - 1} ({head_hash[:12]}...): an entry was moved, removed or "
                "inserted here",
            )
        checked += 1
        expected, head_hash = entry.seq + 1, entry.hash
    return VerifyResult(True, checked, expected - 1, head_hash)


def entry_size(record: AuditRecord) -> int:
    """The canonical size of `record` as an entry, in bytes (to within the seq's digits)."""
    payload = len(record.payload_json.encode("utf-8"))
    # As encoded at seq 0 (one digit) after a 64-character hash, plus 20 for a longer seq.
    return sum(len(part) for part in record.frame) + payload + 64 + 1 + 20


def check_entry_size(records: Iterable[AuditRecord], limit: int) -> None:
    """Raise InvalidArgument if any record would be an entry larger than `limit` bytes.

    Called before anything is stored: an entry larger than a read can return would make every
    page and export that holds it fail for good."""
    for record in records:
        # Exact and cheap: the record holds its encoding already (`frame`).
        size = entry_size(record)
        if size > limit:
            raise InvalidArgument(
                "request",
                f"its audit entry would be {size // 1024} KiB, over the {limit // 1024} KiB "
                "limit (limits.fields.max_audit_entry_bytes); send references, not content",
            )


def check_row_size(what: str, row: bytes, limit: int) -> None:
    """Raise InvalidArgument if a stored row (a review) would be larger than `limit` bytes:
    reads return rows whole, so a larger one could never be read back."""
    if len(row) > limit:
        raise InvalidArgument(
            "request",
            f"the {what} would be {len(row) // 1024} KiB, over the {limit // 1024} KiB limit "
            "(limits.fields.max_audit_entry_bytes)",
        )
