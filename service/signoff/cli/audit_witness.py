"""`signoff audit witness`: vouch for a log from outside it, and compare two witnesses.

    signoff audit witness --server H:P --token T --witness-key WITNESS.pem --log-key LOG.pub \\
        --state DIR [--interval 30s] [--once] [--webhook URL]
    signoff audit witness --compare STATE_A STATE_B --server H:P --token T

Each round reads the newest checkpoint, checks it with the pinned log key, fetches a
consistency proof from the last head this witness co-signed and checks it here
(`signoff_client.merkle`), then co-signs and hands the co-signature back (AddCosignature).
The memory (`core/witness.py`) lives in DIR/state.json on the witness's own disk, replaced
atomically and fsynced before the co-signature leaves, so a crash never forgets a head it
vouched for. An inconsistent checkpoint is not co-signed: the alarm names the sizes and
roots, goes to stderr and to --webhook, and the command exits 4.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc

from signoff.app.audit.witness import cosignature_from_proto, cosignature_proto
from signoff.cli.remote import EXIT_USAGE, CliError
from signoff.cli.when import duration_type
from signoff.core import checkpoints
from signoff.core import witness as w
from signoff.core.wire import timestamp
from signoff.export.witnessed import Witnesses, quorum_problem
from signoff_client._gen import audit_pb2 as A

EXIT_ALARM = 4  # the log is inconsistent with what a witness saw: someone must look
STATE_FILE = "state.json"
# A server that answers one of these to a consistency proof between two heads it signed
# says it cannot show they are one log: the alarm. Other failures (unreachable, too slow,
# a token problem) are the witness's or the network's, and the next poll tries again.
REFUSALS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of `audit witness`."""
    # Not --key: that is the TLS client key of every command that reaches the server.
    p.add_argument(
        "--witness-key", type=Path, help="the witness's Ed25519 private key (PEM, kept here)"
    )
    p.add_argument(
        "--log-key",
        type=Path,
        action="append",
        help="the log's public key (PEM), pinned; repeat it across a rotation: every key's "
        "checkpoints must extend the one log this witness remembers",
    )
    p.add_argument("--state", type=Path, help="directory of the witness's state (its own disk)")
    p.add_argument(
        "--interval",
        type=duration_type,
        default=dt.timedelta(seconds=30),
        help="time between polls (default 30s)",
    )
    p.add_argument("--once", action="store_true", help="one round, then exit")
    p.add_argument(
        "--new-log",
        action="store_true",
        help="the --state remembers other log keys only, and this is another log: start "
        "its memory at its next checkpoint (never for a rotated key: pin the old one too)",
    )
    p.add_argument("--webhook", help="URL to POST an alarm to (JSON)")
    p.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("STATE_A", "STATE_B"),
        help="compare two witnesses' state directories (split view detection)",
    )


def run(client: Any, args: argparse.Namespace) -> int:
    """Witness rounds until an alarm (or one, with --once); or compare two states."""
    if args.compare:
        return compare(client, *args.compare, args.webhook)
    missing = [
        f"--{n.replace('_', '-')}"
        for n in ("witness_key", "log_key", "state")
        if not getattr(args, n)
    ]
    if missing:
        raise CliError(f"witness needs {', '.join(missing)}", EXIT_USAGE)
    try:
        key = checkpoints.load_or_create_key(args.witness_key, create=False)
        log_keys = [checkpoints.load_public_key(p) for p in args.log_key]
    except checkpoints.SigningKeyError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    checkpoints.make_private_dir(args.state)
    pinned = [checkpoints.key_id(k) for k in log_keys]
    known = sorted(load_state(args.state).logs)
    if known and not set(pinned) & set(known) and not args.new_log:
        # A key the memory has never seen would start from trust on first use: after a
        # rotation that would let whoever holds the server cut the tail past this witness.
        raise CliError(
            f"{args.state} remembers log key(s) {', '.join(known)}, not {', '.join(pinned)}: "
            "after a rotation pass the old key too (--log-key OLD.pub --log-key NEW.pub), so "
            "the new key's checkpoints must extend what this witness co-signed; for another "
            "log, --new-log",
            EXIT_USAGE,
        )
    while True:
        alarm = round_once(client, key, log_keys, args.state)
        if alarm is not None:
            raise_alarm(alarm, args.webhook, checkpoints.key_id(log_keys[-1]))
            return EXIT_ALARM
        if args.once:
            return 0
        time.sleep(args.interval.total_seconds())  # a poll: nothing to await in a CLI loop


