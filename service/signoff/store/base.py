"""The storage Protocol every backend (SQLite, PostgreSQL) implements, and its records.

Contract shared by all backends (and checked by the one behavioural suite in tests/store):

* A write is acknowledged (its awaitable returns) only after its transaction committed
  durably; a decision row and its audit entry commit together or not at all.
* Audit entries get gap-free ``seq`` numbers 1, 2, 3... in commit order and are hash-chained
  (`signoff.core.audit`); no code path updates or deletes them.
* Database failures raise `signoff.errors.Unavailable` ("audit store unavailable: ...");
  nothing that raised was stored, so the call may be retried (idempotently, by request_id).
* A review is opened only together with its decision (`record_decision`) and changes only by
  a conditional update (`update_review`: ``WHERE version = expected``) committed with its
  audit entries; of two updates from the same version exactly one wins. A resolved review
  (state other than PENDING) is immutable and no review is ever deleted -- the database
  refuses both, whatever code path tries.
* The Merkle tree over the audit log (core/log_tree.py) holds exactly entries 1..tree_size;
  its rows never change. A version 2 checkpoint signs a tree head only within it.
* `query_audit` pages by seq (keyset), so paging while entries are appended neither repeats
  nor skips one; checkpoints only move forward, never past the head, and are never changed.
* `subscribe_reviews` callbacks run on the event loop after a review change committed -- in
  this process, or for a shared database on any replica. Delivery is best effort (a dropped
  listener connection loses some): consumers re-read periodically, the feed only hurries them.
* `use_nonces` is one atomic check-and-insert: of calls racing with one key, in any processes
  on one database, exactly one is told the key was unused (store/notify_state.py).
* `try_lead(name)` is true in at most one process per database at a time (modulo the moment
  a dead holder's connection takes to drop); jobs run under it must still be idempotent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from signoff.core.audit import AuditEntry, AuditRecord
from signoff.core.checkpoints import Checkpoint
from signoff.core.witness import Cosignature
from signoff.errors import AlreadyExists
from signoff.store.grants_sql import GrantRecord
from signoff.store.notify_state import NotifyState


class CheckpointSuperseded(ValueError):
    """A checkpoint at this seq or past it is stored already: with replicas on one database,
    another one signed first. Expected, not a failure: the log is anchored either way."""

    def __init__(self, seq: int, last: int) -> None:
        super().__init__(f"checkpoint seq {seq} must be greater than the last one ({last})")
        self.seq = seq
        self.last = last


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionRecord:
    """A stored decision, keyed for idempotency by (principal_id, request_id)."""

    decision_id: str
    principal_id: str
    request_id: str  # "" = no idempotency key
    request_digest: str  # hex sha256 of the request's deterministic serialization
    action_name: str
    outcome: str
    created_at: dt.datetime
    decision: bytes  # serialized signoff.v1.Decision; opaque to the store
    # Not a column: a receipt payload to seal with the write batch (store/sealing.py); the
    # stored `decision` is then these bytes with the sealed receipt appended.
    receipt_leaf: bytes = b""


REVIEW_STATES = frozenset({"PENDING", "APPROVED", "MODIFIED", "REJECTED", "EXPIRED", "CANCELLED"})
# Resolved with an outcome somebody (or the rule's on_timeout) decided; CANCELLED is a
# withdrawal, not a decision. The SQL of `decided_reviews` and its index spell the same list.
DECIDED_STATES = ("APPROVED", "MODIFIED", "REJECTED", "EXPIRED")
# The indexed audit columns `audit_by_ids` looks entries up by.
ENTRY_ID_COLUMNS = ("review_id", "decision_id")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewRecord:
    """A stored review; `review` is the serialized signoff.v1.Review, opaque to the store."""

    review_id: str
    decision_id: str
    principal_id: str
    on_behalf_of: str
    action_name: str
    reviewer_group: str
    state: str  # one of REVIEW_STATES
    version: int  # 1 when opened; +1 on every change
    created_at: dt.datetime
    updated_at: dt.datetime
    expires_at: dt.datetime | None
    review: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewQuery:
    """Which reviews `list_reviews` returns, in which order, from which cursor."""

    groups: tuple[str, ...] = ()  # empty = every group
    states: tuple[str, ...] = ("PENDING",)  # empty = every state
    action_glob: str = ""  # "" = all; '*' matches any characters, dots included
    created_before: dt.datetime | None = None  # only reviews created before this (age filter)
    principal_id: str = ""  # only reviews requested by this principal
    newest_first: bool = False
    # (created_at, review_id) of the last row of the previous page; rows strictly after it.
    after: tuple[dt.datetime, str] | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupBacklog:
    """The pending reviews of one reviewer group: how many, since when, the next deadline."""

    reviewer_group: str
    pending: int
    oldest_created_at: dt.datetime
    next_expires_at: dt.datetime | None  # None when none of them expires


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditQuery:
    """Filters of an audit query; empty values do not filter."""

    since: dt.datetime | None = None  # time >= since
    until: dt.datetime | None = None  # time < until
    types: tuple[str, ...] = ()
    action_glob: str = ""  # '*' matches any characters incl. dots; case-sensitive
    outcomes: tuple[str, ...] = ()  # "AUTO_ALLOW" | "REQUIRE_REVIEW" | "DENY"
    principal: str = ""
    reviewer: str = ""
    reviewer_group: str = ""
    rule: str = ""  # entries whose matched rules include it (audit_rules)
    review_state: str = ""
    policy_version: str = ""
    decision_id: str = ""
    review_id: str = ""
    request_id: str = ""
    from_seq: int = 0  # seq >= from_seq (0 = no bound)
    to_seq: int = 0  # seq <= to_seq (0 = no bound)


def check_decision_audit(rec: DecisionRecord, audit: AuditRecord) -> None:
    """Refuse an audit record that names a decision other than `rec` (ValueError)."""
    if audit.decision_id and audit.decision_id != rec.decision_id:
        raise ValueError("the audit record belongs to another decision")


def check_opened_review(
    rec: DecisionRecord, review: ReviewRecord | None, review_audit: AuditRecord | None
) -> None:
    """Refuse a review that cannot be opened with decision `rec` (ValueError)."""
    if review is None:
        if review_audit is not None:
            raise ValueError("review_audit given without a review")
        return
    if review_audit is None:
        raise ValueError("a review is opened with its review.opened audit record")
    if review.decision_id != rec.decision_id:
        raise ValueError("the review belongs to another decision")
    if review.state != "PENDING" or review.version != 1:
        raise ValueError("a review is opened PENDING at version 1")
    if review_audit.review_id and review_audit.review_id != review.review_id:
        raise ValueError("the review audit record belongs to another review")


def check_replay(stored: DecisionRecord, rec: DecisionRecord) -> DecisionRecord:
    """Return `stored`, found under `rec`'s idempotency key, if it answers the same request.

    AlreadyExists if the key was used for a different request (another digest).
    """
    if stored.request_digest != rec.request_digest:
        raise AlreadyExists(
            f"request_id {rec.request_id!r} was used for a different request "
            f"by principal {rec.principal_id!r}; use a new request_id"
        )
    return stored


def check_review_update(new: ReviewRecord, expected_version: int) -> None:
    """Refuse an update that does not step the version by one or names no known state."""
    if new.version != expected_version + 1:
        raise ValueError(
            f"new.version must be expected_version + 1 ({expected_version + 1}), not {new.version}"
        )
    if new.state not in REVIEW_STATES:
        raise ValueError(f"unknown review state {new.state!r}")


@runtime_checkable
class Store(NotifyState, Protocol):
    """Durable storage for decisions and the audit log (async; safe to share across tasks);
    the shared state of the Slack and e-mail approvals is in NotifyState."""

    async def open(self) -> None:
        """Create the database if needed and bring its schema up to date."""
        ...

    async def close(self) -> None:
        """Finish pending writes, then release the database."""
        ...

    async def record_decision(
        self,
        rec: DecisionRecord,
        audit: AuditRecord,
        review: ReviewRecord | None = None,
        review_audit: AuditRecord | None = None,
    ) -> tuple[DecisionRecord, bool]:
        """Store `rec`, open `review` and append the audit atomically; return (the record as
        stored: with its sealed receipt if `rec` carries a leaf, or the one a replay finds,
        replayed)."""
        ...

    def use_sealer(self, sealer: Callable[[list[bytes]], list[bytes]]) -> None:
        """Seal the receipt leaves of each write batch with `sealer` (store/sealing.py)."""
        ...

    async def append(self, records: Sequence[AuditRecord]) -> list[AuditEntry]:
        """Append `records` to the audit log atomically and return them as entries."""
        ...

    async def find_decision(self, principal_id: str, request_id: str) -> DecisionRecord | None:
        """Return the decision stored for this idempotency key, if any."""
        ...

    async def read_audit(self, from_seq: int = 1, limit: int = 1000) -> list[AuditEntry]:
        """Return up to `limit` entries with seq >= `from_seq`, in seq order."""
        ...

    async def audit_head(self) -> tuple[int, str]:
        """Return the last committed (seq, hash), or (0, GENESIS) when the log is empty."""
        ...

    async def query_audit(
        self,
        q: AuditQuery,
        *,
        descending: bool = False,
        after_seq: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Return one page of entries matching `q` in seq order, strictly past `after_seq`."""
        # Keyset pages: seq > after_seq ascending, seq < after_seq descending; appends (seq
        # only grows) neither repeat nor skip entries across pages. FailedPrecondition naming
        # the seq for a row that cannot be decoded, as read_audit.
        ...

    async def build_tree(self) -> int:
        """Build the audit log's Merkle tree up to the head now; return its size."""
        # A background task of the store builds it too, a short way behind the head
        # (store/tree.py); this is for the checkpoint task, a bulk load, a test.
        ...

    async def tree_size(self) -> int:
        """The number of entries the stored Merkle tree holds (0 .. the head's seq)."""
        ...

    async def tree_rows(self, keys: Sequence[int]) -> dict[int, bytes]:
        """The stored tree rows with these keys, each the hashes of the perfect subtrees
        ending at that seq (core/log_tree.py); absent keys are left out."""
        ...

    async def add_checkpoint(self, cp: Checkpoint) -> None:
        """Store `cp` durably; ValueError unless it follows the last one and signs a stored head.

        CheckpointSuperseded (a ValueError) when one at `cp.seq` or later is stored already,
        e.g. by another store on the database that checked at the same moment.
        """
        ...

    async def checkpoints(self, from_seq: int = 0, to_seq: int = 0) -> list[Checkpoint]:
        """Return the checkpoints with from_seq <= seq <= to_seq (0 = no bound), ascending."""
        ...

    async def last_checkpoint(self) -> Checkpoint | None:
        """Return the latest checkpoint, if any."""
        ...

    async def add_cosignature(self, seq: int, cs: Cosignature) -> int:
        """Store witness co-signature `cs` of the checkpoint at `seq`; return how many that
        checkpoint carries now (a repeat from the same witness key changes nothing).

        NotFound without a checkpoint at `seq`; InvalidArgument unless `cs` names its tree
        head and log key; FailedPrecondition past `cosignatures.MAX_PER_CHECKPOINT`. The
        signature itself is the caller's to check (the store has no witness keys).
        """
        ...

    async def cosignatures(
        self, from_seq: int = 0, to_seq: int = 0
    ) -> dict[int, list[Cosignature]]:
        """The co-signatures of the checkpoints with from_seq <= seq <= to_seq (0 = no
        bound), by checkpoint seq, ordered by witness key id."""
        ...

    async def get_review(self, review_id: str) -> ReviewRecord | None:
        """Return the review with this id, if any."""
        ...

    async def review_for_decision(self, decision_id: str) -> ReviewRecord | None:
        """Return the review opened by this decision, if any."""
        ...

    async def update_review(
        self,
        new: ReviewRecord,
        expected_version: int,
        audit: Sequence[AuditRecord],
        grant: GrantRecord | None = None,
    ) -> ReviewRecord:
        """Replace the review at `expected_version` by `new`, store `grant` and append `audit`."""
        # NotFound for an unknown review; FailedPrecondition(current_state=...) when it is no
        # longer at `expected_version` or is resolved. All or nothing: a failed act grants
        # nothing.
        ...

    async def record_granted_decision(
        self, rec: DecisionRecord, audit: AuditRecord, grant_id: str, now: dt.datetime
    ) -> tuple[DecisionRecord, bool] | None:
        """As record_decision, using grant `grant_id` once; None if it is no longer active."""
        # The use and the decision commit together; None writes nothing.
        ...

    async def active_grants(
        self, action_name: str, reviewer_group: str, policy: str, rule: str, now: dt.datetime
    ) -> list[GrantRecord]:
        """The active grants for one action, group and rule, newest first."""
        ...

    async def list_grants(
        self, reviewer_group: str, now: dt.datetime, active_only: bool
    ) -> list[GrantRecord]:
        """One group's grants, newest first."""
        ...

    async def get_grant(self, grant_id: str) -> GrantRecord | None:
        """One grant by id, or None."""
        ...

    async def revoke_grant(
        self, grant_id: str, actor: str, now: dt.datetime, audit: AuditRecord
    ) -> bool:
        """Revoke `grant_id` and append `audit`; False (nothing written) if already revoked."""
        ...

    async def list_reviews(self, q: ReviewQuery) -> list[ReviewRecord]:
        """Return one page of reviews matching `q`, ordered by (created_at, review_id)."""
        ...

    async def due_reviews(self, now: dt.datetime, limit: int = 100) -> list[ReviewRecord]:
        """Return PENDING reviews whose expires_at <= `now`, oldest deadline first."""
        ...

    async def pending_backlog(self, groups: Sequence[str] = ()) -> list[GroupBacklog]:
        """Return the backlog of each group with PENDING reviews (of `groups`; empty = all)."""
        # One GROUP BY statement over an index of the pending rows only, ordered by group.
        ...

    async def decided_reviews(
        self, action_name: str, *, exclude_review_id: str = "", limit: int = 100
    ) -> list[ReviewRecord]:
        """Return reviews of `action_name` in DECIDED_STATES, latest resolution first."""
        # Ordered by (updated_at, review_id) descending: a resolved review is immutable, so
        # updated_at is when it was resolved. Read from an index, at most `limit` rows.
        ...

    async def opened_reviews(
        self,
        since: dt.datetime,
        until: dt.datetime,
        *,
        after: tuple[dt.datetime, str] | None = None,
        limit: int = 1000,
    ) -> list[ReviewRecord]:
        """Return one page of reviews opened in [since, until), by (created_at, review_id)."""
        # Any state; keyset on the sort key (rows strictly after `after`) over the index
        # reviews_created, so a report over a long window reads it page by page.
        ...

    async def audit_by_ids(
        self, column: str, ids: Sequence[str], types: Sequence[str]
    ) -> list[AuditEntry]:
        """Entries whose `column` (ENTRY_ID_COLUMNS) is one of `ids`, of `types`, by seq."""
        # Read through the (column, seq) index: a few entries per id, whatever the log's size.
        # The rows that decide are checked against them (signoff.app.audit.rows).
        ...

    async def rule_index(self, from_seq: int, to_seq: int) -> list[tuple[int, str]]:
        """The rule index rows (seq, rule) with from_seq <= seq <= to_seq, by seq."""
        ...

    async def reviews_page(self, after: str, limit: int) -> list[ReviewRecord]:
        """Every review, by review_id, strictly after `after` (at most `limit`)."""
        ...

    async def grants_page(self, after: str, limit: int) -> list[GrantRecord]:
        """Every grant, by grant_id, strictly after `after` (at most `limit`)."""
        ...

    async def decisions_page(self, after: str, limit: int) -> list[DecisionRecord]:
        """Every decision, by decision_id, strictly after `after` (at most `limit`)."""
        ...

    def subscribe_reviews(self, callback: Callable[[str], None]) -> None:
        """Call `callback(review_id)` on the event loop after each committed review change."""
        ...

    def observe_batches(self, callback: Callable[[int, float], None]) -> None:
        """Call `callback(size, seconds)` after each group commit (maybe from another thread)."""
        ...

    async def try_lead(self, name: str) -> bool:
        """True if this process holds the lease `name` (taking it if free); never waits."""
        ...
