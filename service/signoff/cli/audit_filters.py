"""`key=value` filters of `signoff audit query|export`, checked locally into an AuditFilter.

Keys map to AuditFilter fields (FILTERS); type and outcome repeat or take comma-separated
values. Times are read by signoff.cli.when: `now`, a duration ago (-2h, 30m, 7d), RFC 3339
or a date; no zone means UTC.
Every bad filter is a CliError with exit 2 that names it.
"""

from __future__ import annotations

import datetime as dt

from signoff.cli.remote import EXIT_USAGE, CliError
from signoff.cli.when import time_filter
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
            getattr(f, field).FromDatetime(time_filter(key, value, now))
        elif key == "outcome":
            f.outcomes.extend(_outcome(v) for v in value.split(","))
        elif key == "type":
            f.types.extend(v.strip() for v in value.split(","))
        else:
            setattr(f, field, value)
    return f


def _outcome(text: str) -> int:
    name = text.strip().upper().removeprefix("OUTCOME_")
    name = OUTCOMES.get(name.lower(), name)
    if name not in OUTCOMES.values():
        known = ", ".join([*OUTCOMES, *OUTCOMES.values()])
        raise CliError(f"filter outcome={text!r}: not an outcome (one of {known})", EXIT_USAGE)
    return Outcome.Value(f"OUTCOME_{name}")
