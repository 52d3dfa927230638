"""`signoff audit witness` against `signoff serve`, each in its own process: two witnesses
co-sign the log as it grows, one is killed and restarted mid-stream and goes on from its
state, a witness shown a head inconsistent with its memory refuses, exits 4 and posts the
alarm, and `--compare` catches two witnesses that were shown different logs."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from signoff import pb
from signoff.app.audit.checkpoints import Signer
from signoff.app.audit.desk import AuditDesk
from signoff.auth.identity import Identity
from signoff.core import checkpoints
from signoff.core import witness as w
from signoff.ids import SystemClock
from signoff.store.sqlite.store import SqliteStore
from signoff_client._gen import audit_pb2_grpc, decision_pb2_grpc

from .conftest import EXAMPLE_POLICIES

A = pb.audit
CLI = [sys.executable, "-m", "signoff.cli.main"]


def _md(who: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {who}"),)


class Served:
    """`signoff serve` in a child process (dev auth: every token has every role)."""

    def __init__(self, tmp: Path, db: Path | None = None) -> None:
        self.log_key = tmp / "log.pem"
        self.db = db or tmp / "db.sqlite"
        env = {
            **os.environ,
            "SIGNOFF_AUDIT__SIGNING_KEY": str(self.log_key),
            "SIGNOFF_AUDIT__CHECKPOINT_EVERY": "1",
            "SIGNOFF_AUDIT__CHECKPOINT_INTERVAL": "0.05",
        }
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--listen", "127.0.0.1:0", "--policies", str(EXAMPLE_POLICIES),
             "--db", f"sqlite:///{self.db}", "--log-format", "json"],
            stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        assert self.proc.stderr is not None
        while True:
            line = self.proc.stderr.readline().decode()
            assert line, "server exited before it started"
            if m := re.search(r'"server.started".*"listen": "([^"]+)"', line):
                self.target = m.group(1)
                break
        # Keep the pipe drained so the server never blocks on a full stderr.
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        self.channel = grpc.insecure_channel(self.target)
        self.seq = 0
        self.public = tmp / "log.pub"
        self.public.write_bytes(checkpoints.public_pem(checkpoints.load_public_key(self.log_key)))

    def traffic(self, n: int, tag: str = "req") -> None:
        stub = decision_pb2_grpc.DecisionServiceStub(self.channel)
        for _ in range(n):
            self.seq += 1
            req = pb.common.ActionRequest(request_id=f"{tag}-{self.seq}")
            req.action.name = "email.send"
            req.principal.id = "bot"
            stub.Evaluate(req, metadata=_md("bot"))

    def newest(self, at_least: int) -> A.Checkpoint:
        """The newest checkpoint once one signs a tree of `at_least` entries (the signing
        task runs in the server process: nothing here to await but its answer)."""
        stub = audit_pb2_grpc.AuditServiceStub(self.channel)
        deadline = time.monotonic() + 30
        while True:
            resp = stub.GetCheckpoints(A.GetCheckpointsRequest(limit=1), metadata=_md("ann"))
            if resp.checkpoints and resp.checkpoints[-1].tree_size >= at_least:
                return resp.checkpoints[-1]
            assert time.monotonic() < deadline, f"no checkpoint of {at_least} entries"
            time.sleep(0.05)

    def stop(self) -> None:
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path)
    yield s
    s.stop()


def witness_key(path: Path) -> Path:
    key = Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    path.chmod(0o600)
    return path


def witness(
    served: Served, key: Path, state: Path, *extra: str, once: bool = True
) -> subprocess.CompletedProcess[str]:
    args = [*CLI, "audit", "witness", "--server", served.target, "--token", "wit",
            "--witness-key", str(key), "--log-key", str(served.public), "--state", str(state),
            *(["--once"] if once else []), *extra]  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def state_of(state: Path) -> w.WitnessState:
    return w.state_from_json(json.loads((state / "state.json").read_text()))


def test_two_witnesses_cosign_a_growing_log_and_agree(served: Served, tmp_path: Path) -> None:
    keys = [witness_key(tmp_path / f"w{i}.pem") for i in (1, 2)]
    states = [tmp_path / f"state{i}" for i in (1, 2)]
    served.traffic(3)
    first = served.newest(3)
    for key, state in zip(keys, states, strict=True):
        done = witness(served, key, state)
        assert done.returncode == 0, done.stderr
        assert f"co-signed tree head {first.tree_size}" in done.stdout
    served.traffic(4)
    second = served.newest(first.tree_size + 4)
    for key, state in zip(keys, states, strict=True):
        done = witness(served, key, state)  # proves consistency from its last head
        assert done.returncode == 0, done.stderr
    cp = served.newest(second.tree_size)
    assert cp.seq == second.seq
    assert len(cp.cosignatures) == 2
    assert sorted(cs.key_id for cs in cp.cosignatures) == sorted(_kid(k) for k in keys)
    for state in states:
        assert [h.size for h in state_of(state).log(cp.key_id).heads] == [
            first.tree_size,
            second.tree_size,
        ]
        assert (state / "state.json").stat().st_mode & 0o077 == 0
    done = subprocess.run(
        [*CLI, "audit", "witness", "--server", served.target, "--token", "wit",
         "--compare", str(states[0]), str(states[1])],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "saw one log" in done.stdout


def _kid(path: Path) -> str:
    return checkpoints.key_id(checkpoints.load_or_create_key(path, create=False))


def test_a_witness_killed_mid_stream_goes_on_from_its_state(served: Served, tmp_path: Path) -> None:
    key, state = witness_key(tmp_path / "w.pem"), tmp_path / "state"
    served.traffic(2)
    served.newest(2)
    looping = subprocess.Popen(
        [*CLI, "audit", "witness", "--server", served.target, "--token", "wit",
         "--witness-key", str(key), "--log-key", str(served.public), "--state", str(state),
         "--interval", "1s"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert looping.stdout is not None
    assert "co-signed" in looping.stdout.readline()
    looping.kill()
    looping.wait(30)
    before = state_of(state)
    served.traffic(5)
    newest = served.newest(before.logs[next(iter(before.logs))].heads[-1].size + 5)
    done = witness(served, key, state)
    assert done.returncode == 0, done.stderr
    after = state_of(state).log(newest.key_id)
    assert after.last == w.Head(newest.tree_size, newest.root_hash)
    assert after.heads[: len(before.log(newest.key_id).heads)] == before.log(newest.key_id).heads


class Hook(http.server.BaseHTTPRequestHandler):
    posted: list[dict[str, object]] = []  # noqa: RUF012 -- one receiver per test process

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.posted.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def hook() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Hook.posted.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/alarm"
    server.shutdown()


def test_a_head_inconsistent_with_the_witness_memory_raises_the_alarm(
    served: Served, tmp_path: Path, hook: str
) -> None:
    key, state = witness_key(tmp_path / "w.pem"), tmp_path / "state"
    served.traffic(3)
    cp = served.newest(3)
    assert witness(served, key, state).returncode == 0
    # The witness co-signed a longer log than the server now shows (as after a cut tail):
    # the head it is shown is one it co-signed before, so the log went back.
    doc = json.loads((state / "state.json").read_text())
    doc["logs"][cp.key_id].append({"size": cp.tree_size + 50, "root": "ab" * 32})
    (state / "state.json").write_text(json.dumps(doc))
    done = witness(served, key, state, "--webhook", hook)
    assert done.returncode == 4
    assert "ALARM (size_went_down)" in done.stderr
    assert f"went back from size {cp.tree_size + 50}" in done.stderr
    assert f"entries {cp.tree_size + 1}..{cp.tree_size + 50} are no longer shown" in done.stderr
    [posted] = Hook.posted
    assert posted["alarm"] == "size_went_down"
    assert posted["log_key_id"] == cp.key_id
    # Nothing was co-signed, and the memory is unchanged.
    assert len(served.newest(cp.tree_size).cosignatures) == 1  # the first round's only
    assert state_of(state).log(cp.key_id).last == w.Head(cp.tree_size + 50, "ab" * 32)


def test_a_server_that_refuses_a_consistency_proof_raises_the_alarm(
    served: Served, tmp_path: Path, hook: str
) -> None:
    import sqlite3

    key, state = witness_key(tmp_path / "w.pem"), tmp_path / "state"
    served.traffic(3)
    first = served.newest(3)
    assert witness(served, key, state).returncode == 0
    served.traffic(4)
    second = served.newest(first.tree_size + 4)
    # Whoever holds the database drops the tree's guard and its nodes: the server can no
    # longer show that the head the witness co-signed is a prefix of the new one, and says
    # so (FAILED_PRECONDITION).
    with sqlite3.connect(served.db) as db:
        db.execute("DROP TRIGGER audit_tree_no_delete")
        db.execute("DELETE FROM audit_tree")
    done = witness(served, key, state, "--webhook", hook)
    assert done.returncode == 4, done.stderr
    assert "ALARM (proof_fails)" in done.stderr
    assert (
        f"refused a consistency proof from size {first.tree_size} to size {second.tree_size}"
        in done.stderr
    )
    assert "lacks node" in done.stderr
    [posted] = Hook.posted
    assert posted["alarm"] == "proof_fails"
    assert state_of(state).log(first.key_id).last == w.Head(first.tree_size, first.root_hash)


def test_a_rotated_log_key_must_extend_what_the_witness_co_signed(
    served: Served, tmp_path: Path, hook: str
) -> None:
    key, state = witness_key(tmp_path / "w.pem"), tmp_path / "state"
    served.traffic(3)
    old = served.newest(3)
    assert witness(served, key, state).returncode == 0
    served.stop()
    # The operator rotates the log key: the same database, a new signing key.
    (tmp_path / "rotated").mkdir()
    rotated = Served(tmp_path / "rotated", db=served.db)
    try:
        rotated.traffic(2, tag="after")
        new = rotated.newest(old.tree_size + 2)
        assert new.key_id != old.key_id
        # Pinned to the new key alone, the witness would start a new memory: refused.
        only_new = [*CLI, "audit", "witness", "--server", rotated.target, "--token", "wit",
                    "--witness-key", str(key), "--log-key", str(rotated.public),
                    "--state", str(state), "--once"]  # fmt: skip
        done = subprocess.run(only_new, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2
        assert f"remembers log key(s) {old.key_id}" in done.stderr
        assert "--log-key OLD.pub --log-key NEW.pub" in done.stderr
        # Both keys: the new key's head must extend the old key's, by a consistency proof.
        both = [*only_new, "--log-key", str(served.public)]
        done = subprocess.run(both, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert f"co-signed tree head {new.tree_size}" in done.stdout
        assert state_of(state).log(new.key_id).last == w.Head(new.tree_size, new.root_hash)
        # Had the old key co-signed a longer log, the new key's shorter one is the alarm.
        doc = json.loads((state / "state.json").read_text())
        doc["logs"][old.key_id].append({"size": new.tree_size + 50, "root": "ab" * 32})
        (state / "state.json").write_text(json.dumps(doc))
        done = subprocess.run(
            [*both, "--webhook", hook], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 4
        assert "ALARM (size_went_down)" in done.stderr
    finally:
        rotated.stop()


def test_a_state_file_that_is_not_a_witness_state_is_refused(
    served: Served, tmp_path: Path
) -> None:
    key, state = witness_key(tmp_path / "w.pem"), tmp_path / "state"
    state.mkdir()
    (state / "state.json").write_text('{"v": 1, "logs": []}')
    done = witness(served, key, state)
    assert done.returncode == 2
    assert "logs is not an object" in done.stderr
    assert "refusing to start from nothing" in done.stderr


def test_compare_catches_two_witnesses_shown_different_logs(
    served: Served, tmp_path: Path, hook: str
) -> None:
    served.traffic(3)
    cp = served.newest(3)
    a, b = tmp_path / "a", tmp_path / "b"
    assert witness(served, witness_key(tmp_path / "a.pem"), a).returncode == 0
    b.mkdir()
    forked = w.WitnessState().with_log(cp.key_id, w.LogState((w.Head(cp.tree_size, "cd" * 32),)))
    (b / "state.json").write_text(json.dumps(w.state_to_json(forked)))
    done = subprocess.run(
        [*CLI, "audit", "witness", "--server", served.target, "--token", "wit",
         "--compare", str(a), str(b), "--webhook", hook],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 4
    assert f"split view: for size {cp.tree_size}" in done.stderr
    assert Hook.posted[0]["alarm"] == "forked"
    # At different sizes, the server's consistency proof is checked against both roots.
    smaller = w.WitnessState().with_log(cp.key_id, w.LogState((w.Head(1, "cd" * 32),)))
    (b / "state.json").write_text(json.dumps(w.state_to_json(smaller)))
    done = subprocess.run(
        [*CLI, "audit", "witness", "--server", served.target, "--token", "wit",
         "--compare", str(a), str(b)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 4
    assert "ALARM (proof_fails): split view: size 1" in done.stderr


# -- the attacks: someone holding the server's database and its key ---------------------------


def cut_tail(db: Path, keep: int) -> None:
    """Delete every entry past seq `keep`, with the checkpoints, co-signatures and tree rows
    that covered them, as an attacker with the database would (the guards dropped first)."""
    conn = sqlite3.connect(db, isolation_level=None)
    triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
    for name, _ in triggers:
        conn.execute(f"DROP TRIGGER {name}")
    ids = [r[0] for r in conn.execute("SELECT decision_id FROM audit WHERE seq > ?", (keep,))]
    for table in ("cosignatures", "checkpoints", "audit_rules", "audit_time_regressions",
                  "audit_tree", "audit_index", "audit"):  # fmt: skip
        conn.execute(f"DELETE FROM {table} WHERE seq > ?", (keep,))
    conn.executemany("DELETE FROM decisions WHERE decision_id = ?", [(i,) for i in ids if i])
    conn.execute("UPDATE audit_tree_state SET tree_size = min(tree_size, ?)", (keep,))
    conn.execute("UPDATE audit_index_state SET indexed_through = min(indexed_through, ?)", (keep,))
    for _, sql in triggers:
        conn.execute(sql)
    conn.close()


def public(path: Path) -> Path:
    out = path.with_suffix(".pub")
    out.write_bytes(checkpoints.public_pem(checkpoints.load_public_key(path)))
    return out


def verify_live(served: Served, keys: list[Path], head: w.Head) -> str:
    """`signoff audit verify` against the live log, with the witnesses; the output."""
    args = [*CLI, "audit", "verify", "--server", served.target, "--token", "ann"]
    for key in keys:
        args += ["--witness-key", str(public(key))]
    args += ["--quorum", str(len(keys)), "--trusted-head", f"{head.size}:{head.root}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    return f"rc={done.returncode}\n{done.stdout}{done.stderr}"


def export_db(db: Path, log_key: Path, out: Path) -> None:
    """Export the database as the server would, without starting one (which would append
    its own policy.loaded entry): the attacker's copy exactly as cut."""

    async def run() -> bytes:
        store = SqliteStore(db, SystemClock())
        await store.open()
        try:
            signer = Signer(checkpoints.load_or_create_key(log_key, create=False))
            desk = AuditDesk(store, SystemClock(), signer)
            who = Identity("ann", frozenset({"auditor"}))
            return b"".join([c.data async for c in desk.export(who, A.ExportAuditRequest())])
        finally:
            await store.close()

    out.write_bytes(asyncio.run(run()))


