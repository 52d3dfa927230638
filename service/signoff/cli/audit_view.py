"""How `signoff audit` shows the log: the entry table, one action's story, reports, progress.

Rendering only: functions take entries or results and return text (`Progress` writes to the
stream it is given), so `audit.py` keeps the arguments, the server calls and the exit codes.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.message import Message

from signoff.cli.output import diff, message_dict, pretty, table, truncate
from signoff_client._gen import audit_pb2 as A
from signoff_client._gen import review_pb2 as R
from signoff_client._gen.common_pb2 import Outcome

ACTS = {"review.approved", "review.modified", "review.rejected"}


def payload(e: A.AuditEntry) -> dict[str, Any]:
    """The entry's payload as an object ({} if it is not one)."""
    try:
        value = json.loads(e.payload_json or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def json_line(msg: Message) -> str:
    """An entry (payload as an object) or a checkpoint as one line of JSON."""
    data = message_dict(msg)
    # proto3 JSON writes int64 as strings; sequence numbers read better, and sort, as numbers.
    data["seq"] = int(data.get("seq", 0))
    if isinstance(msg, A.AuditEntry):
        data.pop("payload_json", None)
        data["payload"] = payload(msg)
    return json.dumps(data, ensure_ascii=False)


def listing(entries: list[A.AuditEntry]) -> str:
    """The `query` table."""
    if not entries:
        return "no entries match"
    header = ["seq", "time", "type", "actor", "action", "outcome", "group", "rules", "state"]
    rows = []
    for e in entries:
        p = payload(e)
        d = p.get("decision", {})
        rows.append(
            [
                str(e.seq),
                _stamp(e.time),
                e.type,
                truncate(e.actor or "-", 20),
                e.action_name or "-",
                _outcome(e.outcome) or "-",
                d.get("reviewer_group") or p.get("reviewer_group") or "-",
                truncate(",".join(_rule_names(d)) or "-", 30),
                p.get("state", "-"),
            ]
        )
    return table(header, rows) + f"\n\n{len(entries)} entries"


def _rule_names(decision: dict[str, Any]) -> list[str]:
    return [
        m.get("rule", "?") + ("~" if m.get("shadow") else "")
        for m in decision.get("matched_rules", [])
    ]


def story(entries: list[A.AuditEntry], reviews: dict[str, R.Review]) -> str:
    """One action's timeline: request, decision, review opened, each act, final state.

    `reviews` (by id) supply what review.opened entries do not record: approvals, deadline.
    """
    lines: list[str] = []
    final = ""
    for e in entries:
        p = payload(e)
        lines += ["", f"#{e.seq}  {_stamp(e.time)}  {e.type}"]
        if e.type == "decision":
            lines += _request(p.get("request", {}))
            lines += _decision(p.get("decision", {}), e)
            final = _outcome(e.outcome)
        elif e.type.startswith("review."):
            lines += _review_change(e, p, reviews.get(e.review_id))
            final = f"{p.get('state', '?')} (review {e.review_id})"
        else:
            lines += [f"  {k:<15}{_scalar(v)}" for k, v in sorted(p.items())]
    first = entries[0]
    head = f"{first.action_name or first.type}"
    ids = [
        f"{name} {value}"
        for name, value in (
            ("decision", first.decision_id),
            ("review", next((e.review_id for e in entries if e.review_id), "")),
            ("request", first.request_id),
        )
        if value
    ]
    decisions = {e.decision_id for e in entries if e.type == "decision"}
    if len(decisions) > 1:
        # Request ids are idempotency keys per principal: two agents may reuse one.
        ids.append(f"note: {len(decisions)} decisions match, interleaved by seq")
    return "\n".join([f"{head}: {', '.join(ids)}", *lines, "", f"final state: {final or '-'}"])


def _request(r: dict[str, Any]) -> list[str]:
    who = r.get("principal", {})
    by = who.get("id", "-") + (f" for {who['on_behalf_of']}" if who.get("on_behalf_of") else "")
    if who.get("kind"):
        by += f" ({who['kind']})"
    out = [
        "  request",
        f"    action         {r.get('action', {}).get('name', '-')}",
        f"    principal      {by}",
    ]
    res = r.get("resource", {})
    if res:
        out.append(f"    resource       {res.get('kind', '')}/{res.get('id', '')}")
    out.append(f"    justification  {r.get('justification') or '(none given)'}")
    params = r.get("action", {}).get("params", {})
    out += ["    params (as stored, redacted)", pretty(params, " " * 6)]
    if r.get("context"):
        out += ["    context", pretty(r["context"], " " * 6)]
    return out


def _decision(d: dict[str, Any], e: A.AuditEntry) -> list[str]:
    out = [
        "  decision",
        f"    outcome        {d.get('outcome') or _outcome(e.outcome)}",
        f"    reason         {d.get('reason', '-')}",
        f"    policy         {d.get('policy_version') or e.policy_version or '-'}",
    ]
    if d.get("reviewer_group"):
        out.append(f"    reviewers      {d['reviewer_group']}")
    rules = d.get("matched_rules", [])
    out.append("    matched rules" + ("" if rules else "  (none: the default applied)"))
    for m in rules:
        flags = (" [shadow]" if m.get("shadow") else "") + (
            f" [error: {m['error']}]" if m.get("error") else ""
        )
        where = f"{m.get('file', '?')}:{m.get('line', '?')}"
        out.append(f"      {where}  {m.get('rule', '?')}  {m.get('decision', '')}{flags}")
        if m.get("reason"):
            out.append(f"        {m['reason']}")
    return out


def _review_change(e: A.AuditEntry, p: dict[str, Any], r: R.Review | None) -> list[str]:
    roles = ", ".join(p.get("actor_roles", []))
    out = [f"    by             {e.actor}" + (f" (roles: {roles})" if roles else "")]
    if e.type == "review.opened":
        out.insert(0, f"    review         {e.review_id}")
        out.append(f"    group          {p.get('reviewer_group', '-')}")
        out += _terms(p, r)
    act = p.get("act")
    if e.type in ACTS and isinstance(act, dict):
        act_roles = ", ".join(act.get("roles", []))
        out[0] = f"    by             {act.get('reviewer', e.actor)}" + (
            f" (roles: {act_roles})" if act_roles else ""
        )
        out.append(f"    verdict        {act.get('verdict', '-')}")
        if act.get("comment"):
            out.append(f"    comment        {json.dumps(act['comment'], ensure_ascii=False)}")
        if "params" in act:
            changes = diff(p.get("requested_params", {}), act["params"])
            out.append("    params (- removed, + added, ~ changed: requested -> approved)")
            out += [f"      {c}" for c in changes] or ["      (no change)"]
    if e.type == "review.escalated":
        came = ", ".join(p.get("escalated_from", []))
        out.append(f"    escalated to   {p.get('reviewer_group', '-')} (from {came or '-'})")
    if p.get("note"):
        out.append(f"    note           {p['note']}")
    out.append(f"    state          {p.get('state', '-')} (version {p.get('version', '?')})")
    return out


def _terms(p: dict[str, Any], r: R.Review | None) -> list[str]:
    if "approvals_required" in p or r is None:
        # Prefer the entry; without it and without the review, say so rather than guess.
        return [
            f"    approvals      {p.get('approvals_required', '(not recorded)')}",
            f"    deadline       {p.get('expires_at', '(not recorded)')}",
        ]
    return [
        f"    approvals      {r.approvals_required} (from the review, not the audit entry)",
        f"    deadline       {_stamp(r.expires_at)} (then {r.on_timeout or 'deny'})",
    ]


def verify_report(r: A.VerifyAuditResponse) -> str:
    """The outcome of `verify` against the server."""
    if r.ok:
        span = f"seq {r.from_seq}-{r.head_seq}" if r.entries_checked else "nothing to check"
        return (
            f"ok: {r.entries_checked} entries checked ({span}), "
            f"{r.checkpoints_verified} signed checkpoints verified\n"
            f"head: seq {r.head_seq} {r.head_hash or '-'}"
        )
    where = f" at seq {r.first_bad_seq}" if r.first_bad_seq else ""
    return (
        f"NOT OK{where}: {r.problem}\n"
        f"{r.entries_checked} entries checked from seq {r.from_seq} before it, "
        f"{r.checkpoints_verified} signed checkpoints verified"
    )


def verify_json(r: A.VerifyAuditResponse) -> str:
    """The `verify` result as JSON."""
    fields = ("ok", "entries_checked", "first_bad_seq", "problem", "from_seq", "head_seq")
    data = {f: getattr(r, f) for f in fields}
    data |= {"checkpoints_verified": r.checkpoints_verified, "head_hash": r.head_hash}
    return json.dumps(data, ensure_ascii=False)


def file_report(report: Any, key: Sequence[Ed25519PublicKey] | None, path: Path) -> str:
    """The outcome of `verify FILE` (a `signoff.export.ExportReport`)."""
    if report.ok:
        lines = [
            f"ok: {path}: {report.entries} entries, "
            f"{report.checkpoints_verified} signed checkpoints verified",
            f"head: seq {report.head_seq} {report.head_hash or '-'}",
        ]
    else:
        where = f"seq {report.first_bad_seq}" if report.first_bad_seq else "-"
        lines = [
            f"NOT OK: {path}: {report.problem} at {where} (line {report.first_bad_line}): "
            f"{report.detail}",
            f"{report.entries} entries read, last good seq {report.head_seq}",
        ]
    if key is None and not any("signature" in n for n in report.notes):
        lines.append("signatures were NOT checked (no --public-key): hashes and links only")
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def file_json(report: Any, key: Sequence[Ed25519PublicKey] | None) -> str:
    """The `verify FILE` result as JSON."""
    fields = ("ok", "entries", "checkpoints_verified", "first_bad_seq", "first_bad_line")
    data = {f: getattr(report, f) for f in fields}
    data |= {
        "problem": report.problem,
        "detail": report.detail,
        "head_seq": report.head_seq,
        "head_hash": report.head_hash,
        "signatures_checked": key is not None,
        "notes": list(report.notes),
    }
    return json.dumps(data, ensure_ascii=False)


def checkpoints(resp: A.GetCheckpointsResponse, limit: int) -> str:
    """The `checkpoints` table with the key that signed them."""
    key = f"public key {resp.key_id}" if resp.key_id else "the server has no signing key"
    if not resp.checkpoints:
        return f"no checkpoints\n{key}"
    rows = [
        [str(c.seq), _stamp(c.time), c.key_id, c.head_hash[:16] + "…"] for c in resp.checkpoints
    ]
    more = f" (the newest {limit}; --limit for more)" if len(rows) == limit else ""
    body = table(["seq", "time", "key id", "head hash"], rows)
    return f"{body}\n\n{len(rows)} checkpoint(s){more}; {key}"


class Progress:
    """`N entries, R/s` on one rewritten stderr line, at most a few times a second."""

    def __init__(
        self, out: TextIO, verb: str, *, forced: bool, total: int = 0, unit: str = "entries"
    ) -> None:
        self.out = out
        self.verb = verb
        self.tty = out.isatty()
        self.on = forced or self.tty
        self.total = total
        self.unit = unit
        self.start = time.monotonic()
        self.shown = 0.0
        self.dirty = False

    def update(self, n: int) -> None:
        """Show `n` done if the last line is old enough (0.2s on a TTY, 2s in a log)."""
        if not self.on:
            return
        now = time.monotonic()
        if now - self.shown < (0.2 if self.tty else 2.0):
            return
        self.shown = now
        rate = n / max(now - self.start, 1e-6)
        of = f" of {self._amount(self.total)}" if self.total > 0 else ""
        pct = f" ({100 * n // self.total}%)" if self.total > 0 else ""
        line = f"{self.verb} {self._amount(n)}{of}{pct}, {self._amount(rate)}/s"
        if self.tty:
            self.out.write(f"\r\033[K{line}")
            self.dirty = True
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def _amount(self, n: float) -> str:
        if self.unit == "bytes":
            return f"{n / 2**20:,.1f} MiB"
        return f"{n:,.0f} {self.unit}"

    def counting(self, lines: Iterable[bytes]) -> Iterator[bytes]:
        """`lines` passed through, showing the bytes read so far."""
        done = 0
        for line in lines:
            done += len(line)
            self.update(done)
            yield line

    def clear(self) -> None:
        """Remove the progress line so that what follows starts on a clean line."""
        if self.dirty:
            self.out.write("\r\033[K")
            self.out.flush()
            self.dirty = False

    def done(self, n: int, where: str, *, always: bool) -> None:
        """The closing summary, shown when progress was, or `always`."""
        self.clear()
        if self.on or always:
            took = time.monotonic() - self.start
            self.out.write(f"{self.verb} {self._amount(n)}{where} in {took:.1f}s\n")


def _outcome(value: int) -> str:
    return Outcome.Name(value).removeprefix("OUTCOME_") if value else ""


def _scalar(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _stamp(ts: Any) -> str:
    return ts.ToDatetime(tzinfo=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
