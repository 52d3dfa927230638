"""Standing approvals as use cases: grant (with an approval), find one for a request, list,
revoke. Knows the store and the bundle in force, not gRPC."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf import json_format, struct_pb2

from signoff import pb
from signoff.app.audit.rows import digest
from signoff.app.grants.cache import ActiveGrants
from signoff.core.audit import AuditRecord, entry_size
from signoff.core.grants import (
    Asked,
    Bound,
    Scope,
    check_bounds,
    covers,
    default_bounds,
    param_paths,
)
from signoff.core.jsonify import RequestView, struct_to_dict
from signoff.core.reviews import approvers, requesters
from signoff.core.validate import Limits
from signoff.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    SignoffError,
)
from signoff.ids import Clock, IdFactory
from signoff.policy import Bundle
from signoff.policy.bundle import CompiledRule
from signoff.settings.grants import GrantSettings
from signoff.store.base import Store
from signoff.store.grants_sql import GrantRecord

MAX_USES = 10_000
S = pb.review


class GrantDesk:
    """Everything reviewers do with standing approvals, and their use by decisions."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        new_id: IdFactory,
        bundle: Callable[[], Bundle],
        settings: GrantSettings,
        entry_bytes: int = Limits.entry_bytes,
    ) -> None:
        self.store = store
        self.clock = clock
        self.new_id = new_id
        self.bundle = bundle
        self.max_ttl = settings.max_ttl
        # The largest audit entry or stored row (limits.fields.max_audit_entry_bytes).
        self.entry_bytes = entry_bytes
        self._active = ActiveGrants(store, settings.cache_ttl.total_seconds())

    def build(
        self,
        who_id: str,
        can_review: Callable[[str], bool],
        r: pb.review.Review,
        spec: pb.review.GrantSpec,
        now: dt.datetime,
    ) -> tuple[GrantRecord, AuditRecord]:
        """The grant `who_id` asks for while approving `r`, checked; refused with a reason."""
        compiled = self._grantable(who_id, can_review, r)
        policy, rule = compiled.policy, compiled.name
        if not 1 <= spec.ttl_seconds <= self.max_ttl.total_seconds():
            raise InvalidArgument(
                "grant.ttl_seconds",
                f"must be 1-{int(self.max_ttl.total_seconds())} (the server's grants.max_ttl)",
            )
        if not 1 <= spec.max_uses <= MAX_USES:
            raise InvalidArgument("grant.max_uses", f"must be 1-{MAX_USES}")
        for i, b in enumerate(spec.bounds):
            if _redacted(b.path, r.redacted_paths):
                raise InvalidArgument(
                    f"grant.bounds[{i}] ({b.path})",
                    "the policy redacts this param: a bound on it would never match",
                )
        bounds = tuple(
            Bound(b.path, b.op, _bound_value(b.value, f"grant.bounds[{i}].value"))  # type: ignore[arg-type]
            for i, b in enumerate(spec.bounds)
        )
        # What the reviewer saw: the stored review holds the request as shown (redacted).
        approved = struct_to_dict(r.request.action.params)
        try:
            check_bounds(bounds, approved, unbounded=compiled.unbounded_grants)
        except ValueError as exc:
            field, _, message = str(exc).partition(": ")
            raise InvalidArgument(field, message) from exc
        principal = "" if spec.any_principal else r.request.principal.id
        paths = param_paths(approved)
        scope = Scope(r.request.action.name, principal, bounds, who_id, paths)
        grant = S.Grant(
            grant_id=self.new_id(),
            reviewer_group=r.reviewer_group,
            action_name=scope.action_name,
            policy=policy,
            rule=rule,
            principal_id=principal,
            bounds=list(spec.bounds),
            max_uses=spec.max_uses,
            created_by=who_id,
            review_id=r.review_id,
            description=scope.describe(),
            param_paths=sorted(paths),
            closed_world=True,
        )
        grant.created_at.FromDatetime(now)
        grant.expires_at.FromDatetime(now + dt.timedelta(seconds=spec.ttl_seconds))
        record = GrantRecord(
            grant_id=grant.grant_id,
            reviewer_group=grant.reviewer_group,
            action_name=grant.action_name,
            policy=policy,
            rule=rule,
            principal_id=principal,
            max_uses=spec.max_uses,
            uses=0,
            created_by=who_id,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=spec.ttl_seconds),
            revoked_at=None,
            revoked_by="",
            grant=grant.SerializeToString(),
        )
        extra = {"review_id": r.review_id, "param_paths": sorted(paths)}
        audit = _audit("grant.created", who_id, now, record, extra)
        # The approved params' paths and the bounds are recorded twice over (entry and row),
        # and paths repeat their parents' keys: a review that fits can make a grant that
        # does not.
        self._check_size(
            "grant",
            audit,
            "it records the bounds and every approved param's path: approve without a grant",
            record.grant,
        )
        return record, audit

    def _check_size(self, field: str, audit: AuditRecord, fix: str, row: bytes = b"") -> None:
        """Refuse, naming `field`, a grant whose audit entry or row would be larger than a
        read can return: every page holding it would fail for good (audit.check_entry_size)."""
        size = max(entry_size(audit), len(row))
        if size > self.entry_bytes:
            raise InvalidArgument(
                field,
                f"the {audit.type} audit entry would be {size // 1024} KiB, over the "
                f"{self.entry_bytes // 1024} KiB limit (limits.fields.max_audit_entry_bytes); "
                f"{fix}",
            )

    def _grantable(
        self, who_id: str, can_review: Callable[[str], bool], r: pb.review.Review
    ) -> CompiledRule:
        """The rule a grant on `r` would stand in for; refused with the reason."""
        # Its group is the review's: never broader than the groups the reviewer reviews for.
        if not can_review(r.reviewer_group):
            raise PermissionDenied(
                f"{who_id} does not review for {r.reviewer_group} and cannot grant for it"
            )
        if r.escalated_from:
            raise FailedPrecondition(
                f"review {r.review_id} was escalated from {r.escalated_from[0]}: a standing "
                "approval stands in for the rule's own group, so grant only on its reviews"
            )
        policy, rule = _deciding_rule(r)
        compiled = self._rule(policy, rule)
        if compiled is None or compiled.decision != "review":
            raise FailedPrecondition(f"rule {policy}/{rule} is no longer a review rule")
        if not compiled.grants:
            why = "grants: false" if compiled.approvals == 1 else "approvals: 2+ without grants"
            raise FailedPrecondition(f"rule {policy}/{rule} forbids standing approvals ({why})")
        return compiled

    def offered(
        self, who_id: str, can_review: Callable[[str], bool], r: pb.review.Review
    ) -> pb.review.Review:
        """`r` with the caller's offer, if it is pending and they review its group."""
        if r.state != S.REVIEW_STATE_PENDING or not can_review(r.reviewer_group):
            return r
        out = S.Review()
        out.CopyFrom(r)  # never the stored message: the offer is the caller's, not the review's
        out.grant_offer.CopyFrom(self.offer(who_id, can_review, r))
        return out

    def offer(
        self, who_id: str, can_review: Callable[[str], bool], r: pb.review.Review
    ) -> pb.review.GrantOffer:
        """Whether `who_id` may grant while approving the pending `r`, and what to propose."""
        out = S.GrantOffer(max_ttl_seconds=int(self.max_ttl.total_seconds()), max_uses=MAX_USES)
        try:
            compiled = self._grantable(who_id, can_review, r)
        except SignoffError as exc:
            out.refusal = exc.message
            return out
        # Only the approval that resolves the review may grant (ReviewDesk.act checks it).
        approved = approvers(r)
        if who_id in approved:
            out.refusal = f"{who_id} approved this review already"
            return out
        if (more := r.approvals_required - len(approved) - 1) > 0:
            out.refusal = (
                f"{more} more approval(s) needed after yours: only the approval that resolves "
                "the review may grant"
            )
            return out
        params = struct_to_dict(r.request.action.params)
        proposed = [b for b in default_bounds(params) if not _redacted(b.path, r.redacted_paths)]
        try:
            # The proposal must be grantable as it stands: say now if no bounds could be.
            check_bounds(proposed, params, unbounded=compiled.unbounded_grants)
        except ValueError as exc:
            out.refusal = f"no grant can bound this action: {str(exc).partition(': ')[2]}"
            return out
        out.allowed = True
        for b in proposed:
            out.default_bounds.add(path=b.path, op=b.op, value=value(b.value))
        return out

    def _rule(self, policy: str, rule: str) -> CompiledRule | None:
        for p in self.bundle().policies:
            if p.name == policy:
                for candidate in p.rules:
                    if candidate.name == rule:
                        return candidate
        return None

    async def find(
        self, view: RequestView, rule: CompiledRule, group: str, now: dt.datetime
    ) -> list[GrantRecord]:
        """The active grants that cover the request, decided by `rule` for `group`, newest
        first.

        A grant recorded the param paths its reviewer saw, where a param the policy redacts
        is one leaf, so the request's paths are taken from its masked form.
        """
        req = view.request
        found = await self._active.get(req.action.name, group, rule.policy, rule.name, now)
        if not found:
            return []
        params = view.plain["action"]["params"]
        shown = view.shown_plain["action"]["params"]
        asked = Asked(
            req.action.name, req.principal.id, requesters(req.principal), params, param_paths(shown)
        )
        return [g for g in found if covers(_scope(g), asked)]

    def changed(self) -> None:
        """A grant was made, used up or revoked here: read the active ones afresh."""
        self._active.clear()

    async def list(
        self, who_id: str, can_review: Callable[[str], bool], req: pb.review.ListGrantsRequest
    ) -> pb.review.ListGrantsResponse:
        """One group's grants, for its reviewers."""
        if not req.reviewer_group:
            raise InvalidArgument("reviewer_group", "is required")
        if not can_review(req.reviewer_group):
            raise PermissionDenied(f"{who_id} does not review for {req.reviewer_group}")
        now = self.clock.now()
        found = await self.store.list_grants(req.reviewer_group, now, not req.include_inactive)
        return S.ListGrantsResponse(grants=[to_message(g) for g in found])

    async def revoke(
        self, who_id: str, can_review: Callable[[str], bool], req: pb.review.RevokeGrantRequest
    ) -> pb.review.Grant:
        """End a grant at once; any reviewer of its group may."""
        if not req.grant_id:
            raise InvalidArgument("grant_id", "is required")
        found = await self.store.get_grant(req.grant_id)
        if found is None:
            raise NotFound(f"grant {req.grant_id} not found")
        if not can_review(found.reviewer_group):
            raise PermissionDenied(f"{who_id} does not review for {found.reviewer_group}")
        now = self.clock.now()
        audit = _audit("grant.revoked", who_id, now, found, {"reason": req.reason})
        # The grant fitted when it was made: the reason is all that can grow its entry now.
        self._check_size("reason", audit, "shorten the reason")
        if not await self.store.revoke_grant(found.grant_id, who_id, now, audit):
            raise FailedPrecondition(f"grant {found.grant_id} is already revoked")
        self.changed()
        stored = await self.store.get_grant(found.grant_id)
        assert stored is not None
        return to_message(stored)


