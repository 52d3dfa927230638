"""`key=value` filters of `signoff audit query|export`, checked locally into an AuditFilter.

Keys map to AuditFilter fields (FILTERS); type and outcome repeat or take comma-separated
values. Times are RFC 3339, a date, `now` or relative (-2h, -30m, -7d); no zone means UTC.
Every bad filter is a CliError with exit 2 that names it.
"""

from __future__ import annotations

import datetime as dt
import re

from signoff.cli.remote import EXIT_USAGE, CliError
from signoff_client._gen import audit_pb2 as A
from signoff_client._gen.common_pb2 import Outcome

# key -> AuditFilter field; repeatable keys map to repeated fields.
# fmt: off
FILTERS = {
    "since": "since", "until": "until", "type": "types", "action": "action",
    "outcome": "outcomes", "principal": "principal", "reviewer": "reviewer",
    "group": "reviewer_group", "rule": "rule", "state": "review_state",
    "policy": "policy_version", "decision": "decision_id", "review": "review_id",
    "request": "request_id",
}
# fmt: on
REPEATABLE = ("type", "outcome")
OUTCOMES = {"allow": "AUTO_ALLOW", "review": "REQUIRE_REVIEW", "deny": "DENY"}


def parse_filters(items: list[str], now: dt.datetime) -> A.AuditFilter:
    """`key=value` arguments as an AuditFilter; CliError (exit 2) names the bad one."""
    f = A.AuditFilter()
    seen: set[str] = set()
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"filter {item!r} is not key=value", EXIT_USAGE)
        if key not in FILTERS:
            raise CliError(f"unknown filter {key!r} (known: {', '.join(FILTERS)})", EXIT_USAGE)
        if key in seen and key not in REPEATABLE:
            raise CliError(f"filter {key!r} given twice", EXIT_USAGE)
        seen.add(key)
        if not value:
            raise CliError(f"filter {key!r} has an empty value", EXIT_USAGE)
        field = FILTERS[key]
        if key in ("since", "until"):
            getattr(f, field).FromDatetime(parse_time(key, value, now))
        elif key == "outcome":
            f.outcomes.extend(_outcome(v) for v in value.split(","))
        elif key == "type":
            f.types.extend(v.strip() for v in value.split(","))
        else:
            setattr(f, field, value)
    return f


_RELATIVE = re.compile(r"-(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(key: str, text: str, now: dt.datetime) -> dt.datetime:
    """RFC 3339, a date, `now`, or `-2h` (ago); a time without a zone is UTC."""
    if text == "now":
        return now
    rel = _RELATIVE.fullmatch(text)
    if rel:
        return now - dt.timedelta(seconds=int(rel[1]) * _UNITS[rel[2]])
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise CliError(
            f"filter {key}={text!r}: not a time (RFC 3339 like 2026-01-01T09:00:00Z, "
            "a date, or relative like -2h, -30m, -7d)",
            EXIT_USAGE,
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _outcome(text: str) -> int:
    name = text.strip().upper().removeprefix("OUTCOME_")
    name = OUTCOMES.get(name.lower(), name)
    if name not in OUTCOMES.values():
        known = ", ".join([*OUTCOMES, *OUTCOMES.values()])
        raise CliError(f"filter outcome={text!r}: not an outcome (one of {known})", EXIT_USAGE)
    return Outcome.Value(f"OUTCOME_{name}")
