"""`gate`: a decorator that puts `require()` in front of a tool function.

    @gate("refund.issue", client=signoff, principal="support-bot")
    def issue_refund(*, account: str, amount: float) -> str: ...

A call runs `require("refund.issue", <the call's kwargs>, ...)` and then the function with
the approved params as its keyword arguments, and with nothing else: what runs is exactly
what was approved (a reviewer's edits included). Anything else raises the `NotApproved`
exception `require()` raised, and the function does not run.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from signoff_client._async_client import AsyncClient
from signoff_client._base import PrincipalLike, ResourceLike
from signoff_client._client import Client
from signoff_client.models import Decision

F = TypeVar("F", bound=Callable[..., Any])

# Each option is a value, or a function of the call's arguments returning the value.
Option = Callable[..., Any] | Any


def gate(
    action: str,
    *,
    client: Client | AsyncClient,
    params: Callable[..., Mapping[str, Any]] | None = None,
    principal: PrincipalLike | Callable[..., PrincipalLike] | None = None,
    resource: ResourceLike | Callable[..., ResourceLike] | None = None,
    context: Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None = None,
    justification: str | Callable[..., str] = "",
    request_id: str | Callable[..., str] | None = None,
    timeout: float | None = None,
    on_review: Callable[[Decision], object] | None = None,
) -> Callable[[F], F]:
    """Decorate a tool function so that it runs only as `require(action, ...)` approves.

    `params` maps the call's arguments to the action's params (default: the call's
    keyword arguments). `principal`, `resource`, `context`, `justification` and
    `request_id` are values or functions of the call's arguments; give `request_id` as a
    function of the task (e.g. the tool call id) so that a restarted agent resumes waiting
    on the same review; `on_review(decision)` is called when the call starts waiting for
    a review. Sync functions need a `Client`, async functions an `AsyncClient`.
    """

    def decorate(fn: F) -> F:
        is_async = inspect.iscoroutinefunction(fn)
        if is_async and not isinstance(client, AsyncClient):
            raise TypeError(f"gate: async {fn.__qualname__} needs an AsyncClient")
        if not is_async and not isinstance(client, Client):
            raise TypeError(f"gate: {fn.__qualname__} is not async: it needs a Client")

        def arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
            if params is None and args:
                # They would reach neither the reviewer nor the function.
                raise TypeError(
                    f"{fn.__qualname__} is gated: call it with keyword arguments only "
                    "(or give gate() a params= function)"
                )
            return {
                "params": dict(params(*args, **kwargs)) if params else dict(kwargs),
                "principal": _value(principal, args, kwargs),
                "resource": _value(resource, args, kwargs),
                "context": _value(context, args, kwargs),
                "justification": _value(justification, args, kwargs),
                "request_id": _value(request_id, args, kwargs),
                "timeout": timeout,
                "on_review": on_review,
            }

        if is_async:
            async_client = cast(AsyncClient, client)

            @functools.wraps(fn)
            async def async_gated(*args: Any, **kwargs: Any) -> Any:
                approval = await async_client.require(action, **arguments(args, kwargs))
                return await fn(**approval.params)

            return cast(F, async_gated)

        sync_client = cast(Client, client)

        @functools.wraps(fn)
        def gated(*args: Any, **kwargs: Any) -> Any:
            approval = sync_client.require(action, **arguments(args, kwargs))
            return fn(**approval.params)

        return cast(F, gated)

    return decorate


def _value(option: Option, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # Principal, Resource, str and dict values are not callable: a callable option is a
    # function of the call's arguments.
    return option(*args, **kwargs) if callable(option) else option