def export_and_verify(
    served: Served | None, tmp: Path, keys: list[Path], head: w.Head, db: Path | None = None
) -> str:
    """Export the served log (or `db`), then verify the file offline with the witnesses."""
    out = tmp / "export.jsonl"
    if served is None:
        assert db is not None
        export_db(db, tmp / "log.pem", out)
    else:
        done = subprocess.run(
            [*CLI, "audit", "export", "--server", served.target, "--token", "ann", "-o", str(out)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    args = [*CLI, "audit", "verify", str(out), "--public-key", str(tmp / "log.pub")]
    for key in keys:
        args += ["--witness-key", str(public(key))]
    if keys:  # without witnesses: what the log key alone lets through
        args += ["--quorum", str(len(keys)), "--trusted-head", f"{head.size}:{head.root}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    return f"rc={done.returncode}\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("regrow", [False, True], ids=["cut-tail", "re-signed-history"])
def test_a_cut_or_rewritten_log_fails_offline_and_alarms_the_witnesses(
    tmp_path: Path, regrow: bool
) -> None:
    keys = [witness_key(tmp_path / f"w{i}.pem") for i in (1, 2)]
    states = [tmp_path / f"state{i}" for i in (1, 2)]
    served = Served(tmp_path)
    try:
        served.traffic(6)
        served.newest(6)
        for key, state in zip(keys, states, strict=True):
            assert witness(served, key, state).returncode == 0
        head = state_of(states[0]).log(served.newest(1).key_id).last
        assert head is not None
        # Witnessed and intact: the export verifies with a quorum of two.
        intact = export_and_verify(served, tmp_path, keys, head)
        assert intact.startswith("rc=0"), intact
        live = verify_live(served, keys, head)
        assert live.startswith("rc=0"), live
        assert "ok: witnessed" in live
    finally:
        served.stop()
    copy = tmp_path / "copy.sqlite"
    shutil.copy(served.db, copy)
    keep = head.size - 3
    cut_tail(copy, keep)
    if not regrow:  # exported as cut: the end line is signed afresh, the chain is whole
        report = export_and_verify(None, tmp_path, keys, head, db=copy)
        assert report.startswith("rc=1"), report
        assert "not witnessed" in report
        assert f"ends at seq {keep} here: seq {keep + 1}..{head.size} lost" in report
        assert export_and_verify(None, tmp_path, [], head, db=copy).startswith("rc=0")
    attacked = Served(tmp_path, copy)  # the same key: the attacker holds it
    try:
        if regrow:  # new entries past the old size, re-signed by the server's own key
            attacked.traffic(5, tag="forged")
            attacked.newest(head.size + 1)
            report = export_and_verify(attacked, tmp_path, keys, head)
            assert report.startswith("rc=1"), report
            assert "not witnessed" in report
            assert "history was rewritten and re-signed" in report
        live = verify_live(attacked, keys, head)
        assert live.startswith("rc=1"), live
        assert "NOT OK: not witnessed" in live
        for key, state in zip(keys, states, strict=True):
            done = witness(attacked, key, state)
            assert done.returncode == 4, done.stdout + done.stderr
            reason = "proof_fails" if regrow else "truncated"
            assert f"ALARM ({reason})" in done.stderr
    finally:
        attacked.stop()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--quorum", "1"], "--quorum and --trusted-head need --witness-key"),
        (["--trusted-head", "3:" + "ab" * 32], "--quorum and --trusted-head need --witness-key"),
        (["--witness-key", "{a}", "--quorum", "2"], "--quorum must be 1-1"),
        (["--witness-key", "{a}", "--quorum", "0"], "--quorum must be 1-1"),
        (["--witness-key", "{a}", "--trusted-head", "3"], "--trusted-head: '3' is not SIZE:ROOT"),
        (["--witness-key", "{missing}"], "cannot read public key"),
    ],
)
def test_bad_witness_flags_of_verify_exit_2_naming_them(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    a = public(witness_key(tmp_path / "a.pem"))
    export = tmp_path / "export.jsonl"
    export.write_text("")
    names = {"a": str(a), "missing": str(tmp_path / "nope.pub")}
    args = [f.format(**names) for f in flags]
    done = subprocess.run(
        [*CLI, "audit", "verify", str(export), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("--witness-key", "witness needs --witness-key"),
        ("--log-key", "witness needs --log-key"),
        ("--state", "witness needs --state"),
    ],
)
def test_a_witness_without_its_key_log_key_or_state_exits_2(
    tmp_path: Path, drop: str, message: str
) -> None:
    key = witness_key(tmp_path / "w.pem")
    given = {"--witness-key": str(key), "--log-key": str(key), "--state": str(tmp_path / "s")}
    args = [x for k, v in given.items() if k != drop for x in (k, v)]
    done = subprocess.run(
        [*CLI, "audit", "witness", "--server", "127.0.0.1:1", "--once", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