def round_once(client: Any, key: Any, log_keys: list[Any], state_dir: Path) -> w.Alarm | None:
    """One poll: judge the newest checkpoint; co-sign it or return the alarm."""
    state = load_state(state_dir)
    pinned = {checkpoints.key_id(k): k for k in log_keys}
    resp = client.call("GetCheckpoints", A.GetCheckpointsRequest(limit=1))
    if not resp.checkpoints:
        print("witness: no checkpoint yet", flush=True)
        return None
    msg = resp.checkpoints[-1]
    cp = core_checkpoint(msg)
    # Any pinned key's checkpoint (the log's key before and after a rotation) must extend
    # everything co-signed under any of them: a new key never starts a new memory, so a
    # rotation cannot be used to cut the tail past a witness.
    log_kid = cp.key_id if cp.key_id in pinned else checkpoints.key_id(log_keys[-1])
    log_key = pinned[log_kid]
    mine = w.merged(state, list(pinned))
    last = mine.last
    proof: list[bytes] | None = None
    if last is not None and 0 < last.size < cp.tree_size and cp.key_id in pinned:
        proof = consistency(client, last.size, cp.tree_size)
        if isinstance(proof, w.Alarm):
            return proof
    verdict = w.decide(mine, cp, log_key, proof)
    if isinstance(verdict, w.Alarm):
        return verdict
    # Remembered (durably) before the co-signature leaves: a head vouched for is never lost.
    save_state(state_dir, state.with_log(log_kid, mine.advance(verdict.head)))
    if any(c.key_id == checkpoints.key_id(key) for c in msg.cosignatures):
        print(f"witness: tree head {cp.tree_size} already co-signed", flush=True)
        return None
    cs = w.cosign(key, cp, dt.datetime.now(dt.UTC))
    add = A.AddCosignatureRequest(
        seq=cp.seq,
        cosignature=cosignature_proto(cs),
        public_key_pem=checkpoints.public_pem(key).decode(),
    )
    count = client.call("AddCosignature", add).cosignatures
    print(
        f"witness: co-signed tree head {cp.tree_size} (root {cp.root_hash[:16]}) at seq "
        f"{cp.seq}; it carries {count} co-signature(s)",
        flush=True,  # one line per round, seen as it happens when piped to a log
    )
    return None


def consistency(client: Any, first: int, second: int) -> list[bytes] | w.Alarm:
    """The server's consistency proof between sizes `first` and `second` (both heads it
    signed), or the PROOF_FAILS alarm if it refuses to give one."""
    req = A.GetConsistencyProofRequest(first=first, second=second)
    try:
        return list(client.call("GetConsistencyProof", req).proof)
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        if code not in REFUSALS:
            raise
        details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        return w.Alarm(
            w.Reason.PROOF_FAILS,
            f"the server refused a consistency proof from size {first} to size {second}, "
            f"two heads it signed: {details}",
        )


def core_checkpoint(msg: A.Checkpoint) -> checkpoints.Checkpoint:
    """A checkpoint message as the core's dataclass (its signature is checked later)."""
    return checkpoints.make_checkpoint(
        seq=msg.seq,
        head_hash=msg.head_hash,
        time=timestamp(msg.time, "checkpoint.time"),
        key_id=msg.key_id,
        signature=msg.signature,
        tree_size=msg.tree_size,
        root_hash=msg.root_hash,
    )


