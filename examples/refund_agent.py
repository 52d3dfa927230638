"""A support agent that issues refunds only as Signoff allows (see examples/README.md).

    python examples/refund_agent.py --amount 750

Refunds up to 500 go through at once, larger ones wait for a finance reviewer, and
anything over 10,000 is denied (policies/refunds.yaml). The refund itself is a stand-in:
it prints what it would execute. Exit status: 0 executed, 1 not approved, 3 unreachable.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid

from signoff_client import Client, Decision, errors, gate

DEFAULT_SERVER = "127.0.0.1:50051"
# In dev mode (`signoff serve` with no auth configured) the token is the caller's name.
DEFAULT_TOKEN = "support-bot"


def _card(number: str) -> str:
    return f"card ending {number[-4:]}"


def _waiting(decision: Decision) -> None:
    print(f"waiting for a {decision.reviewer_group} reviewer: {decision.reason}")
    print(f"  review {decision.review_id}")
    print(f"  approve: signoff reviews approve {decision.review_id} --token alice", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Issue one refund through the gate; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=os.environ.get("SIGNOFF_SERVER", DEFAULT_SERVER))
    parser.add_argument("--amount", type=float, default=750.0)
    parser.add_argument("--account", default="acct_42")
    parser.add_argument("--card-number", default="4111 1111 1111 1111")
    parser.add_argument("--ticket", default="T-1234")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait")
    parser.add_argument(
        "--request-id",
        help="idempotency key; run again with the same one to resume waiting on the same review",
    )
    args = parser.parse_args(argv)
    token = os.environ.get("SIGNOFF_TOKEN", DEFAULT_TOKEN)
    request_id = args.request_id or f"{args.ticket}:{uuid.uuid4().hex[:8]}"

    with Client(args.server, token=token) as signoff:

        @gate(
            "refund.issue",
            client=signoff,
            principal={"id": token, "kind": "agent"},
            resource=lambda **call: {"kind": "account", "id": call["account"]},
            context={"ticket": args.ticket},
            justification="Customer was charged twice for the same order.",
            request_id=request_id,
            timeout=args.timeout,
            on_review=_waiting,
        )
        def issue_refund(*, account: str, amount: float, currency: str, card_number: str) -> str:
            # Runs only with approved params: a reviewer's edits included, and the real
            # card number (reviewers only ever saw it masked).
            return f"refunded {amount:g} {currency} to {account}, {_card(card_number)}"

        print(f"refund {args.amount:g} EUR to {args.account} (request {request_id})", flush=True)
        try:
            done = issue_refund(
                account=args.account,
                amount=args.amount,
                currency="EUR",
                card_number=args.card_number,
            )
        except errors.NotApproved as e:  # Denied, Rejected, Expired, Cancelled, ReviewTimeout...
            print(f"not executed: {e}")
            return 1
        except (errors.Unavailable, errors.DeadlineExceeded) as e:
            print(f"not executed: Signoff did not answer ({e.message})")
            return 3
    print(f"executed: {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
