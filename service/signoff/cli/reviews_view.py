"""How `signoff reviews` shows reviews: the list table, the `show` screen, results, JSON.

Pure rendering: every function takes reviews (and the current time) and returns text, so
`reviews.py` keeps the arguments, the calls to the server and the error mapping.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from google.protobuf import json_format, struct_pb2

from signoff.cli.output import compact, humanize, message_dict, plain, pretty, table, truncate
from signoff.core.grants import show
from signoff_client._gen import common_pb2
from signoff_client._gen import review_pb2 as R
from signoff_client._gen.common_pb2 import RuleDecision


def json_line(r: R.Review) -> str:
    """The review as one line of JSON (`list --json`)."""
    return json.dumps(message_dict(r), ensure_ascii=False)


def json_block(r: R.Review) -> str:
    """The review as indented JSON (`show --json` and the acting commands)."""
    return json.dumps(message_dict(r), indent=2, ensure_ascii=False)


def outcome(r: R.Review) -> str:
    """What an act or a cancel left: the new state, and the params the agent will execute."""
    lines = [f"review {r.review_id} ({r.request.action.name}): {summary(r)}"]
    if r.state == R.REVIEW_STATE_MODIFIED:
        lines.append("the agent will execute:")
        lines.append(json.dumps(plain(current_params(r)), indent=2, sort_keys=True))
    return "\n".join(lines)


def listing(reviews: list[R.Review], now: dt.datetime, with_state: bool) -> str:
    """The `list` table, with a state column when more than pending ones were asked for."""
    if not reviews:
        return "no reviews match"
    header = ["id", "group", "action", "params", "reason", "requested by", "waiting", "expires in"]
    rows = []
    for r in reviews:
        pending = r.state == R.REVIEW_STATE_PENDING
        row = [
            r.review_id[-8:],
            r.reviewer_group,
            r.request.action.name,
            truncate(compact(message_dict(r.request.action.params)), 40),
            truncate(r.reason, 40),
            truncate(_requester(r), 24),
            humanize(now - _at(r.created_at)) if pending else "-",
            _expires_in(r, now) if pending else "-",
        ]
        rows.append([*row[:1], _state(r), *row[1:]] if with_state else row)
    if with_state:
        header.insert(1, "state")
    footer = f"{len(reviews)} review(s); ids are shortened: any unique prefix or suffix works"
    return table(header, rows) + "\n\n" + footer


def details(r: R.Review, now: dt.datetime) -> str:
    """The `show` screen: everything needed to decide, on one screen."""
    req = r.request
    pending = r.state == R.REVIEW_STATE_PENDING
    approvers = _approvers(r)
    lines = [
        f"review         {r.review_id}",
        f"state          {state_by(r)} (version {r.version})",
        f"action         {req.action.name}",
        f"reason         {r.reason}",
        f"group          {r.reviewer_group}"
        + (f" (escalated from {', '.join(r.escalated_from)})" if r.escalated_from else ""),
        f"approvals      {len(approvers)} of {r.approvals_required}"
        + (f": {', '.join(sorted(approvers))}" if approvers else ""),
        f"requested by   {_requester(r)}"
        + (f" ({req.principal.kind})" if req.principal.kind else ""),
    ]
    if req.principal.roles or req.principal.tags:
        lines.append(
            f"  roles/tags   {', '.join(req.principal.roles) or '-'} / "
            f"{', '.join(req.principal.tags) or '-'}"
        )
    if claims := _claims(req.principal):
        lines.append(f"  claims       {claims} (unverified: the agent's word)")
    if req.resource.kind or req.resource.id:
        lines.append(f"resource       {req.resource.kind}/{req.resource.id}")
    lines.append(f"opened         {_stamp(r.created_at)} ({humanize(now - _at(r.created_at))} ago)")
    if pending:
        lines.append(
            f"expires        {_stamp(r.expires_at)} (in {_expires_in(r, now)}; "
            f"then {r.on_timeout or 'deny'})"
        )
    else:
        lines.append(f"resolved       {_stamp(r.resolved_at)}")
    if r.resolution_note:
        lines.append(f"note           {r.resolution_note}")
    if r.HasField("grant_offer"):
        lines.append(f"grant          {_offer(r.grant_offer)}")
    if r.in_band:
        lines.append(f"in band        the {r.in_band} ({req.principal.on_behalf_of}) may settle it")
    lines += ["", "justification", f"  {req.justification or '(none given)'}"]
    redacted = f" (redacted: {', '.join(r.redacted_paths)})" if r.redacted_paths else ""
    lines += ["", f"params{redacted}", pretty(message_dict(req.action.params))]
    if r.HasField("final_params"):
        lines += ["", "edited params (what the agent will execute)", pretty(current_params(r))]
    for title, struct in (
        ("context", req.context),
        ("principal attributes", req.principal.attributes),
        ("principal attributes claimed (unverified)", _claimed_attributes(req.principal)),
        ("resource attributes", req.resource.attributes),
    ):
        if struct.fields:
            lines += ["", title, pretty(message_dict(struct))]
    lines += ["", "matched rules"]
    lines += [f"  {_rule(m)}" for m in r.matched_rules] or ["  (none)"]
    lines += ["", "acts"]
    lines += [f"  {_act_line(a)}" for a in r.acts] or ["  (none yet)"]
    lines += ["", "digests", f"  action  {r.action_digest}", f"  final   {r.final_digest or '-'}"]
    lines.append(f"  policy  {r.policy_version}")
    return "\n".join(lines)


def _offer(o: R.GrantOffer) -> str:
    """Whether approving may grant a standing approval (`approve --grant-for`), and how."""
    if not o.allowed:
        return f"not possible: {o.refusal}"
    bounds = ", ".join(
        f"{b.path}{b.op}{show(json_format.MessageToDict(b.value))}" for b in o.default_bounds
    )
    return (
        f"possible with --grant-for (at most {humanize(dt.timedelta(seconds=o.max_ttl_seconds))}, "
        f"{o.max_uses} uses); suggested bounds: {bounds or 'none'}"
    )


def _rule(m: Any) -> str:
    decision = RuleDecision.Name(m.decision).removeprefix("RULE_DECISION_")
    flags = (" [shadow]" if m.shadow else "") + (f" [error: {m.error}]" if m.error else "")
    return f"{m.file}:{m.line}  {m.rule}  {decision}{flags}  {m.reason}".rstrip()


def _act_line(a: R.ReviewAct) -> str:
    verdict = R.Verdict.Name(a.verdict).removeprefix("VERDICT_")
    line = f"{_stamp(a.at)}  {a.reviewer}  {verdict}"
    if a.in_band:
        line += "  [in band, by the requester]"
    if a.comment:
        line += f"  {json.dumps(a.comment, ensure_ascii=False)}"
    if a.verdict == R.VERDICT_MODIFY:
        line += f"  params: {compact(message_dict(a.params))}"
    return line


def _approvers(r: R.Review) -> set[str]:
    # Mirrors the server's count: an edit restarts it, so earlier approvals no longer count.
    acts = list(r.acts)
    last_edit = max((i for i, a in enumerate(acts) if a.verdict == R.VERDICT_MODIFY), default=0)
    approving = (R.VERDICT_APPROVE, R.VERDICT_MODIFY)
    return {a.reviewer for a in acts[last_edit:] if a.verdict in approving}


def summary(r: R.Review) -> str:
    """The state after an act, with the approvals still missing if pending."""
    if r.state == R.REVIEW_STATE_PENDING:
        got = len(_approvers(r))
        return f"still PENDING, {got} of {r.approvals_required} approvals (version {r.version})"
    return f"now {state_by(r)} (version {r.version})"


def state_by(r: R.Review) -> str:
    """The state with who caused it: `APPROVED by carol`, `CANCELLED: customer withdrew`."""
    state = _state(r)
    if r.state in (R.REVIEW_STATE_CANCELLED, R.REVIEW_STATE_EXPIRED) and r.resolution_note:
        return f"{state}: {r.resolution_note}"
    if r.acts:
        return (
            f"{state} by {r.acts[-1].reviewer}"
            if r.state != R.REVIEW_STATE_PENDING
            else (
                f"{state}, last act {R.Verdict.Name(r.acts[-1].verdict).removeprefix('VERDICT_')} "
                f"by {r.acts[-1].reviewer}"
            )
        )
    return state


def current_params(r: R.Review) -> dict[str, Any]:
    """The params as they stand: the latest edit if any, else the (redacted) request."""
    return message_dict(r.final_params if r.HasField("final_params") else r.request.action.params)


def _state(r: R.Review) -> str:
    return R.ReviewState.Name(r.state).removeprefix("REVIEW_STATE_")


def _claims(p: common_pb2.Principal) -> str:
    """What the agent claimed beyond the vouched facts (auth/principals.py), or ""."""
    c = p.claimed
    parts = []
    if c.kind and c.kind != p.kind:
        parts.append(f"kind {c.kind}")
    for name, claimed, facts in (("roles", c.roles, p.roles), ("tags", c.tags, p.tags)):
        if extra := [v for v in claimed if v not in facts]:
            parts.append(f"{name} {', '.join(extra)}")
    if c.on_behalf_of and c.on_behalf_of != p.on_behalf_of:
        parts.append(f"acting for {c.on_behalf_of}")
    return "; ".join(parts)


def _claimed_attributes(p: common_pb2.Principal) -> struct_pb2.Struct:
    """The attributes the agent sent, when they are not the vouched ones."""
    same = p.claimed.attributes == p.attributes
    return struct_pb2.Struct() if same else p.claimed.attributes


def _requester(r: R.Review) -> str:
    p = r.request.principal
    return f"{p.id} for {p.on_behalf_of}" if p.on_behalf_of else p.id or "-"


def _expires_in(r: R.Review, now: dt.datetime) -> str:
    left = _at(r.expires_at) - now
    return humanize(left) if left.total_seconds() >= 0 else f"overdue {humanize(-left)}"


def _at(ts: Any) -> dt.datetime:
    return ts.ToDatetime(tzinfo=dt.UTC)


def _stamp(ts: Any) -> str:
    return _at(ts).strftime("%Y-%m-%d %H:%M:%S UTC")
