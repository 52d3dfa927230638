"""Reviewer fatigue on the refund example: the same refunds before and after a standing approval.

    python examples/fatigue_story.py                 # a private server: temp SQLite, ./policies
    python examples/fatigue_story.py --server 127.0.0.1:50051   # or yours, in dev mode

Day one: an agent asks for N refunds of 501-750 EUR. policies/refunds.yaml sends every one
to a finance reviewer (rule large-refund). Bob rejects one in 50, Alice edits one in 100
and approves the rest in batch acts (`signoff reviews approve --all-like`). The insights
report flags the rule as a candidate for auto-allow.

Day two: Alice approves the first refund with a standing approval (this agent, amount at
most 750, currency EUR, 8 hours, at most N uses). The agent asks for N more refunds, one in
20 of them up to 1,000: those above 750 still reach a reviewer. The report over day two shows it.

The script prints each reviewer command it runs. Exit status 0, or 1 if a step failed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter

from private_server import private_server, signoff_command

from signoff_client import Client, Decision, Outcome, Review

GROUP = "finance"


def main(argv: list[str] | None = None) -> int:
    """Tell the story; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="HOST:PORT of a dev-mode server (default: start one)")
    parser.add_argument("--refunds", type=int, default=1000, help="refunds per day (1000)")
    args = parser.parse_args(argv)
    if args.refunds < 100:
        parser.error("--refunds: at least 100 (the story needs one in 100 edited)")
    with contextlib.ExitStack() as stack:
        target = args.server or stack.enter_context(private_server("story"))
        story = Story(target, args.refunds)
        try:
            story.tell()
        except subprocess.CalledProcessError as e:
            print(f"step failed: {' '.join(e.cmd)}\n{e.stderr}", file=sys.stderr)
            return 1
    return 0


class Story:
    """Two days of refunds by one agent, and what its reviewers do with them."""

    def __init__(self, target: str, refunds: int) -> None:
        self.target = target
        self.refunds = refunds
        # A principal of its own: a standing approval from an earlier run never covers it.
        self.agent = f"support-bot-{uuid.uuid4().hex[:6]}"
        self.rng = random.Random(7)

    def tell(self) -> None:
        """Day one, day two, and the insights report over each."""
        with Client(self.target, token=self.agent, timeout=10) as agent:
            start = _now()
            print(f"== day one: {self.refunds} refunds of 501-750 EUR by {self.agent}")
            t = time.perf_counter()
            opened = [self.ask(agent, "d1", i, self.amount(750)) for i in range(self.refunds)]
            self.report_asks(opened, time.perf_counter() - t)
            self.review_day_one([d.review_id for d in opened])
            middle = _now()

            print(f"\n== day two: {self.refunds} refunds, one in 20 of 501-1,000 EUR")
            first = self.ask(agent, "d2", 0, 750.0)
            self.run(
                "reviews", "approve", first.review_id, "--token", "alice",
                "--comment", "routine: same agent, same range",
                "--grant-for", "8h", "--grant-uses", str(self.refunds),
                "--grant-bound", "amount<=750", "--grant-bound", 'currency=="EUR"',
            )  # fmt: skip
            t = time.perf_counter()
            later = [
                self.ask(agent, "d2", i, self.amount(1000 if i % 20 == 0 else 750))
                for i in range(1, self.refunds)
            ]
            self.report_asks(later, time.perf_counter() - t)
            self.approve_all("alice", "checked against the ticket")
            self.run("grants", "list", "--group", GROUP, "--token", "alice")
            end = _now()

        print("\n== insights, day one")
        self.run("policy", "insights", "--since", start, "--until", middle, "--token", "auditor")
        print("\n== insights, day two")
        self.run("policy", "insights", "--since", middle, "--until", end, "--token", "auditor")

    def amount(self, most: int) -> float:
        """A refund over the review threshold of 500, at most `most`."""
        return round(self.rng.uniform(500.01, most), 2)

    def ask(self, agent: Client, day: str, i: int, amount: float) -> Decision:
        """The agent asks before refunding; it does not wait for reviews here."""
        return agent.evaluate(
            "refund.issue",
            {"amount": amount, "currency": "EUR"},
            principal={"id": self.agent, "kind": "agent"},
            resource={"kind": "account", "id": f"acct_{day}_{i}"},
            request_id=f"{self.agent}:{day}:{i}",
        )

    def report_asks(self, decisions: list[Decision], seconds: float) -> None:
        """How the agent's requests were decided."""
        by_grant = sum(1 for d in decisions if d.reason.startswith("standing approval"))
        outcomes = Counter(d.outcome for d in decisions)
        print(
            f"  {len(decisions)} asked in {seconds:.1f} s: "
            f"{outcomes[Outcome.REQUIRE_REVIEW]} sent to review, "
            f"{outcomes[Outcome.AUTO_ALLOW]} allowed ({by_grant} by the standing approval), "
            f"{outcomes[Outcome.DENY]} denied"
        )

    def review_day_one(self, review_ids: list[str]) -> None:
        """Bob rejects one in 50, Alice edits one in 100, then approves the rest in batches."""
        with Client(self.target, token="bob") as bob, Client(self.target, token="alice") as alice:
            for n, rid in enumerate(review_ids):
                if n % 50 == 49:
                    version = bob.get_review(rid).version
                    bob.submit_review(
                        rid, "reject", expected_version=version, comment="duplicate ticket"
                    )
                elif n % 100 == 0:
                    review = alice.get_review(rid)
                    params = {**review.params, "amount": 500.0}
                    alice.submit_review(
                        rid, "modify", expected_version=review.version, params=params,
                        comment="goodwill is capped at 500",
                    )  # fmt: skip
        print(f"  bob rejected {len(review_ids[49::50])}, alice edited {len(review_ids[::100])}")
        self.approve_all("alice", "looks fine")

    def approve_all(self, reviewer: str, comment: str) -> None:
        """Approve every pending refund of this agent, 100 (the server's batch) per act."""
        with Client(self.target, token=reviewer) as client:
            acts = approved = 0
            while True:
                page = client.list_reviews(groups=[GROUP], action="refund.issue", page_size=500)
                # Only this agent's: on a shared server other refunds may be pending too.
                mine = [
                    r.review_id for r in page.reviews if r.raw.request.principal.id == self.agent
                ]
                if not mine:
                    break
                batch = mine[:100]
                self.run(
                    "reviews", "approve", *batch, "--token", reviewer, "--comment", comment,
                    shown=f"reviews approve <{len(batch)} review ids> --token {reviewer} "
                    f"--comment {comment!r}",
                    quiet=True,
                )  # fmt: skip
                acts += 1
                approved += len(batch)
        print(f"  {reviewer} approved {approved} in {acts} batch acts")

    def run(self, *argv: str, shown: str = "", quiet: bool = False) -> str:
        """Run a `signoff` command against the server, printing it (and its output unless quiet)."""
        shown = shown or " ".join(a if " " not in a and '"' not in a else repr(a) for a in argv)
        print(f"$ signoff {shown}", flush=True)
        done = subprocess.run(
            [signoff_command(), *argv],
            env={**os.environ, "SIGNOFF_SERVER": self.target},
            capture_output=True,
            text=True,
            check=True,
        )
        if not quiet:
            print(done.stdout, end="")
        return done.stdout


def _principal(review: Review) -> str:
    return review.raw.request.principal.id


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


if __name__ == "__main__":
    sys.exit(main())