def _deciding_rule(r: pb.review.Review) -> tuple[str, str]:
    # The decision's deciding rule: the first enforcing review rule in bundle order, as in
    # decide._deciding. A rule that failed to evaluate (on_error: review) never grants.
    for m in r.matched_rules:
        if not m.shadow and m.decision == pb.common.RULE_DECISION_REVIEW:
            if m.error:
                break
            return m.policy, m.rule
    raise FailedPrecondition(
        f"review {r.review_id} was not opened by a review rule that evaluated: nothing to grant"
    )


def _redacted(path: str, redacted: Sequence[str]) -> bool:
    # The stored review holds the mask where the request held the value, so a bound on a
    # redacted param (or its parent, or a part of it) compares against what nobody saw.
    full = f"action.params.{path}"
    return any(full == p or full.startswith(p + ".") or p.startswith(full + ".") for p in redacted)


def _bound_value(value: struct_pb2.Value, field: str) -> Any:
    """A bound's value as JSON; NaN and infinities, which JSON cannot hold (and no param can
    be compared with), are INVALID_ARGUMENT, not an error deep in the encoder."""
    try:
        return json_format.MessageToDict(value)
    except ValueError:
        raise InvalidArgument(field, "must be JSON: NaN and infinities are not numbers") from None


def _scope(g: GrantRecord) -> Scope:
    grant = S.Grant.FromString(g.grant)
    bounds = tuple(
        Bound(b.path, b.op, json_format.MessageToDict(b.value))  # type: ignore[arg-type]
        for b in grant.bounds
    )
    # A grant stored before param paths were recorded has no closed world: it covers nothing.
    paths = frozenset(grant.param_paths) if grant.closed_world else None
    return Scope(g.action_name, g.principal_id, bounds, g.created_by, paths)


