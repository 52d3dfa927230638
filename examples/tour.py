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
import shlex
import subprocess
import sys

from private_server import private_server, signoff_command

from signoff_client import Client

AGENT = "support-bot-7"


def main(argv: list[str] | None = None) -> int:
    """Walk the tour; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="HOST:PORT of a dev-mode server (default: start one)")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        target = args.server
        if not target:
            target = stack.enter_context(private_server("tour"))
            print()
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
        [signoff_command(), *argv, "--server", target],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    print(done.stdout.rstrip())


if __name__ == "__main__":
    sys.exit(main())
