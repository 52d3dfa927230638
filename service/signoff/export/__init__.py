"""Audit log exports: the JSON Lines and CSV formats, and offline verification (pure: no I/O).

JSON Lines format (version 1) -- a contract: auditors verify these files with their own tools.

* UTF-8, one JSON object per line, each line ending in ``\\n``, no blank lines. Lines come in
  three kinds, told apart by their keys.
* **Entry lines**: exactly the keys ``seq, time, type, actor, request_id, decision_id,
  review_id, action_name, outcome, principal, reviewer, reviewer_group, review_state, rules,
  policy_version, payload, prev_hash, hash`` (no others: nothing outside the hash is allowed).
  ``time`` is ``format_time``'s RFC 3339 (``2024-05-01T12:00:00.000000Z``), ``rules`` an array
  of strings, ``payload`` an object; the rest are strings, ``seq`` an integer. This is every
  input of `signoff.core.audit.entry_hash`, so each line's ``hash`` can be recomputed from it alone
  (an entry written before 0.2.0 may need the older number form: `core.audit.hash_matches`).
  Entries are in ascending ``seq`` order.
* **Checkpoint lines**: ``{"checkpoint": {"seq", "head_hash", "time", "key_id",
  "signature"}}``, a stored signed checkpoint (`signoff.core.checkpoints`) placed right after the
  entry line with that ``seq``. A filtered export carries only those of its exported entries.
  A checkpoint whose tree head witnesses co-signed has a second key on its line,
  ``"cosignatures": [{"log_key_id", "tree_size", "root_hash", "time", "key_id",
  "signature"}, ...]`` (1 to 32, `signoff.core.witness`): checked by whoever holds the
  witnesses' public keys (``signoff audit verify --witness-key``).
* **The end line**, last in every complete export: ``{"end": {"entries": N, "filtered": bool,
  "digest": "<64 hex>", "checkpoint": {"seq", "head_hash", "time", "key_id", "signature"}}}``.
  ``entries`` counts the entry lines; ``filtered`` says whether entries were selected by a
  filter (then gaps between them are expected); ``digest`` is hex SHA-256 over the
  concatenated ASCII ``hash`` values of the exported entries, in file order; ``checkpoint``
  names the last exported entry (``seq`` 0 and 64 zeros when there is none) and the export
  time. Its ``signature`` is made when the export is written, over the RFC 8785 JSON of
  ``{"v": 1, "type": "signoff.export", "seq", "head_hash", "time", "key_id", "entries",
  "filtered", "digest"}`` -- not a chain checkpoint document, so a stored checkpoint cannot
  stand in for an end line (which would hide a tail cut at a checkpoint), and the count, the
  filter flag and the list of exported entries are all signed.

What verification proves: each entry matches its hash; in an unfiltered export, entries are
gap-free and chained; each checkpoint was signed by the key and matches the entry at its seq
(so a chain rewritten with recomputed hashes after it was signed is caught); the end line
matches the file (so a cut tail is caught). Entries after the last stored checkpoint are
vouched for only by the end signature, i.e. by the server at export time.

CSV carries entries only (no checkpoints, no end line: it is for spreadsheets, not for
verification), one row per entry under a header row, columns in `CSV_COLUMNS` order (the
entry line's keys); ``rules`` joined by single spaces, ``payload`` as RFC 8785 canonical JSON
text; quoting per RFC 4180 (``\\r\\n`` line ends). Cells are safe to open in a spreadsheet
(OWASP's CSV injection advice): a value starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return gets a leading ``'`` and is always quoted, so ``=HYPERLINK(...)`` shows as text
and never runs as a formula. The CSV is for reading; the JSON Lines export is the exact
record and is never altered.
"""

from signoff.export.lines import (
    END_TYPE,
    ENTRY_FIELDS,
    ExportWriter,
    checkpoint_from_json,
    checkpoint_json,
    decode_line,
    encode_line,
    end_bytes,
    entry_from_json,
    entry_json,
    export_lines,
)
from signoff.export.table import CSV_COLUMNS, csv_header, csv_row, neutralise
from signoff.export.verify import PROBLEMS, ExportReport, verify_export

__all__ = [
    "CSV_COLUMNS",
    "END_TYPE",
    "ENTRY_FIELDS",
    "PROBLEMS",
    "ExportReport",
    "ExportWriter",
    "checkpoint_from_json",
    "checkpoint_json",
    "csv_header",
    "csv_row",
    "decode_line",
    "encode_line",
    "end_bytes",
    "entry_from_json",
    "entry_json",
    "export_lines",
    "neutralise",
    "verify_export",
]