def to_message(g: GrantRecord) -> pb.review.Grant:
    """The grant as the API shows it: its scope, with uses and revocation from the columns."""
    grant = S.Grant.FromString(g.grant)
    grant.uses = g.uses
    if g.revoked_at is not None:
        grant.revoked_at.FromDatetime(g.revoked_at)
        grant.revoked_by = g.revoked_by
    return grant


def _audit(
    kind: str, actor: str, now: dt.datetime, g: GrantRecord, extra: dict[str, Any]
) -> AuditRecord:
    return AuditRecord(
        type=kind,
        actor=actor,
        time=now,
        # Under the review it was granted with: the review_id index finds a grant's entries,
        # against which its row is checked before it allows anything (chain_check).
        review_id=S.Grant.FromString(g.grant).review_id,
        action_name=g.action_name,
        reviewer_group=g.reviewer_group,
        rules=(g.rule,),
        payload={
            "grant_id": g.grant_id,
            "grant_digest": digest(g.grant),
            "policy": g.policy,
            "rule": g.rule,
            "scope": to_message(g).description,
            "principal_id": g.principal_id,
            "max_uses": g.max_uses,
            "expires_at": g.expires_at.isoformat(),
            **extra,
        },
    )


def value(v: Any) -> struct_pb2.Value:
    """A JSON value as google.protobuf.Value (for clients and tests building bounds)."""
    out = struct_pb2.Value()
    json_format.ParseDict(v, out)
    return out
