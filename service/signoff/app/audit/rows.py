"""Rows that decide, checked against the audit entries that wrote them (pure: no I/O).

The hash chain protects the audit log, but decisions are served from other tables: a review's
row (its outcome and receipt), a grant's row (what it allows), the decision row (what a
replay returns) and the rule index (what `rule=` queries find). Anyone who can write the
database file can change those rows without touching the chain. So every row is compared
with the entry that recorded it: the latest ``review.*`` entry of a review, the
``grant.created`` / ``grant.revoked`` entries of a grant, the ``decision`` entry of a
decision, the ``rules`` of each entry. A difference is a `Mismatch` naming the table, the
row's key and the field; callers refuse to act on such a row (and `audit verify` reports it).

New entries carry a SHA-256 of the whole stored message (``review_digest`` of a review,
``grant_digest`` of a grant), so any change of the row's message shows; the columns the
queries filter on (state, version, group...) are compared one by one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from signoff import pb
from signoff.core import reviews
from signoff.core.audit import ENTRY_TYPES, AuditEntry
from signoff.store.base import DecisionRecord, ReviewRecord
from signoff.store.grants_sql import GrantRecord

REVIEW_TYPES = tuple(sorted(t for t in ENTRY_TYPES if t.startswith("review.")))
GRANT_TYPES = ("grant.created", "grant.revoked")


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A row that disagrees with the audit log: which table, row and field, and how."""

    table: str  # "reviews" | "grants" | "decisions" | "audit_rules"
    key: str  # the row's key: review_id, grant_id, decision_id, "rule@seq"
    field: str
    row: str  # what the row says
    chain: str  # what the audit log says
    seq: int = 0  # the entry the row was compared with (0: none found)

    def __str__(self) -> str:
        where = f" (seq {self.seq})" if self.seq else ""
        return (
            f"{self.table} row {self.key}: {self.field} is {self.row} in the row but "
            f"{self.chain} in the audit log{where}: the row was changed outside signoff"
        )


def digest(data: bytes) -> str:
    """The hex SHA-256 of a stored message, as entries record it."""
    return hashlib.sha256(data).hexdigest()


def _first(
    table: str, key: str, seq: int, pairs: Iterable[tuple[str, Any, Any]]
) -> Mismatch | None:
    for name, row, chain in pairs:
        if row != chain:
            return Mismatch(table, key, name, _show(row), _show(chain), seq)
    return None


def _show(v: Any) -> str:
    if isinstance(v, str) and len(v) == 64:
        return f"{v[:12]}..."  # a digest: enough to tell them apart
    return repr(v) if isinstance(v, str) else str(v)


def latest_review_entries(entries: Iterable[AuditEntry]) -> dict[str, AuditEntry]:
    """The latest ``review.*`` entry of each review among `entries`."""
    out: dict[str, AuditEntry] = {}
    for e in entries:
        if e.type not in REVIEW_TYPES or not e.review_id:
            continue
        if e.review_id not in out or out[e.review_id].seq < e.seq:
            out[e.review_id] = e
    return out


def review_mismatch(rec: ReviewRecord, entry: AuditEntry | None) -> Mismatch | None:
    """How the review row `rec` differs from its latest ``review.*`` entry (None: it agrees)."""
    key = rec.review_id
    if entry is None:
        return Mismatch("reviews", key, "its audit entry", f"state {rec.state}", "absent")
    try:
        r = pb.review.Review.FromString(rec.review)
    except DecodeError:
        return Mismatch("reviews", key, "review", "undecodable", "a review", entry.seq)
    p: Mapping[str, Any] = entry.payload
    pairs: list[tuple[str, Any, Any]] = [
        ("state", rec.state, entry.review_state),
        ("review.state", reviews.state_name(r.state), entry.review_state),
        ("version", rec.version, p.get("version")),
        ("review.version", r.version, p.get("version")),
        ("reviewer_group", rec.reviewer_group, entry.reviewer_group),
        ("decision_id", rec.decision_id, entry.decision_id),
        ("principal_id", rec.principal_id, entry.principal),
        ("action_name", rec.action_name, entry.action_name),
        ("review.review_id", r.review_id, key),
        ("review.final_digest", r.final_digest, p.get("final_digest", "")),
        ("review.action_digest", r.action_digest, p.get("action_digest", "")),
    ]
    if "review_digest" in p:  # entries written since the digest was added: the whole message
        pairs.append(("review (sha256)", digest(rec.review), p["review_digest"]))
    return _first("reviews", key, entry.seq, pairs)


def granted_with(g: GrantRecord) -> str:
    """The review a grant was granted with (its entries are filed under it); "" if unreadable."""
    try:
        return pb.review.Grant.FromString(g.grant).review_id
    except DecodeError:
        return ""  # then no grant.created entry is found, and the grant disagrees


