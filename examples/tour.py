"""A 60-second tour of Signoff: evaluate, review, approve, audit.

    python examples/tour.py                          # a private server: temp SQLite, ./policies
    python examples/tour.py --server 127.0.0.1:50051 # or yours (`make run`), in dev mode

An agent asks about three refunds; the 750 one waits for a finance reviewer, who approves it
from the command line; the agent gets the approval; an auditor reads the action's story from
the hash-chained audit log and verifies the chain. In dev mode a token is the caller's name.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc

from signoff_client import Client

REPO = Path(__file__).resolve().parents[1]
AGENT = "support-bot-7"


def main(argv: list[str] | None = None) -> int:
    """Walk the tour; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="HOST:PORT of a dev-mode server (default: start one)")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        target = args.server or stack.enter_context(_private_server())
        try:
            tour(target)
        except subprocess.CalledProcessError as e:
            print(f"step failed: {' '.join(e.cmd)}\n{e.stdout}{e.stderr}", file=sys.stderr)
            return 1
    return 0


def tour(target: str) -> None:
    """The four steps, each printed as it happens."""
    print("== 1. the agent asks before it acts")
    with Client(target, token=AGENT) as signoff:
        decisions = {}
        for amount in (120, 750, 25_000):
            d = signoff.evaluate(
                "refund.issue",
                {"amount": amount, "currency": "EUR"},
                principal={"id": AGENT, "kind": "agent"},
                resource={"kind": "account", "id": "acct_42"},
                justification="Customer was charged twice.",
            )
            decisions[amount] = d
            group = d.reviewer_group or "-"
            print(f"{amount:>6}  {d.outcome.name:<14} {group:<8} {d.reason}")
        waiting = decisions[750]

        print("\n== 2. a finance reviewer (alice) looks, then approves")
        signoff_cli(target, "reviews", "show", waiting.review_id, "--token", "alice")
        signoff_cli(
            target, "reviews", "approve", waiting.review_id,
            "--token", "alice", "--comment", "matches ticket T-1234",
        )  # fmt: skip

        print("\n== 3. the agent gets the answer (it would have waited)")
        review = signoff.wait_for_review(waiting.review_id, timeout=30)
        by = ", ".join(a.reviewer for a in review.acts)
        print(f"review {review.review_id}: {review.state.name} by {by}: {review.comment}")

    print("\n== 4. an auditor reads the story and verifies the chain")
    signoff_cli(target, "audit", "show", waiting.decision_id, "--token", "auditor")
    signoff_cli(target, "audit", "verify", "--token", "auditor")


def signoff_cli(target: str, *argv: str) -> None:
    """Run one `signoff` command against the server, printing it and what it printed."""
    print("$ " + shlex.join(["signoff", *argv]))
    done = subprocess.run(
        [_signoff(), *argv, "--server", target],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    print(done.stdout.rstrip())


def _signoff() -> str:
    """The `signoff` command beside this Python (the virtualenv's), else on PATH."""
    beside = Path(sys.executable).with_name("signoff")
    return str(beside) if beside.exists() else (shutil.which("signoff") or "signoff")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _private_server() -> Iterator[str]:
    """`signoff serve` on a free port with a temporary SQLite file and ./policies."""
    with tempfile.TemporaryDirectory(prefix="signoff-tour-") as tmp:
        target = f"127.0.0.1:{_free_port()}"
        argv = [
            _signoff(), "serve", "--policies", str(REPO / "policies"),
            "--db", f"sqlite:///{tmp}/tour.db", "--listen", target, "--http-listen", "",
            "--log-level", "warning",
        ]  # fmt: skip
        log = open(f"{tmp}/server.log", "w")  # noqa: SIM115 -- closed below, after the server
        # A throwaway server: its signing key goes with its database, not to ~/.local/state.
        env = {**os.environ, "SIGNOFF_STATE_DIR": f"{tmp}/state"}
        server = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        try:
            with grpc.insecure_channel(target) as channel:
                grpc.channel_ready_future(channel).result(timeout=60)
            print(f"(a private server on {target}, database {tmp}/tour.db)\n")
            yield target
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
            if server.returncode not in (0, -15):
                print(Path(f"{tmp}/server.log").read_text(), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
