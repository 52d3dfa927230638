"""CSV export: entries only, one row each, for spreadsheets (format in __init__)."""

from __future__ import annotations

import csv
import io

from signoff.audit import AuditEntry, format_time
from signoff.export.lines import ENTRY_FIELDS

CSV_COLUMNS = ENTRY_FIELDS


def _encode(row: list[str] | tuple[str, ...]) -> bytes:
    out = io.StringIO()
    # QUOTE_MINIMAL quotes fields holding commas, quotes or line breaks, per RFC 4180.
    csv.writer(out, lineterminator="\r\n").writerow(row)
    return out.getvalue().encode("utf-8")


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
