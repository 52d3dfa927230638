"""What every adapter shares: the request options of a guarded tool, and its request id.

Framework-free: the adapters translate their tool calls into `Guard.request(...)` and the
resulting `Approval` or `NotApproved` back into their framework's terms.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from signoff_client._async_client import AsyncClient
from signoff_client._base import PrincipalLike, ResourceLike
from signoff_client._client import Client
from signoff_client.models import Decision

# Each option is a value, or a function of the tool call's arguments (as gate() takes them).
PrincipalOption = PrincipalLike | Callable[..., PrincipalLike] | None
ResourceOption = ResourceLike | Callable[..., ResourceLike] | None
ContextOption = Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None
TextOption = str | Callable[..., str]
RequestIdOption = str | Callable[..., str] | None

# The server's limit on request ids (service/signoff/core/validate.py MAX_ID).
_MAX_REQUEST_ID = 200


@dataclass(frozen=True, slots=True)
class Guard:
    """How a guarded tool asks Signoff: the action and the options of its requests."""

    client: Client | AsyncClient
    action: str
    principal: PrincipalOption = None
    resource: ResourceOption = None
    context: ContextOption = None
    justification: TextOption = ""
    request_id: RequestIdOption = None
    timeout: float | None = None
    on_review: Callable[[Decision], object] | None = None

    def request(self, params: Mapping[str, Any], derived_id: str | None) -> dict[str, Any]:
        """Return the keyword arguments of `evaluate`/`require` for one call with `params`.

        `derived_id` is the adapter's request id for the call (from the framework's tool
        call id), used unless the guard was given its own `request_id`.
        """
        request_id = _value(self.request_id, params)
        return {
            "principal": _value(self.principal, params),
            "resource": _value(self.resource, params),
            "context": _value(self.context, params),
            "justification": _value(self.justification, params),
            "request_id": request_id if request_id is not None else derived_id,
        }

    def sync_client(self, tool: str) -> Client:
        """The `Client` a synchronous tool call needs; TypeError naming the tool otherwise."""
        if not isinstance(self.client, Client):
            raise TypeError(f"{tool}: called synchronously, it needs a signoff_client.Client")
        return self.client

    def async_client(self, tool: str) -> AsyncClient:
        """The `AsyncClient` an async tool call needs; TypeError naming the tool otherwise."""
        if not isinstance(self.client, AsyncClient):
            raise TypeError(f"{tool}: called asynchronously, it needs a signoff_client.AsyncClient")
        return self.client


def derive_request_id(*parts: str) -> str:
    """Return a request id made of `parts` (hashed if it would exceed the server's limit).

    The same tool call must always give the same id: that is what makes a re-run (a
    resumed graph, a retried run) find the decision and review it had, not open another.
    """
    joined = ":".join(parts)
    if len(joined) <= _MAX_REQUEST_ID:
        return joined
    return f"{parts[0]}:sha256:{hashlib.sha256(joined.encode()).hexdigest()}"


def _value(option: Any, params: Mapping[str, Any]) -> Any:
    # Principal, Resource, str and dict values are not callable: a callable option is a
    # function of the call's arguments.
    return option(**params) if callable(option) else option
