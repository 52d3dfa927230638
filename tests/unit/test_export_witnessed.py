"""Offline verification with witnesses (export/witnessed.py): the newest checkpoint needs a
quorum of valid co-signatures of the given witness keys, and the file must reach the trusted
head with its root. Every way to fall short is named."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff.core import log_tree
from signoff.core import witness as w
from signoff.core.checkpoints import Checkpoint, sign
from signoff.export import ExportWriter, verify_export
from signoff.export.witnessed import Witnesses, parse_head
from tests.unit.test_export import ENTRIES, KEY, T0

A_KEY, B_KEY, C_KEY = (Ed25519PrivateKey.generate() for _ in range(3))
PUBLIC = [k.public_key() for k in (A_KEY, B_KEY, C_KEY)]


def heads() -> dict[int, str]:
    frontier, out = log_tree.Frontier(), {}
    for e in ENTRIES:
        leaf = log_tree.entry_leaf_hash(e)
        assert leaf is not None
        frontier.append(leaf)
        out[e.seq] = frontier.root().hex()
    return out


ROOTS = heads()
CPS = {s: sign(KEY, s, ENTRIES[s - 1].hash, T0, root_hash=ROOTS[s]) for s in (5, 10)}


def export(cosigned: dict[int, list[w.Cosignature]], upto: int = 10) -> list[bytes]:
    writer = ExportWriter(KEY, filtered=False)
    lines = []
    for e in ENTRIES[:upto]:
        lines.append(writer.entry(e))
        if e.seq in CPS:
            lines.append(writer.checkpoint(CPS[e.seq], cosigned.get(e.seq, [])))
    lines.append(writer.end(T0 + dt.timedelta(hours=1)))
    return lines


def cosigs(cp: Checkpoint, *keys: Ed25519PrivateKey) -> list[w.Cosignature]:
    return [w.cosign(k, cp, T0 + dt.timedelta(minutes=1)) for k in keys]


def check(lines: list[bytes], quorum: int = 2, head: w.Head | None = None) -> str:
    report = verify_export(lines, KEY.public_key(), witnesses=Witnesses(PUBLIC, quorum, head))
    if report.ok:
        return ""
    assert report.problem == "not witnessed", report
    return report.detail


def test_a_quorum_on_the_newest_checkpoint_and_the_trusted_head_verify() -> None:
    lines = export({5: cosigs(CPS[5], A_KEY), 10: cosigs(CPS[10], A_KEY, B_KEY)})
    assert check(lines) == ""
    assert check(lines, head=w.Head(10, ROOTS[10])) == ""
    assert check(lines, head=w.Head(7, ROOTS[7])) == ""  # an older witnessed head: a prefix


def test_too_few_cosignatures_on_the_newest_checkpoint_fail() -> None:
    lines = export({5: cosigs(CPS[5], A_KEY, B_KEY), 10: cosigs(CPS[10], A_KEY)})
    assert "carries 1 valid co-signature(s) of the 3 witness key(s) given; the quorum is 2" in (
        check(lines)
    )
    assert check(lines, quorum=1) == ""


def test_cosignatures_of_unknown_keys_forged_or_of_another_head_do_not_count() -> None:
    stranger = cosigs(CPS[10], Ed25519PrivateKey.generate())
    forged = [dataclasses.replace(cosigs(CPS[10], B_KEY)[0], time=T0)]  # signed at T0+1m
    old_head = cosigs(CPS[5], A_KEY)  # a true co-signature, of the checkpoint at 5
    twice = cosigs(CPS[10], C_KEY)  # C again: one witness counts once
    for bad in (stranger, forged, old_head, twice):
        lines = export({10: cosigs(CPS[10], C_KEY) + bad})
        assert "carries 1 valid" in check(lines), bad


def test_a_file_short_of_the_trusted_head_names_the_lost_entries() -> None:
    lines = export({5: cosigs(CPS[5], A_KEY, B_KEY)}, upto=7)
    detail = check(lines, head=w.Head(10, ROOTS[10]))
    assert "ends at seq 7 here: seq 8..10 lost (the tail was cut)" in detail
    assert "seq 10 lost" in check(export({5: cosigs(CPS[5], A_KEY, B_KEY)}, upto=9),
                                  head=w.Head(10, ROOTS[10]))  # fmt: skip


def test_a_file_with_another_root_at_the_trusted_size_was_rewritten() -> None:
    lines = export({10: cosigs(CPS[10], A_KEY, B_KEY)})
    detail = check(lines, head=w.Head(8, "ab" * 32))
    assert "the first 8 entries have root" in detail
    assert "history was rewritten and re-signed" in detail


def test_without_witnesses_the_cut_file_verifies_as_before() -> None:
    lines = export({5: cosigs(CPS[5], A_KEY, B_KEY)}, upto=7)
    assert verify_export(lines, KEY.public_key()).ok


@pytest.mark.parametrize("text", ["10", "0:" + "ab" * 32, "5:" + "AB" * 32, "x:y", "5:abc"])
def test_a_bad_trusted_head_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not SIZE:ROOT"):
        parse_head(text)
    assert parse_head("5:" + "ab" * 32) == w.Head(5, "ab" * 32)
