"""Python client of Signoff, the human-in-the-loop decision service.

    from signoff_client import Client

    with Client("localhost:7575", token="...") as signoff:
        approval = signoff.require("refund.issue", {"amount": 750}, principal="support-bot-7")
        issue_refund(**approval.params)  # a reviewer's edits included

Over TLS: `Client(target, credentials=tls_credentials(ca="ca.pem"))`, with `cert=` and
`key=` too for mTLS.

`require()` raises a `errors.NotApproved` subclass when the action must not run;
`gate(...)` does the same around a tool function. `AsyncClient` is the same API for
asyncio. Errors are in `signoff_client.errors`.
"""

from signoff_client import errors
from signoff_client._async_client import AsyncClient
from signoff_client._client import Client
from signoff_client._gate import gate
from signoff_client._tls import tls_credentials
from signoff_client.models import (
    Decision,
    Explanation,
    MatchedRule,
    Outcome,
    Principal,
    Request,
    Resource,
    RuleDecision,
    RuleTrace,
    Screening,
    VariableTrace,
)
from signoff_client.reviews import Approval, Review, ReviewAct, ReviewPage, ReviewState, Verdict

__all__ = [
    "Approval",
    "AsyncClient",
    "Client",
    "Decision",
    "Explanation",
    "MatchedRule",
    "Outcome",
    "Principal",
    "Request",
    "Resource",
    "Review",
    "ReviewAct",
    "ReviewPage",
    "ReviewState",
    "RuleDecision",
    "RuleTrace",
    "Screening",
    "VariableTrace",
    "Verdict",
    "errors",
    "gate",
    "tls_credentials",
]
