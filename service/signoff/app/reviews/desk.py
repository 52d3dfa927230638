"""Review use cases: open, get, list, watch, submit, cancel, expire, and the console's queue,
precedents and who-am-I (their reads are in review_console.py, the watchers' wake-ups in
review_hub.py, what a change writes in review_records.py). Knows the store, not gRPC."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING

from google.protobuf import struct_pb2

from signoff import pb
from signoff.app.audit import guard as chain_guard
from signoff.app.paging import fit_budget
from signoff.app.receipts import ReceiptIssuer
from signoff.app.reviews import batch as review_batch
from signoff.app.reviews import console as review_console
from signoff.app.reviews.caller import Identity
from signoff.app.reviews.hub import Hub
from signoff.app.reviews.records import audit_record, to_record
from signoff.core import review_edits, reviews, wire
from signoff.core.audit import AuditRecord, check_entry_size, check_row_size
from signoff.core.review_edits import Recheck
from signoff.core.reviews import Actor, Change
from signoff.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from signoff.ids import Clock
from signoff.logs import event
from signoff.notify.config import CHANGED
from signoff.policy import globs
from signoff.store.base import ReviewQuery, Store
from signoff.store.grants_sql import GrantRecord

if TYPE_CHECKING:
    from signoff.app.grants.desk import GrantDesk
from signoff.core.validate import Limits
from signoff.telemetry.recorder import Telemetry

log = logging.getLogger("signoff.reviews")
S = pb.review
MAX_PAGE = 500


Publish = Callable[[str, pb.review.Review], None]
# The bundle in force deciding an edited action (the application knows the bundle).
EvaluateEdit = Callable[[pb.common.ActionRequest], Recheck]


class ReviewDesk:
    """Everything people and agents do with reviews."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        limits: Limits,
        publish: Publish | None = None,
        recheck_s: float = 5.0,
        queue_interval_s: float = review_console.QUEUE_MIN_INTERVAL_S,
        telemetry: Telemetry | None = None,
        receipts: ReceiptIssuer | None = None,
    ) -> None:
        self.store = store
        self.receipts = receipts
        self.clock = clock
        self.limits = limits
        self.hub = Hub()
        self._publish = publish
        self.recheck_s = recheck_s
        self.queue_interval_s = queue_interval_s
        self.telemetry = telemetry or Telemetry()
        self.grants: GrantDesk | None = None  # set by the application (it knows the bundle)
        self.evaluate_edit: EvaluateEdit | None = None  # likewise
        self.queue_watchers = 0  # open WatchQueue streams (a gauge; tests check it drops)
        # Changes committed through other replicas (PostgreSQL) wake our watchers too.
        store.subscribe_reviews(self.hub.notify)

    def published(self, kind: str, review: pb.review.Review) -> None:
        """Wake watchers and hand the change to the notifier (which never blocks)."""
        self.hub.notify(review.review_id)
        if self._publish is not None:
            note = "review.opened" if kind == "review.opened" else kind
            if kind not in ("review.opened", "review.escalated"):
                note = "review.resolved" if review.state in reviews.FINAL_STATES else ""
            if not note and kind in ("review.approved", "review.modified"):
                # One of N approvals (an edit is one too): still pending, at a new version,
                # the edit shown to whoever approves next. Slack redraws its
                # buttons, e-mail sends the reviewers yet to act a link to this version;
                # webhooks hear only opened, escalated and resolved.
                note = CHANGED
            if note:
                self._publish(note, review)

    async def _load(self, review_id: str, *, acting: bool = False) -> pb.review.Review:
        if not review_id:
            raise InvalidArgument("review_id", "is required")
        rec = await self.store.get_review(review_id)
        if rec is None:
            raise NotFound(f"review {review_id} not found")
        r = S.Review.FromString(rec.review)
        # Resolved (or about to be acted on): only as the audit chain recorded it.
        await chain_guard.check_reviews(self.store, [(rec, r)], acting=acting)
        return r

    def _may_see(self, who: Identity, r: pb.review.Review) -> bool:
        return (
            who.can_review(r.reviewer_group)
            or who.id == r.request.principal.id
            or who.act_for_others
            or "admin" in who.roles
            or "auditor" in who.roles
            # The person a review may be settled in band by sees what they settle.
            or reviews.in_band_requester(r, who.id)
        )

    async def get(self, who: Identity, review_id: str) -> pb.review.Review:
        """One review, if the caller requested it, may review it, or audits."""
        r = await self._load(review_id)
        if not self._may_see(who, r):
            raise PermissionDenied(f"{who.id} may not see review {review_id}")
        return self._offered(who, self._receipted(r))

    def _receipted(self, r: pb.review.Review) -> pb.review.Review:
        return self.receipts.for_review(r) if self.receipts is not None else r

    def _offered(self, who: Identity, r: pb.review.Review) -> pb.review.Review:
        return self.grants.offered(who.id, who.can_review, r) if self.grants else r

    async def watch(self, who: Identity, review_id: str) -> AsyncIterator[pb.review.Review]:
        """The review now, then at every change, until it is resolved."""
        r = await self.get(who, review_id)
        yield r
        while r.state not in reviews.FINAL_STATES:
            # Take the event before re-reading, so a change between the read and the wait
            # still wakes us; the periodic re-check covers a missed wake-up anyway.
            changed = self.hub.event(review_id)
            current = await self._load(review_id)
            if current.version == r.version:
                self.hub.check_open()
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns through a
                # cancellation that arrives with the change (CPython gh-86296), and a stream
                # cancelled by the server's stop would go on.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.recheck_s):
                        await changed.wait()
                self.hub.check_open()
                current = await self._load(review_id)
            if current.version != r.version:
                r = current
                yield self._offered(who, self._receipted(r))

    async def list(
        self, who: Identity, req: pb.review.ListReviewsRequest
    ) -> pb.review.ListReviewsResponse:
        """A page of reviews of the caller's groups (or their own requests, for agents)."""
        groups = tuple(req.reviewer_groups)
        sees_all = "admin" in who.roles or "auditor" in who.roles
        principal = ""
        if groups and not sees_all:
            denied = [g for g in groups if not who.can_review(g)]
            if denied:
                raise PermissionDenied(f"{who.id} may not review for {', '.join(denied)}")
        elif not groups and not sees_all and "reviewer:*" not in who.roles:
            groups = tuple(
                sorted(r.removeprefix("reviewer:") for r in who.roles if r.startswith("reviewer:"))
            )
            if not groups:
                principal = who.id  # an agent lists the reviews it asked for
        globs.check("action", req.action)
        states = tuple(
            reviews.state_name(wire.enum(S.ReviewState, s, "states", unspecified=False))
            for s in req.states
        ) or ("PENDING",)
        order = wire.enum(S.ReviewOrder, req.order, "order")
        size = req.page_size or 50
        if not 0 < size <= MAX_PAGE:
            raise InvalidArgument("page_size", f"must be 1-{MAX_PAGE}")
        now = self.clock.now()
        query = ReviewQuery(
            groups=groups,
            states=states,
            action_glob=req.action,
            created_before=(now - wire.age(req.older_than, "older_than"))
            if req.HasField("older_than")
            else None,
            principal_id=principal,
            newest_first=order == S.REVIEW_ORDER_NEWEST_FIRST,
            after=_decode_cursor(req.page_token),
            limit=size + 1,
        )
        rows = await self.store.list_reviews(query)
        out = S.ListReviewsResponse()
        budget = self.limits.page_bytes
        taken = fit_budget(
            out.reviews, (S.Review.FromString(r.review) for r in rows[:size]), budget
        )
        await chain_guard.check_reviews(self.store, list(zip(rows, out.reviews, strict=False)))
        if len(rows) > taken:
            last = rows[taken - 1]
            key = f"{last.created_at.isoformat()}|{last.review_id}"
            out.next_page_token = base64.urlsafe_b64encode(key.encode()).decode()
        return out

    async def queue(
        self, who: Identity, req: pb.review.WatchQueueRequest
    ) -> AsyncIterator[pb.review.Queue]:
        """The pending queue of the caller's groups now, then whenever it changes; endless."""
        groups = review_console.queue_groups(who, tuple(req.reviewer_groups))
        limit = review_console.bounded(req.limit, "limit", review_console.QUEUE_LIMIT)

        async def read() -> pb.review.Queue:
            return await review_console.read_queue(
                self.store, groups, limit, self.clock.now(), self.limits.page_bytes
            )

        snapshots = review_console.watch_queue(
            read,
            self.hub.any_event,
            recheck_s=self.recheck_s,
            min_interval_s=self.queue_interval_s,
            check_open=self.hub.check_open,
        )
        self.queue_watchers += 1
        try:
            # aclosing: when the client goes away the inner generator is closed now, not
            # whenever the garbage collector finds it.
            async with contextlib.aclosing(snapshots):
                async for snapshot in snapshots:
                    yield snapshot
        finally:
            self.queue_watchers -= 1

    async def precedents(
        self, who: Identity, req: pb.review.ListPrecedentsRequest
    ) -> pb.review.ListPrecedentsResponse:
        """Decided reviews of the same action under the same rules, latest resolution first."""
        limit = review_console.bounded(req.limit, "limit", review_console.PRECEDENT_LIMIT)
        r = await self.get(who, req.review_id)
        candidates = await self.store.decided_reviews(
            r.request.action.name,
            exclude_review_id=r.review_id,
            limit=limit * review_console.PRECEDENT_SCAN,
        )
        await chain_guard.check_reviews(
            self.store, [(c, S.Review.FromString(c.review)) for c in candidates]
        )
        sees_all = "admin" in who.roles or "auditor" in who.roles
        found = review_console.precedents(
            r, candidates, lambda group: sees_all or who.can_review(group), limit
        )
        return S.ListPrecedentsResponse(precedents=found)

    def whoami(self, who: Identity) -> pb.review.Caller:
        """The caller as the server sees it: id, roles, the groups it reviews for."""
        return review_console.caller(who)

    async def submit(
        self, who: Identity, req: pb.review.SubmitReviewRequest, channel: str = ""
    ) -> pb.review.Review:
        """Approve, approve with edits, or reject (`channel`: "slack", "email", "" for the API)."""
        r = await self._load(req.review_id, acting=True)
        params: struct_pb2.Struct | None = req.params if req.HasField("params") else None
        grant = None
        if req.HasField("grant"):
            if req.verdict != S.VERDICT_APPROVE:
                raise InvalidArgument("grant", "only with VERDICT_APPROVE")
            if self.grants is None:
                raise FailedPrecondition("standing approvals are not enabled on this server")
            grant = self.grants.build(who.id, who.can_review, r, req.grant, self.clock.now())
        # In band: one review at a time and never a standing approval (a grant would
        # approve more than the requester saw).
        return await self.act(
            who,
            r,
            req.verdict,
            params,
            req.comment,
            req.expected_version,
            grant=grant,
            in_band_ok=grant is None,
            channel=channel,
        )

    async def act(
        self,
        who: Identity,
        r: pb.review.Review,
        verdict: int,
        params: struct_pb2.Struct | None,
        comment: str,
        expected_version: int,
        extra: Mapping[str, object] | None = None,
        grant: tuple[GrantRecord, AuditRecord] | None = None,
        in_band_ok: bool = False,
        channel: str = "",
    ) -> pb.review.Review:
        """One reviewer's act on the loaded review `r`: the one path of single and batch acts."""
        change = reviews.submit(
            r,
            Actor(who.id, who.roles),
            verdict,
            params,
            comment,
            expected_version,
            self.clock.now(),
            self.limits,
            in_band_ok=in_band_ok,
            channel=channel,
        )
        if verdict == S.VERDICT_MODIFY:
            # After the state machine's checks (group, version, separation of duties), so
            # only a reviewer of this review learns how the policy decides their edit.
            assert params is not None  # reviews.submit refuses a MODIFY without params
            edit = self._check_edit(who, r, params)
            extra = {**(extra or {}), "edit_evaluation": edit.payload()}
        if grant is not None and change.review.state != S.REVIEW_STATE_APPROVED:
            more = change.review.approvals_required - _approvals(change.review)
            raise FailedPrecondition(
                f"grant: review {r.review_id} is not approved by this act ({more} more "
                "approvals needed); grant with the approval that resolves it"
            )
        return await self._apply(r, change, who.id, who.roles, extra, grant)

    def _check_edit(self, who: Identity, r: pb.review.Review, params: struct_pb2.Struct) -> Recheck:
        """The bundle in force on the edited action; FailedPrecondition if it escapes."""
        if self.evaluate_edit is None:  # fail closed: an edit nobody checked is never accepted
            raise FailedPrecondition("edits are refused: no policy bundle to check them against")
        edit = self.evaluate_edit(review_edits.edited_request(r, params))
        try:
            review_edits.check_edit(r, edit)
        except FailedPrecondition:
            event(
                log,
                "review.edit_refused",
                logging.WARNING,
                review_id=r.review_id,
                actor=who.id,
                outcome=edit.outcome,
                rule=edit.rule,
                group=edit.reviewer_group,
            )
            raise
        return edit

    async def submit_batch(
        self, who: Identity, req: pb.review.SubmitReviewsRequest
    ) -> pb.review.SubmitReviewsResponse:
        """Approve or reject several reviews of one action and rule in one act."""
        return await review_batch.submit(self, who, req)

    async def cancel(self, who: Identity, req: pb.review.CancelReviewRequest) -> pb.review.Review:
        """The requesting agent withdraws its review."""
        r = await self._load(req.review_id, acting=True)
        change = reviews.cancel(r, Actor(who.id, who.roles), req.reason, self.clock.now())
        return await self._apply(r, change, who.id, who.roles)

    async def sweep(self) -> int:
        """Expire (or escalate) every review past its deadline; return how many changed."""
        now = self.clock.now()
        changed = 0
        for rec in await self.store.due_reviews(now):
            r = S.Review.FromString(rec.review)
            try:
                await chain_guard.check_reviews(self.store, [(rec, r)], acting=True)
                await self._apply(r, reviews.expire(r, now), "signoff")
                changed += 1
            except Exception as exc:  # a concurrent act won the race: that is fine
                event(log, "review.expire_skipped", review_id=r.review_id, error=str(exc))
        return changed

    async def _apply(
        self,
        old: pb.review.Review,
        change: Change,
        actor: str,
        roles: frozenset[str] = frozenset(),
        extra: Mapping[str, object] | None = None,
        grant: tuple[GrantRecord, AuditRecord] | None = None,
    ) -> pb.review.Review:
        new = change.review
        now = self.clock.now()
        audit = [audit_record(new, change.event, actor, now, roles, extra)]
        check_entry_size(audit, self.limits.entry_bytes)
        row = to_record(new)
        check_row_size("review", row.review, self.limits.entry_bytes)
        with self.telemetry.review_change(change.event, new, actor, now):
            await self.store.update_review(
                row,
                old.version,
                audit + ([grant[1]] if grant else []),
                grant[0] if grant else None,
            )
        if grant is not None and self.grants is not None:
            self.grants.changed()
        event(
            log,
            change.event,
            review_id=new.review_id,
            actor=actor,
            state=reviews.state_name(new.state),
            group=new.reviewer_group,
        )
        self.published(change.event, new)
        return self._receipted(new)


def _approvals(r: pb.review.Review) -> int:
    return len({a.reviewer for a in r.acts if a.verdict == S.VERDICT_APPROVE})


def _decode_cursor(token: str) -> tuple[dt.datetime, str] | None:
    """The (created_at, review_id) a page token names; anything but a token this server
    issued (an aware UTC time) is INVALID_ARGUMENT: a naive or far-off time would fail in
    the store's time arithmetic, as INTERNAL."""
    if not token:
        return None
    try:
        at, _, review_id = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
        created = dt.datetime.fromisoformat(at)
    except ValueError:
        created = None
    if created is None or created.utcoffset() != dt.timedelta(0):
        raise InvalidArgument("page_token", "is not a token this server issued")
    return created, review_id
