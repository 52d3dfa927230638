"""What the adapter tests share: the refund policy and tool function, a reviewer, a fresh import.

Each adapter test wraps `issue_refund_recording(runs)` in its framework's decorator, so
both adapters guard the same function against the same policy.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

from signoff_client import Client, ReviewState

from .conftest import ServerHandle

REFUNDS = """\
name: refunds
actions: ["refund.*"]
rules:
  - name: huge-refund
    when: double(action.params.amount) > 10000.0
    decision: deny
    reason: Refunds above 10,000 are never issued by an agent.
  - name: large-refund
    when: double(action.params.amount) > 500.0
    decision: review
    reviewers: finance
    reason: Refund above 500 needs a finance reviewer.
  - name: small-refund
    when: double(action.params.amount) <= 500.0
    decision: allow
    reason: Small refund.
"""


def issue_refund_recording(runs: list[dict[str, Any]]) -> Callable[..., str]:
    """The refund tool's function; each run appends its arguments to `runs`."""

    def issue_refund(account: str, amount: float) -> str:
        """Refund `amount` EUR to `account`."""
        runs.append({"account": account, "amount": amount})
        return f"refunded {amount:g} EUR to {account}"

    return issue_refund


def all_reviews(server: ServerHandle) -> list[Any]:
    """Every review on `server`, in any state (as the reviewer alice sees them)."""
    with Client(server.target, token="alice") as alice:
        states = [s for s in ReviewState]
        return list(alice.list_reviews(states=states).reviews)


def act(server: ServerHandle, review_id: str, verdict: str, **kw: Any) -> None:
    """Submit alice's `verdict` on the review (at its current version)."""
    with Client(server.target, token="alice") as alice:
        review = alice.get_review(review_id)
        alice.submit_review(review_id, verdict, expected_version=review.version, **kw)


def fresh_output(code: str) -> str:
    """What `code` prints in a fresh interpreter (no framework imported yet), stripped."""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return run.stdout.strip()