def grant_mismatch(rec: GrantRecord, entries: Sequence[AuditEntry]) -> Mismatch | None:
    """How the grant row `rec` differs from its ``grant.created``/``grant.revoked`` entries."""
    key = rec.grant_id
    mine = [e for e in entries if e.type in GRANT_TYPES and e.payload.get("grant_id") == key]
    created = next((e for e in mine if e.type == "grant.created"), None)
    revoked = next((e for e in mine if e.type == "grant.revoked"), None)
    if created is None:
        return Mismatch("grants", key, "its grant.created entry", "a grant", "absent")
    p = created.payload
    try:
        expires: Any = dt.datetime.fromisoformat(str(p.get("expires_at")))
    except ValueError:
        expires = p.get("expires_at")
    pairs: list[tuple[str, Any, Any]] = [
        ("reviewer_group", rec.reviewer_group, created.reviewer_group),
        ("action_name", rec.action_name, created.action_name),
        ("policy", rec.policy, p.get("policy")),
        ("rule", rec.rule, p.get("rule")),
        ("principal_id", rec.principal_id, p.get("principal_id")),
        ("max_uses", rec.max_uses, p.get("max_uses")),
        ("created_by", rec.created_by, created.actor),
        ("created_at", rec.created_at, created.time),
        ("expires_at", rec.expires_at, expires),
    ]
    if "grant_digest" in p:
        pairs.append(("grant_pb (sha256)", digest(rec.grant), p["grant_digest"]))
    if (found := _first("grants", key, created.seq, pairs)) is not None:
        return found
    if revoked is not None and rec.revoked_at is None:
        when = f"revoked by {revoked.actor!r}"
        return Mismatch("grants", key, "revoked_at", "NULL (active)", when, revoked.seq)
    if revoked is None and rec.revoked_at is not None:
        return Mismatch("grants", key, "revoked_at", str(rec.revoked_at), "not revoked")
    return None


def grant_uses_mismatch(rec: GrantRecord, used: int, seq: int) -> Mismatch | None:
    """A grant row counting fewer uses than the decisions that used it (a reset counter)."""
    # More uses than decisions is possible (PostgreSQL: a retry on another replica can win
    # the idempotency key after the use counted); fewer only if somebody reset the counter.
    if rec.uses < used:
        return Mismatch("grants", rec.grant_id, "uses", str(rec.uses), f"{used} decisions", seq)
    return None


def decision_mismatch(rec: DecisionRecord, entry: AuditEntry | None) -> Mismatch | None:
    """How the decision row `rec` differs from its ``decision`` entry (None: it agrees)."""
    key = rec.decision_id
    if entry is None:
        return Mismatch("decisions", key, "its decision entry", f"outcome {rec.outcome}", "absent")
    try:
        d = pb.common.Decision.FromString(rec.decision)
    except DecodeError:
        return Mismatch("decisions", key, "decision", "undecodable", "a decision", entry.seq)
    recorded = entry.payload.get("decision", {})
    recorded = recorded if isinstance(recorded, Mapping) else {}
    outcome = pb.common.Outcome.Name(d.outcome).removeprefix("OUTCOME_")
    return _first(
        "decisions",
        key,
        entry.seq,
        [
            ("outcome", rec.outcome.removeprefix("OUTCOME_"), entry.outcome),
            ("decision.outcome", outcome, entry.outcome),
            ("decision.decision_id", d.decision_id, key),
            ("principal_id", rec.principal_id, entry.principal),
            ("request_id", rec.request_id, entry.request_id),
            ("action_name", rec.action_name, entry.action_name),
            ("decision.review_id", d.review_id, recorded.get("review_id", "")),
            ("decision.reviewer_group", d.reviewer_group, recorded.get("reviewer_group", "")),
        ],
    )


def rules_mismatch(
    entries: Sequence[AuditEntry], index: Iterable[tuple[int, str]]
) -> Mismatch | None:
    """The first (seq, rule) where the rule index and the entries' ``rules`` disagree."""
    want = {(e.seq, rule) for e in entries for rule in e.rules}
    have = set(index)
    missing, extra = min(want - have, default=None), min(have - want, default=None)
    if missing is not None and (extra is None or missing <= extra):
        seq, rule = missing
        return Mismatch("audit_rules", _rule_key(seq, rule), "row", "absent", "a match", seq)
    if extra is not None:
        seq, rule = extra
        return Mismatch("audit_rules", _rule_key(seq, rule), "row", "present", "no match", seq)
    return None


def _rule_key(seq: int, rule: str) -> str:
    return f"(rule {rule!r}, seq {seq})"
