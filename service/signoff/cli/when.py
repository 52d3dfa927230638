"""Times and durations on the command line: one syntax for every flag and filter that takes one.

A duration is one or more NUMBER UNIT terms, units s m h d w: 30s, 15m, 2h, 7d, 1w, 1h30m
(spaces between terms are fine: "1h 30m"). A time is one of

    now                          the moment the command started
    30m, 7d, 1h30m (or -7d)      that long ago; the minus is optional and means the same
    2026-01-01T09:00:00Z         RFC 3339 (any ISO 8601 form Python reads); no zone means UTC
    2026-01-01                   a date: its midnight, UTC

Users: `signoff policy insights --since/--until`, the since=/until= filters of `signoff audit
query|export` and `signoff policy replay`, `signoff reviews list --older-than` and `signoff
reviews approve --grant-for` (durations). docs/cli-times.md documents the same table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re

from signoff.cli.remote import EXIT_USAGE, CliError

# ASCII digits only: \d would also take other scripts' digits, which int() reads silently.
_DURATION = re.compile(r"(?:[0-9]+ *[smhdw] *)+")
_TERM = re.compile(r"([0-9]+) *([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

DURATION_FORMS = "a number and a unit (s, m, h, d, w) like 30s, 15m, 2h, 7d, 1w or 1h30m"
TIME_FORMS = (
    "now, a duration ago like 30m, 2h, 7d or 1h30m (-7d too), "
    "or RFC 3339 like 2026-01-01T09:00:00Z or a date like 2026-01-01 (UTC without a zone)"
)


def parse_duration(text: str) -> dt.timedelta:
    """`30s`, `15m`, `2h`, `7d`, `1w`, `1h30m`; ValueError says what is accepted."""
    compact = text.strip()
    if not _DURATION.fullmatch(compact):
        raise ValueError(f"not a duration; use {DURATION_FORMS}")
    try:
        seconds = sum(int(n) * _UNITS[u] for n, u in _TERM.findall(compact))
        return dt.timedelta(seconds=seconds)
    except (OverflowError, ValueError):  # ValueError: int() refuses over 4300 digits
        raise ValueError("duration out of range (at most 999999999 days)") from None


def parse_time(text: str, now: dt.datetime) -> dt.datetime:
    """`now`, a duration ago (`7d`, `-7d`) or an RFC 3339 time; ValueError says what is accepted."""
    compact = text.strip()
    if compact == "now":
        return now
    ago = compact.removeprefix("-")
    if _DURATION.fullmatch(ago):
        try:
            return now - parse_duration(ago)
        except (OverflowError, ValueError):
            raise ValueError("too far back (before the year 1)") from None
    try:
        t = dt.datetime.fromisoformat(compact)
    except ValueError:
        raise ValueError(f"not a time; use {TIME_FORMS}") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def time_flag(flag: str, text: str, now: dt.datetime) -> dt.datetime:
    """parse_time for `--flag`; a CliError (exit 2) names it: `--since '3x': not a time; ...`."""
    return _cli_time(f"{flag} {text!r}", text, now)


def time_filter(key: str, text: str, now: dt.datetime) -> dt.datetime:
    """parse_time for a `key=value` filter; a CliError (exit 2) names it: `filter since='3x'`."""
    return _cli_time(f"filter {key}={text!r}", text, now)


def _cli_time(label: str, text: str, now: dt.datetime) -> dt.datetime:
    try:
        return parse_time(text, now)
    except ValueError as exc:
        raise CliError(f"{label}: {exc}", EXIT_USAGE) from None


def duration_type(text: str) -> dt.timedelta:
    """parse_duration as an argparse `type`: argparse names the flag and exits 2."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
