"""Use cases: evaluate, explain, load policies. Knows the store, not gRPC."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signoff import pb
from signoff.app.analysis_cache import BundleAnalyses
from signoff.app.audit import guard as chain_guard
from signoff.app.denials import DenialLog
from signoff.app.grants.desk import GrantDesk
from signoff.app.receipts import ReceiptIssuer
from signoff.app.reviews.desk import Identity, ReviewDesk
from signoff.app.reviews.records import audit_record, stored_bytes, to_record
from signoff.auth.principals import Directory
from signoff.core import review_edits, reviews
from signoff.core.audit import AuditRecord, check_entry_size, check_row_size
from signoff.core.decide import DefaultDecision, Evaluation, evaluate
from signoff.core.explanation import RULE_DECISIONS, decision_message, explanation
from signoff.core.jsonify import RequestView, decision_to_dict, request_view
from signoff.core.validate import Limits, validate_batch, validate_request
from signoff.errors import AlreadyExists, InvalidArgument, PermissionDenied
from signoff.ids import Clock, IdFactory
from signoff.limits.ingress import DenialAudit
from signoff.logs import event
from signoff.policy import Bundle, BundleError, load_bundle
from signoff.policy.params import check_request as check_params
from signoff.settings.grants import GrantSettings
from signoff.store.base import DecisionRecord, Store
from signoff.telemetry.recorder import Telemetry

log = logging.getLogger("signoff.app")

SERVER_ACTOR = "signoff"


@dataclass
class BundleHolder:
    """The bundle in force; a reload swaps this one reference, in-flight requests keep theirs."""

    bundle: Bundle
    loaded_at: Any


class Signoff:
    """The application: everything a request needs, built once by `server.py`."""

    def __init__(
        self,
        *,
        policies: Path,
        store: Store,
        clock: Clock,
        new_id: IdFactory,
        limits: Limits,
        default: DefaultDecision,
        review_timeout: dt.timedelta = dt.timedelta(hours=24),
        desk: ReviewDesk | None = None,
        telemetry: Telemetry | None = None,
        receipts: ReceiptIssuer | None = None,
        grant_settings: GrantSettings | None = None,
        directory: Directory | None = None,
        denial_audit: DenialAudit | None = None,
        analysis_timeout: float = 10.0,
    ) -> None:
        self.policies = policies
        self.store = store
        self.clock = clock
        self.new_id = new_id
        self.limits = limits
        self.default = default
        self.review_timeout = review_timeout
        self.reviews = desk or ReviewDesk(store, clock, limits)
        self.telemetry = telemetry or Telemetry()
        self.receipts = receipts
        if receipts is not None:
            store.use_sealer(receipts.seal)
        # Who vouches for what CEL reads about a principal; by default nothing does.
        self.directory = directory if directory is not None else Directory()
        self._holder: BundleHolder | None = None
        self.grants = GrantDesk(
            store,
            clock,
            new_id,
            lambda: self.bundle,
            grant_settings or GrantSettings(),
            entry_bytes=limits.entry_bytes,
        )
        self.reviews.grants = self.grants
        self.reviews.evaluate_edit = self._evaluate_edit
        self._reload_lock = asyncio.Lock()
        self.denials = DenialLog(store, clock, denial_audit or DenialAudit())
        self.analyses = BundleAnalyses(analysis_timeout)

    @property
    def bundle(self) -> Bundle:
        """The bundle in force (start() must have succeeded)."""
        assert self._holder is not None, "Signoff.start() was not called"
        return self._holder.bundle

    async def start(self, checked: Bundle | None = None) -> Bundle:
        """Load the policies for the first time; a bad bundle raises BundleError.

        `checked` is the bundle `serve`'s preflight already compiled from the same directory:
        taken as loaded instead of compiling it twice (a file changed in between is a content
        drift the policy watcher reloads).
        """
        bundle = await self._load_and_audit(checked=checked)
        if bundle is None:
            raise self._last_error
        return bundle

    async def reload(self, actor: str = SERVER_ACTOR) -> tuple[bool, list[Any]]:
        """Load the policies again; a bad bundle is audited and the old one keeps serving."""
        async with self._reload_lock:
            bundle = await self._load_and_audit(actor)
            return (bundle is not None, [] if bundle else list(self._last_error.errors))

    async def audit_denied(self, method: str, who: str, message: str, peer: str = "") -> None:
        """Count a refused call (unauthenticated or not allowed) for the audit log: the first
        of its kind is written now, repeats in one summary entry per interval (denials.py)."""
        await self.denials.denied(method, who, message, peer)

    async def _load_and_audit(
        self, actor: str = SERVER_ACTOR, *, checked: Bundle | None = None
    ) -> Bundle | None:
        try:
            bundle = (
                checked
                if checked is not None
                else await asyncio.to_thread(load_bundle, self.policies)
            )
        except BundleError as exc:
            self._last_error = exc
            event(log, "policy.rejected", logging.ERROR, errors=len(exc.errors))
            for err in exc.errors:
                event(log, "policy.error", logging.ERROR, error=str(err))
            await self.store.append([self._policy_record("policy.rejected", exc, actor)])
            return None
        for warning in bundle.warnings:
            event(log, "policy.warning", logging.WARNING, warning=warning)
        await self.store.append([self._policy_record("policy.loaded", bundle, actor)])
        self._holder = BundleHolder(bundle=bundle, loaded_at=self.clock.now())
        self.telemetry.policy_loaded(bundle)
        event(log, "policy.loaded", version=bundle.version, rules=bundle.rule_count)
        return bundle

    def _policy_record(
        self, kind: str, what: Bundle | BundleError, actor: str = SERVER_ACTOR
    ) -> AuditRecord:
        if isinstance(what, BundleError):
            payload: dict[str, Any] = {
                "directory": str(self.policies),
                "errors": [str(e) for e in what.errors],
            }
            version = self._holder.bundle.version if self._holder else ""
        else:
            payload = {
                "directory": str(self.policies),
                "files": [p.file for p in what.policies],
                "rules": what.rule_count,
                "warnings": list(what.warnings),
            }
            version = what.version
        return AuditRecord(
            type=kind,
            actor=actor,
            time=self.clock.now(),
            policy_version=version,
            payload=payload,
        )

    async def evaluate(self, who: Identity, req: pb.common.ActionRequest) -> pb.common.Decision:
        """Decide one action and store it in the audit log before returning."""
        validate_request(req, self.limits)
        check_params(self.bundle.params, req)  # the action schemas, before any rule runs
        require_role(who, "agent")
        check_principal(who, req)
        self.directory.vouch(who, req.principal)
        return await self._decide(req)

    async def evaluate_batch(
        self, who: Identity, reqs: list[pb.common.ActionRequest]
    ) -> list[pb.common.Decision]:
        """Decide several actions; their audit appends share group commits."""
        validate_batch(reqs, self.limits)
        schemas = self.bundle.params
        for i, r in enumerate(reqs):
            check_params(schemas, r, prefix=f"requests[{i}].")
        require_role(who, "agent")
        for i, r in enumerate(reqs):
            check_principal(who, r)
            self.directory.vouch(who, r.principal, prefix=f"requests[{i}].")
        return list(await asyncio.gather(*(self._decide(r) for r in reqs)))

    async def _decide(self, req: pb.common.ActionRequest) -> pb.common.Decision:
        started = time.perf_counter()
        # A retried request_id is found inside the write transaction (record_decision), not
        # looked up first: retries are rare, and a read before every decision cost a thread
        # hand-off on the hot path. A retry is evaluated for nothing; what it gets back is
        # the stored decision.
        bundle = self.bundle  # one bundle for the whole request, even if a reload swaps it
        now = self.clock.now()
        started_policy = time.perf_counter()
        # The one view of the request: the engine's texts, the receipt, the review, the audit
        # entry and the replay check all take their form of it from here (STYLE.md 14).
        view = request_view(req, bundle.applicable(req.action.name).redact)
        ev = evaluate(bundle, req, now, self.default, view=view)
        policy_s = time.perf_counter() - started_policy
        if _grantable(ev):
            granted = await self._decide_by_grant(view, ev, bundle, now)
            if granted is not None:
                decision, granted_ev = granted
                self.telemetry.decided(req.action.name, decision, granted_ev, started, policy_s)
                return decision
        decision = self._to_decision(req, ev, bundle, now)
        # The review (and so decision.review_id) exists before anything is recorded: the
        # decision, its audit entry and the opened review commit in one transaction.
        review = None
        if decision.outcome == pb.common.OUTCOME_REQUIRE_REVIEW:
            review = self._open_review(view, ev, decision, now)
        record = self._decision_row(view, decision, now)
        audit = self._decision_record(view, ev, decision)
        opened = row = None
        if review is not None:
            # Encoded once: the row stores these bytes, the audit entry their digest.
            encoded = stored_bytes(review)
            opened = audit_record(review, "review.opened", SERVER_ACTOR, now, stored=encoded)
            row = to_record(review, encoded)
        check_entry_size([audit] if opened is None else [audit, opened], self.limits.entry_bytes)
        if row is not None:
            check_row_size("review", row.review, self.limits.entry_bytes)
        stored, replayed = await self.store.record_decision(record, audit, row, opened)
        if replayed:
            await chain_guard.check_decision(self.store, stored)
            return _replayed(stored, view.wire_digest)
        _add_receipt(decision, record, stored)
        if review is not None:
            self.reviews.published("review.opened", review)
        self.telemetry.decided(req.action.name, decision, ev, started, policy_s)
        # DEBUG: the audit log is the record of decisions; at INFO this line would cost
        # more than the policy evaluation itself.
        event(
            log,
            "decision",
            logging.DEBUG,
            decision_id=decision.decision_id,
            action=req.action.name,
            outcome=ev.outcome,
            rule=ev.deciding_rule.name if ev.deciding_rule else "",
        )
        return decision

    async def _decide_by_grant(
        self, view: RequestView, ev: Evaluation, bundle: Bundle, now: dt.datetime
    ) -> tuple[pb.common.Decision, Evaluation] | None:
        """AUTO_ALLOW by an active standing approval covering the request, or None: review it."""
        assert ev.deciding_rule is not None
        req = view.request
        found = await self.grants.find(view, ev.deciding_rule, ev.reviewer_group, now)
        for grant in found:
            why = f"standing approval {grant.grant_id} granted by {grant.created_by}"
            allowed = dataclasses.replace(
                ev,
                outcome="allow",
                reason=why,
                reviewer_group="",
                decided_by=f"{why}, standing in for the review of {ev.decided_by}",
            )
            decision = self._to_decision(req, allowed, bundle, now)
            audit = self._decision_record(view, allowed, decision, grant_id=grant.grant_id)
            record = self._decision_row(view, decision, now)
            stored = await self.store.record_granted_decision(record, audit, grant.grant_id, now)
            if stored is None:
                # Used up, revoked or expired since it was read: read afresh next time.
                self.grants.changed()
                continue
            found, replayed = stored
            if not replayed:
                _add_receipt(decision, record, found)
                return decision, allowed
            await chain_guard.check_decision(self.store, found)
            return _replayed(found, view.wire_digest), allowed
        return None

    def _decision_row(
        self, view: RequestView, decision: pb.common.Decision, now: dt.datetime
    ) -> DecisionRecord:
        """The decision's row; an AUTO_ALLOW one carries its receipt's leaf, which the store
        seals with its write batch (one signature per batch: app/receipts.py, version 2)
        and stores with it, so that a replay returns the same receipt."""
        req = view.request
        return DecisionRecord(
            decision_id=decision.decision_id,
            principal_id=req.principal.id,
            request_id=req.request_id,
            request_digest=view.wire_digest,
            action_name=req.action.name,
            outcome=pb.common.Outcome.Name(decision.outcome),
            created_at=now,
            decision=decision.SerializeToString(),
            receipt_leaf=b""
            if self.receipts is None
            else self.receipts.decision_leaf(view, decision),
        )

    def _evaluate_edit(self, edited: pb.common.ActionRequest) -> review_edits.Recheck:
        bundle = self.bundle  # as _decide: the bundle in force, the same default decision
        # The edit is what the agent will run: it meets the action's schema as a request must
        # (named as the field the reviewer sent, `params.<path>`), before any rule runs.
        try:
            check_params(bundle.params, edited)
        except InvalidArgument as exc:
            field = "params" + exc.field.removeprefix("action.params")
            raise InvalidArgument(field, str(exc).removeprefix(f"{exc.field}: ")) from None
        ev = evaluate(bundle, edited, self.clock.now(), self.default)
        return review_edits.recheck(ev, bundle.version)

    def _open_review(
        self,
        view: RequestView,
        ev: Evaluation,
        decision: pb.common.Decision,
        now: dt.datetime,
    ) -> pb.review.Review:
        rule = ev.deciding_rule
        decision.review_id = self.new_id()
        return reviews.open_review(
            review_id=decision.review_id,
            decision=decision,
            shown=view.shown,
            shown_digest=view.shown_digest,
            redacted_paths=ev.redact,
            approvals=review_edits.approvals_needed(ev),
            timeout=(rule.timeout if rule and rule.timeout else None) or self.review_timeout,
            on_timeout=rule.on_timeout if rule and rule.decision == "review" else "deny",
            now=now,
            in_band=rule.in_band if rule and rule.decision == "review" else "",
        )

    def _to_decision(
        self, req: pb.common.ActionRequest, ev: Evaluation, bundle: Bundle, now: Any
    ) -> pb.common.Decision:
        return decision_message(
            ev, bundle.version, now, decision_id=self.new_id(), request_id=req.request_id
        )

    def _decision_record(
        self,
        view: RequestView,
        ev: Evaluation,
        d: pb.common.Decision,
        grant_id: str = "",
    ) -> AuditRecord:
        req = view.request
        return AuditRecord(
            type="decision",
            actor=req.principal.id,
            time=d.evaluated_at.ToDatetime(tzinfo=self.clock.now().tzinfo),
            request_id=req.request_id,
            decision_id=d.decision_id,
            action_name=req.action.name,
            outcome=pb.common.Outcome.Name(d.outcome).removeprefix("OUTCOME_"),
            principal=req.principal.id,
            reviewer_group=d.reviewer_group,
            rules=tuple(m.rule for m in ev.matched),
            policy_version=d.policy_version,
            payload={
                "request": view.shown_plain,
                "decision": decision_to_dict(d),
                "decided_by": ev.decided_by,
                **({"grant_id": grant_id} if grant_id else {}),
                # Shadow rules never decide; auditors see what they would have done.
                "shadow": [
                    f"{m.rule} ({m.file}:{m.line}) would have decided {m.decision}"
                    for m in ev.matched
                    if m.shadow and m.decision
                ],
            },
        )

    def explain(self, who: Identity, req: pb.common.ActionRequest) -> pb.decision.Explanation:
        """Evaluate with a full trace; stores nothing, opens nothing."""
        validate_request(req, self.limits)
        check_params(self.bundle.params, req)
        require_role(who, "agent", "admin", "auditor")
        if not who.act_for_others and not {"admin", "auditor"} & who.roles:
            check_principal(who, req)
        # Admins and auditors may explain any principal: it gets that principal's facts,
        # so the explanation is what Evaluate would decide for it.
        self.directory.vouch(who, req.principal)
        bundle = self.bundle
        now = self.clock.now()
        ev = evaluate(bundle, req, now, self.default, trace=True)
        return explanation(ev, bundle.version, now)

    def bundle_info(self) -> pb.policy.BundleInfo:
        """Describe the bundle in force."""
        assert self._holder is not None
        b = self._holder.bundle
        info = pb.policy.BundleInfo(version=b.version, directory=str(self.policies))
        info.loaded_at.FromDatetime(self._holder.loaded_at)
        for p in b.policies:
            f = info.files.add(
                path=p.file, name=p.name, description=p.description, actions=list(p.actions)
            )
            for r in p.rules:
                f.rules.add(
                    name=r.name,
                    decision=RULE_DECISIONS[r.decision],
                    reviewers=r.reviewers or "",
                    shadow=r.shadow,
                    when=r.when,
                    line=r.line,
                )
        return info


def require_role(who: Identity, *roles: str) -> None:
    """Raise PermissionDenied unless the caller holds one of `roles`."""
    if not set(roles) & who.roles:
        raise PermissionDenied(f"{who.id} needs the role {' or '.join(roles)}")


def check_principal(who: Identity, req: pb.common.ActionRequest) -> None:
    """Agents speak for themselves; only a gateway (act_for_others) names another principal."""
    if not req.principal.id:
        req.principal.id = who.id
    elif req.principal.id != who.id and not who.act_for_others:
        raise PermissionDenied(
            f"principal.id {req.principal.id!r} is not the caller {who.id!r}; "
            "only identities allowed to act for others may set it"
        )


def _grantable(ev: Evaluation) -> bool:
    """Whether a standing approval may stand in for this evaluation's review."""
    # Only a review a rule asked for, and only if that rule evaluated: never a deny, never
    # the default decision, never a rule that failed (on_error: review).
    rule = ev.deciding_rule
    if ev.outcome != "review" or rule is None or rule.decision != "review" or not rule.grants:
        return False
    return not any(m.error for m in ev.matched if (m.policy, m.rule) == (rule.policy, rule.name))


def _add_receipt(d: pb.common.Decision, sent: DecisionRecord, stored: DecisionRecord) -> None:
    """Give `d` the receipt the store sealed for it: what it appended to `sent`'s bytes."""
    if sent.receipt_leaf:
        d.MergeFromString(stored.decision[len(sent.decision) :])


def _replayed(found: DecisionRecord, digest: str) -> pb.common.Decision:
    if found.request_digest != digest:
        raise AlreadyExists(
            f"request_id {found.request_id!r} was already used for a different request; "
            "use a new request_id for a new action"
        )
    d = pb.common.Decision.FromString(found.decision)
    d.replayed = True
    return d