# -- state on the witness's own disk ---------------------------------------------------------


def load_state(state_dir: Path) -> w.WitnessState:
    """The state in `state_dir` (empty if none yet); CliError naming the file if unreadable."""
    path = state_dir / STATE_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return w.WitnessState()
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror or exc}", EXIT_USAGE) from None
    try:
        return w.state_from_json(json.loads(text), str(path))
    except ValueError as exc:
        raise CliError(f"{exc} (refusing to start from nothing: restore it)", EXIT_USAGE) from None


def save_state(state_dir: Path, state: w.WitnessState) -> None:
    """Replace the state file atomically: write a temporary file, fsync, rename, fsync dir."""
    path = state_dir / STATE_FILE
    tmp = state_dir / f".{STATE_FILE}.{os.getpid()}.tmp"
    data = json.dumps(w.state_to_json(state), indent=1, sort_keys=True).encode() + b"\n"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(state_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself is durable only once the directory is
    finally:
        os.close(dir_fd)


# -- alarms ----------------------------------------------------------------------------------


def raise_alarm(alarm: w.Alarm, webhook: str | None, log_key_id: str) -> None:
    """Print the alarm and POST it to `webhook` (a failed delivery is reported, not fatal)."""
    print(f"ALARM ({alarm.reason}): {alarm.message}", file=sys.stderr)
    if not webhook:
        return
    body = json.dumps(
        {
            "alarm": str(alarm.reason),
            "message": alarm.message,
            "log_key_id": log_key_id,
            "time": dt.datetime.now(dt.UTC).isoformat(),
        }
    ).encode()
    req = urllib.request.Request(
        webhook, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"witness: the alarm could not be posted to {webhook}: {exc}", file=sys.stderr)


def compare(client: Any, dir_a: Path, dir_b: Path, webhook: str | None) -> int:
    """Split-view check of two witnesses' states; exit 4 on an inconsistency."""
    a, b = load_state(dir_a), load_state(dir_b)
    shared = sorted(set(a.logs) & set(b.logs))
    if not shared:
        raise CliError(f"{dir_a} and {dir_b} share no log key: nothing to compare", EXIT_USAGE)
    for kid in shared:
        found = w.compare(a.log(kid), b.log(kid))
        if isinstance(found, tuple):
            small, big = found
            proof = consistency(client, small.size, big.size) if small.size else []
            found = proof if isinstance(proof, w.Alarm) else w.check_pair(small, big, proof)
        if found is not None:
            raise_alarm(found, webhook, kid)
            return EXIT_ALARM
        heads = f"{a.log(kid).last} / {b.log(kid).last}"
        print(f"ok: log {kid}: the two witnesses saw one log ({heads})")
    return 0


def live_problem(client: Any, witnesses: Witnesses) -> str:
    """Why the live log's newest checkpoint is not vouched for by the witnesses ("" if it
    is): a quorum of valid co-signatures, and consistent with the trusted head if given."""
    resp = client.call("GetCheckpoints", A.GetCheckpointsRequest(limit=1))
    if not resp.checkpoints:
        return "the server holds no checkpoint"
    msg = resp.checkpoints[-1]
    cp = core_checkpoint(msg)
    if problem := quorum_problem(
        witnesses, cp, [cosignature_from_proto(c) for c in msg.cosignatures]
    ):
        return problem
    head = witnesses.trusted_head
    if head is None:
        return ""
    if head.size > cp.tree_size:
        return (
            f"the newest witnessed checkpoint signs {cp.tree_size} entries, the trusted head "
            f"{head.size}: seq {cp.tree_size + 1}..{head.size} lost (the tail was cut)"
        )
    proof = [] if head.size == cp.tree_size else consistency(client, head.size, cp.tree_size)
    if isinstance(proof, w.Alarm):
        return proof.message
    alarm = w.check_pair(head, w.Head(cp.tree_size, cp.root_hash), proof)
    return "" if alarm is None else alarm.message.removeprefix("split view: ")
