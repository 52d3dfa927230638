"""Python client of Signoff, the human-in-the-loop decision service.

    from signoff_client import Client

    with Client("localhost:7575", token="...") as signoff:
        decision = signoff.evaluate("refund.issue", {"amount": 120}, principal="support-bot-7")
        if decision.allowed:
            ...

`AsyncClient` is the same API for asyncio. Errors are in `signoff_client.errors`.
"""

from signoff_client import errors
from signoff_client._client import AsyncClient, Client
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
    VariableTrace,
)

__all__ = [
    "AsyncClient",
    "Client",
    "Decision",
    "Explanation",
    "MatchedRule",
    "Outcome",
    "Principal",
    "Request",
    "Resource",
    "RuleDecision",
    "RuleTrace",
    "VariableTrace",
    "errors",
]
