"""`signoff audit ...` as an auditor runs it: a real process against a real server.

Dev mode: the bearer token names the caller, and every caller has every role (auditor too).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import signal
import socket
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff import pb
from signoff.core.audit import AuditRecord
from signoff.core.checkpoints import public_pem
from signoff_client._gen import decision_pb2_grpc, review_pb2_grpc

from .conftest import ServerHandle

R = pb.review
SIGNOFF = [sys.executable, "-m", "signoff.cli.main", "audit"]
CARD = "4111111111111111"


async def _cli(
    server: ServerHandle | None, *args: str, target: str | None = None
) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    env["SIGNOFF_TOKEN"] = "ann"
    env["SIGNOFF_SERVER"] = target or (server.target if server else "")
    proc = await asyncio.create_subprocess_exec(
        *SIGNOFF,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def _md(who: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {who}"),)


def _evaluate(server: ServerHandle, amount: float, request_id: str = "") -> pb.common.Decision:
    req = pb.common.ActionRequest(request_id=request_id, justification="order 1234 charged twice")
    req.action.name = "refund.issue"
    req.action.params.update({"amount": amount, "currency": "EUR", "card_number": CARD})
    req.principal.id = "bot"
    return decision_pb2_grpc.DecisionServiceStub(server.channel()).Evaluate(
        req, metadata=_md("bot")
    )


def _act(server: ServerHandle, review_id: str, who: str, verdict: int, **kw: object) -> None:
    req = R.SubmitReviewRequest(review_id=review_id, verdict=verdict, expected_version=1, **kw)
    review_pb2_grpc.ReviewServiceStub(server.channel()).SubmitReview(req, metadata=_md(who))


@dataclass
class Story:
    """What `_traffic` did: an approved review, an edited one, an allow and a deny."""

    approved: pb.common.Decision
    edited: pb.common.Decision


def _traffic(server: ServerHandle) -> Story:
    approved = _evaluate(server, 750, request_id="req-approved")
    edited = _evaluate(server, 800)
    _evaluate(server, 100)
    _evaluate(server, 20_000)
    _act(server, approved.review_id, "alice", R.VERDICT_APPROVE, comment="matches ticket 4411")
    edit = R.SubmitReviewRequest().params
    edit.update({"amount": 500, "currency": "EUR", "card_number": "[REDACTED]"})
    _act(server, edited.review_id, "carol", R.VERDICT_MODIFY, params=edit)
    return Story(approved, edited)


def _checkpoint(server: ServerHandle) -> None:
    server.call(server.running.audit.checkpoint_if_due(1, dt.timedelta(0)))


async def test_query_filters_render_a_table(server):
    _traffic(server)
    code, out, err = await _cli(server, "query", "type=decision", "outcome=deny")
    assert (code, err) == (0, "")
    header, _, *rows = out.strip().splitlines()
    assert header.split() == [
        *("seq", "time", "type", "actor", "action", "outcome", "group", "rules", "state")
    ]
    decisions = [r for r in rows if " decision " in r]
    assert len(decisions) == 1
    assert "DENY" in decisions[0]
    assert "refund-over-hard-limit" in decisions[0]


async def test_query_json_is_one_entry_per_line_with_the_payload_as_an_object(server):
    story = _traffic(server)
    code, out, _ = await _cli(
        server, "query", "--json", "action=refund.*", f"review={story.approved.review_id}"
    )
    assert code == 0
    entries = [json.loads(line) for line in out.splitlines()]
    assert [e["type"] for e in entries] == ["review.opened", "review.approved"]
    assert entries[1]["payload"]["act"]["reviewer"] == "alice"
    assert CARD not in out


async def test_query_pages_newest_first(server):
    _traffic(server)
    code, out, _ = await _cli(server, "query", "--newest", "--limit", "2")
    assert code == 0
    rows = out.strip().splitlines()
    seqs = [int(r.split()[0]) for r in rows[2:4]]
    assert seqs[0] > seqs[1]
    assert rows[-1].startswith("more on the next page")
    code, out, _ = await _cli(server, "query", "--limit", "2", "--all-pages", "--json")
    assert [json.loads(x)["seq"] for x in out.splitlines()] == list(range(1, 10))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["color=red"], "unknown filter 'color' (known: since, until, type,"),
        (["outcome=maybe"], "filter outcome='maybe': not an outcome"),
        (["since=yesterday"], "filter since='yesterday': not a time"),
        (["principal"], "filter 'principal' is not key=value"),
        (["principal=a", "principal=b"], "filter 'principal' given twice"),
        (["type=nope"], "invalid argument: filter.types: unknown entry type 'nope'"),
        (["state=maybe"], "invalid argument: filter.review_state:"),
        (["--limit", "0"], "--limit must be between 1 and 1000"),
    ],
)
async def test_bad_filters_exit_2_naming_them(server, args, message):
    code, out, err = await _cli(server, "query", *args)
    assert (code, out) == (2, "")
    assert err.startswith(f"signoff: {message}")
    assert len(err.splitlines()) == 1


async def test_until_before_since_is_refused_by_the_server(server):
    code, _, err = await _cli(server, "query", "since=-1h", "until=-2h")
    assert code == 2
    assert err.startswith("signoff: invalid argument: filter.until:")
    assert "is not after filter.since" in err


async def test_relative_times_select_recent_entries(server):
    _traffic(server)
    code, out, _ = await _cli(server, "query", "since=-1h", "until=now", "--json")
    assert code == 0
    assert len(out.splitlines()) == 9
    code, out, _ = await _cli(server, "query", "until=2000-01-01", "--json")
    assert (code, out) == (0, "")


@pytest.mark.parametrize("which", ["decision", "review", "request"])
async def test_show_tells_the_story_by_any_id(server, which):
    story = _traffic(server)
    ref = {
        "decision": story.approved.decision_id,
        "review": story.approved.review_id,
        "request": "req-approved",
    }[which]
    code, out, err = await _cli(server, "show", ref)
    assert (code, err) == (0, "")
    for expected in (
        f"decision {story.approved.decision_id}",
        "    action         refund.issue",
        "    principal      bot",
        "    justification  order 1234 charged twice",
        '"card_number": "[REDACTED]"',
        "    outcome        REQUIRE_REVIEW",
        "refunds.yaml:",
        "large-refund  REVIEW",
        f"    policy         {story.approved.policy_version}",
        "review.opened",
        "    group          finance",
        "review.approved",
        "    by             alice (roles:",
        "    verdict        APPROVE",
        '    comment        "matches ticket 4411"',
        "final state: APPROVED",
    ):
        assert expected in out, expected
    assert CARD not in out


@pytest.mark.parametrize("which", ["decision suffix", "review suffix", "decision prefix"])
async def test_show_takes_a_short_id_as_reviews_show_does(server, which):
    story = _traffic(server)
    d = story.approved
    ref = {
        "decision suffix": d.decision_id[-8:],
        "review suffix": d.review_id[-8:],
        # Long enough to pass the timestamp its review id shares: one story, not ambiguous.
        "decision prefix": d.decision_id[:30],
    }[which]
    code, out, err = await _cli(server, "show", ref)
    assert (code, err) == (0, "")
    assert f"decision {d.decision_id}" in out
    assert "final state: APPROVED" in out


async def test_show_an_ambiguous_short_id_lists_the_matches(server):
    story = _traffic(server)
    first, second = story.approved.decision_id, story.edited.decision_id
    prefix = first[: next(i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b)]
    code, out, err = await _cli(server, "show", prefix)
    assert (code, out) == (1, "")
    assert f"signoff: decision or review id {prefix!r} is ambiguous, give more characters" in err
    assert f"{first} (decision of refund.issue)" in err
    assert second in err


async def test_show_an_edit_as_a_diff_of_the_params(server):
    story = _traffic(server)
    code, out, _ = await _cli(server, "show", story.edited.review_id)
    assert code == 0
    assert "review.modified" in out
    assert "    verdict        MODIFY" in out
    assert "      ~ amount: 800 -> 500" in out
    assert "final state: MODIFIED" in out


async def test_show_an_unknown_id_exits_1(server):
    _traffic(server)
    code, out, err = await _cli(server, "show", "no-such-id")
    assert (code, out) == (1, "")
    assert (
        err == "signoff: no audit entries for no-such-id (looked for a decision, review, request)\n"
    )


async def _export_and_key(server: ServerHandle, tmp_path: Path) -> tuple[Path, Path]:
    _traffic(server)
    _checkpoint(server)
    key = tmp_path / "signoff.pub"
    code, out, err = await _cli(server, "checkpoints", "--public-key-out", str(key))
    assert code == 0, err
    assert key.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert out.splitlines()[0].split() == ["seq", "time", "key", "id", "head", "hash"]
    file = tmp_path / "audit.jsonl"
    code, out, err = await _cli(server, "export", "-o", str(file))
    assert (code, out) == (0, "")
    assert err.startswith(f"exported 9 entries to {file}")
    assert sorted(os.listdir(tmp_path)) == ["audit.jsonl", "signoff.pub"]
    return file, key


async def test_export_then_verify_offline_with_the_public_key(server, tmp_path):
    file, key = await _export_and_key(server, tmp_path)
    code, out, err = await _cli(None, "verify", "--public-key", str(key), str(file))
    assert (code, err) == (0, "")
    assert re.match(rf"ok: {file}: 9 entries, [1-9] signed checkpoints verified\n", out)
    code, out, _ = await _cli(None, "verify", str(file))
    assert code == 0
    assert "signatures were not checked" in out.lower()


async def test_one_changed_byte_fails_offline_verify_naming_the_seq(server, tmp_path):
    file, key = await _export_and_key(server, tmp_path)
    lines = file.read_bytes().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith(b'{"seq":5,'))
    lines[at] = lines[at].replace(b"refund.issue", b"refund.issuf", 1)
    file.write_bytes(b"".join(lines))
    code, out, _ = await _cli(None, "verify", "--public-key", str(key), str(file))
    assert code == 1
    assert out.startswith(f"NOT OK: {file}: changed at seq 5 (line {at + 1})")


async def test_a_truncated_export_fails_offline_verify(server, tmp_path):
    file, key = await _export_and_key(server, tmp_path)
    lines = file.read_bytes().splitlines(keepends=True)
    file.write_bytes(b"".join(lines[:-3]))
    code, out, _ = await _cli(None, "verify", "--public-key", str(key), str(file))
    assert code == 1
    assert out.startswith(f"NOT OK: {file}: truncated")


async def test_verify_file_bad_input(server, tmp_path):
    code, _, err = await _cli(None, "verify", str(tmp_path / "missing.jsonl"))
    assert code == 2
    assert "missing.jsonl: No such file or directory" in err
    (tmp_path / "k.pem").write_text("not a key")
    (tmp_path / "f.jsonl").write_text("")
    code, _, err = await _cli(None, "verify", "--public-key", str(tmp_path / "k.pem"), "f.jsonl")
    assert code == 2
    assert "not a PEM public key" in err
    code, _, err = await _cli(server, "verify", "--public-key", str(tmp_path / "k.pem"))
    assert (code, err) == (2, "signoff: --public-key verifies a FILE; give the exported file\n")


async def test_export_csv_to_stdout(server):
    _traffic(server)
    code, out, err = await _cli(server, "export", "--format", "csv", "type=decision")
    assert (code, err) == (0, "")
    header, *rows = out.splitlines()
    assert header.startswith("seq,time,type,")
    assert len(rows) == 4
    assert all(",decision," in r for r in rows)


async def test_an_export_to_a_reader_that_left_exits_141_quietly(server):
    _traffic(server)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    env.update(SIGNOFF_TOKEN="ann", SIGNOFF_SERVER=server.target)
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head` that already exited
    try:
        proc = await asyncio.create_subprocess_exec(
            *SIGNOFF, "export", stdout=write_end, stderr=asyncio.subprocess.PIPE, env=env
        )
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        os.close(write_end)
    assert (proc.returncode, err.decode()) == (141, "")


async def test_a_refused_export_leaves_no_file(server, tmp_path):
    file = tmp_path / "audit.jsonl"
    code, _, err = await _cli(server, "export", "type=nope", "-o", str(file))
    assert code == 2
    assert "filter.types" in err
    assert os.listdir(tmp_path) == []


async def test_verify_against_the_server_in_ranges(server):
    _traffic(server)
    _checkpoint(server)
    code, out, err = await _cli(server, "verify", "--batch", "5", "--progress")
    assert code == 0
    assert re.match(r"ok: 9 entries checked \(seq 1-9\), [1-9] signed checkpoints verified\n", out)
    assert "head: seq 9 " in out
    assert "verified " in err  # progress lines, one per range
    _evaluate(server, 100)
    code, out, _ = await _cli(server, "verify", "--from-checkpoint")
    assert code == 0
    assert out.startswith("ok: 2 entries checked (seq 9-10)")
    code, out, _ = await _cli(server, "verify", "--from", "3", "--to", "6", "--json")
    assert json.loads(out) | {"head_hash": ""} == {
        **{"ok": True, "entries_checked": 4, "first_bad_seq": 0, "problem": ""},
        **{"from_seq": 3, "head_seq": 6, "checkpoints_verified": 0, "head_hash": ""},
    }


def _tamper(server: ServerHandle, sql: str) -> None:
    with sqlite3.connect(server.db_path) as conn:
        for trigger in ("audit_no_update", "audit_no_delete", "audit_chain_insert"):
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        conn.execute(sql)


async def test_verify_after_tampering_with_the_database_names_the_seq(server):
    _traffic(server)
    _tamper(server, "UPDATE audit SET payload = replace(payload, 'refund', 'refunX') WHERE seq = 7")
    code, out, _ = await _cli(server, "verify", "--batch", "4")
    assert code == 1
    assert out.startswith("NOT OK at seq 7: changed")
    assert "6 entries checked from seq 1 before it" in out


async def test_an_export_missing_a_row_names_it_and_writes_no_file(server, tmp_path):
    _traffic(server)
    _tamper(server, "DELETE FROM audit WHERE seq = 5")
    file = tmp_path / "audit.jsonl"
    code, out, err = await _cli(server, "export", "-o", str(file))
    assert (code, out) == (1, "")
    assert err == (
        "signoff: the audit log is missing seq 5 (seq 6 follows 4); entries were deleted "
        "from the database: run `signoff audit verify`\n"
    )
    assert os.listdir(tmp_path) == []


async def test_server_down_exits_3(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but never listening: connections are refused
        for args in (["query"], ["show", "x"], ["verify"], ["export", "-o", str(tmp_path / "f")]):
            code, out, err = await _cli(None, *args, target=f"127.0.0.1:{port}")
            assert (code, out) == (3, ""), args
            assert err.startswith(f"signoff: cannot reach the server at 127.0.0.1:{port}")
    assert os.listdir(tmp_path) == []


async def test_an_interrupted_export_leaves_no_file(server, tmp_path):
    # 40 entries of 256 KiB: far more than gRPC and the OS buffer for a reader that stops.
    blob = "x" * 256 * 1024
    records = [
        AuditRecord(
            type="policy.loaded", actor="t", time=dt.datetime.now(dt.UTC), payload={"b": blob}
        )
        for _ in range(40)
    ]
    server.call(server.running.app.store.append(records))
    file = tmp_path / "audit.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    proc = await asyncio.create_subprocess_exec(
        *SIGNOFF,
        "export",
        "-o",
        str(file),
        "--progress",
        stderr=asyncio.subprocess.PIPE,
        env={**env, "SIGNOFF_TOKEN": "ann", "SIGNOFF_SERVER": server.target},
    )
    assert proc.stderr is not None
    first = await asyncio.wait_for(proc.stderr.readline(), 60)
    assert first.startswith(b"exported ")  # the stream has begun
    # Frozen, the CLI stops reading; the server is stopped while the export is mid-stream.
    proc.send_signal(signal.SIGSTOP)
    server.call(server.running.stop(0))
    proc.send_signal(signal.SIGCONT)
    err = (await asyncio.wait_for(proc.stderr.read(), 60)).decode()
    code = await proc.wait()
    assert code in (1, 3)
    assert "export interrupted after" in err, err
    assert f"{file} was not written" in err
    assert os.listdir(tmp_path) == []


async def test_proof_checks_an_entry_and_a_prefix_against_signed_heads(server, tmp_path):
    _traffic(server)
    _checkpoint(server)
    key = tmp_path / "signoff.pub"
    code, _, err = await _cli(server, "checkpoints", "--public-key-out", str(key))
    assert code == 0, err
    first = server.call(server.running.audit.store.last_checkpoint()).tree_size
    _evaluate(server, 90)
    _checkpoint(server)
    code, out, err = await _cli(server, "proof", "3", "--public-key", str(key))
    assert (code, err) == (0, "")
    assert out.startswith("ok: entry 3 (")
    assert f"is in the log of {first + 1} entries" in out
    code, out, err = await _cli(server, "proof", "2", "--size", str(first))
    assert code == 0, err
    assert "with the server's own key" in out
    code, out, err = await _cli(server, "proof", "--since", str(first), "--public-key", str(key))
    assert (code, err) == (0, "")
    assert out.startswith(f"ok: the log of {first} entries signed at ")
    assert f"is a prefix of the log of {first + 1} " in out
    # Another key: the signed head does not verify, nothing is proven.
    other = tmp_path / "other.pub"
    other.write_bytes(public_pem(Ed25519PrivateKey.generate()))
    code, out, _ = await _cli(server, "proof", "3", "--public-key", str(other))
    assert code == 1
    assert out.startswith("FAILED: checkpoint at seq")
    code, _, err = await _cli(server, "proof", "3", "--size", "999")
    assert code == 2
    assert "no checkpoint signs a tree of 999 entries" in err
    code, _, err = await _cli(server, "proof")
    assert code == 2
    assert "give either SEQ or --since SIZE" in err
