"""`Client` and `AsyncClient`: twins over one implementation.

Everything but the I/O lives in `_BaseClient` and the pure modules it calls (request
building in `_request`, retry decisions in `_retry`, error mapping in `errors`); the twins
only open a channel, await or not, and sleep or `await asyncio.sleep`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib import metadata
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from signoff_client import _request
from signoff_client._gen import common_pb2, decision_pb2, decision_pb2_grpc
from signoff_client._retry import Attempts, RetryPolicy
from signoff_client.errors import from_status, status_of
from signoff_client.models import Decision, Explanation, Principal, Request, Resource

T = TypeVar("T")

PrincipalLike = str | Principal | Mapping[str, Any] | common_pb2.Principal
ResourceLike = Resource | Mapping[str, Any] | common_pb2.Resource
ChannelOptions = Sequence[tuple[str, Any]]

try:
    _VERSION = metadata.version("signoff-client")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    _VERSION = "0"

_DEFAULT_OPTIONS: dict[str, Any] = {
    "grpc.primary_user_agent": f"signoff-client-python/{_VERSION}",
    # gRPC waits 1 s before its first reconnect and up to 120 s later; while it waits,
    # every call fails at once with UNAVAILABLE. Reconnect on the scale of our own retry
    # backoff so that retries can find a server that has just restarted.
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 2000,
}


class _BaseClient:
    """Configuration, request building and retry decisions shared by both clients."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None,
        timeout: float,
        retries: int,
        credentials: grpc.ChannelCredentials | None,
        options: ChannelOptions,
    ) -> None:
        if not isinstance(target, str) or not target:
            raise ValueError("target must be a non-empty 'host:port' string")
        self._target = target
        self._timeout = _check_timeout(timeout)
        self._policy = RetryPolicy(retries=retries)
        self._credentials = credentials
        self._options = list({**_DEFAULT_OPTIONS, **dict(options)}.items())
        # Per-call metadata rather than call credentials: those demand TLS, and a local
        # server on a plain port is the common development setup.
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )

    @property
    def target(self) -> str:
        """The server address this client talks to."""
        return self._target

    def __repr__(self) -> str:
        # Never show the token.
        return f"{type(self).__name__}({self._target!r})"

    def _evaluate_request(self, req: Request) -> common_pb2.ActionRequest:
        return _request.to_proto(req)

    def _batch_request(
        self, requests: Sequence[Request | Mapping[str, Any]]
    ) -> decision_pb2.EvaluateBatchRequest:
        if isinstance(requests, str | bytes | Mapping) or not isinstance(requests, Sequence):
            raise ValueError("requests must be a sequence of Request or mappings")
        return decision_pb2.EvaluateBatchRequest(
            requests=[
                _request.to_proto(_request.as_request(r, f"requests[{i}]"), f"requests[{i}]")
                for i, r in enumerate(requests)
            ]
        )

    def _explain_request(self, req: Request) -> common_pb2.ActionRequest:
        # Explain stores nothing, so it needs no idempotency key.
        return _request.to_proto(req, with_id=False)

    def _attempts(self, timeout: float | None) -> Attempts:
        budget = self._timeout if timeout is None else _check_timeout(timeout)
        return Attempts(self._policy, budget)

    def _retry_after(self, exc: grpc.RpcError, attempts: Attempts) -> float:
        """Return the wait before the next attempt, or raise the mapped error."""
        code, details = status_of(exc)
        delay = attempts.retry_after(code)
        if delay is None:
            error = from_status(code, details)
            if attempts.made > 1:
                error.add_note(
                    f"gave up after {attempts.made} attempts in {attempts.elapsed():.2f}s "
                    f"(target {self._target})"
                )
            raise error from exc
        return delay


def _check_timeout(timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ValueError(f"timeout must be a number of seconds, got {timeout!r}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


class Client(_BaseClient):
    """A blocking client of the Signoff decision service; use it as a context manager."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        timeout: float = 5.0,
        retries: int = 3,
        credentials: grpc.ChannelCredentials | None = None,
        options: ChannelOptions = (),
    ) -> None:
        super().__init__(
            target,
            token=token,
            timeout=timeout,
            retries=retries,
            credentials=credentials,
            options=options,
        )
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=self._options)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=self._options)
        self._decisions = decision_pb2_grpc.DecisionServiceStub(self._channel)

    def evaluate(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        *,
        principal: PrincipalLike | None = None,
        resource: ResourceLike | None = None,
        context: Mapping[str, Any] | None = None,
        justification: str = "",
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> Decision:
        """Ask whether `action` with `params` may go ahead; retried safely (see README)."""
        req = Request(action, params, principal, resource, context, justification, request_id)
        raw = self._call(self._decisions.Evaluate, self._evaluate_request(req), timeout)
        return Decision.from_proto(raw)

    def evaluate_batch(
        self,
        requests: Sequence[Request | Mapping[str, Any]],
        *,
        timeout: float | None = None,
    ) -> list[Decision]:
        """Decide several requests in one call; one decision per request, in order."""
        raw = self._call(self._decisions.EvaluateBatch, self._batch_request(requests), timeout)
        return [Decision.from_proto(d) for d in raw.decisions]

    def explain(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        *,
        principal: PrincipalLike | None = None,
        resource: ResourceLike | None = None,
        context: Mapping[str, Any] | None = None,
        justification: str = "",
        timeout: float | None = None,
    ) -> Explanation:
        """Show how the policies treat an action, rule by rule; nothing is stored."""
        req = Request(action, params, principal, resource, context, justification)
        raw = self._call(self._decisions.Explain, self._explain_request(req), timeout)
        return Explanation.from_proto(raw)

    # Reviews (issue 4): `get_review(review_id)` and `wait_for_review(review_id, timeout)`
    # belong here, on a ReviewServiceStub of the same channel; `_call` serves GetReview,
    # WatchReview needs a streaming loop of its own.

    def _call(self, rpc: Callable[..., T], request: Message, timeout: float | None) -> T:
        attempts = self._attempts(timeout)
        while True:
            try:
                return rpc(request, timeout=attempts.start(), metadata=self._metadata)
            except grpc.RpcError as exc:
                time.sleep(self._retry_after(exc, attempts))

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient(_BaseClient):
    """An asyncio client of the Signoff decision service; create it inside the event loop."""

    # `timeout` parameters (noqa: ASYNC109) are deliberate: the deadline travels to the
    # server with the call and bounds the retries, which `asyncio.timeout()` cannot do,
    # and the twins keep one signature.

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        timeout: float = 5.0,
        retries: int = 3,
        credentials: grpc.ChannelCredentials | None = None,
        options: ChannelOptions = (),
    ) -> None:
        super().__init__(
            target,
            token=token,
            timeout=timeout,
            retries=retries,
            credentials=credentials,
            options=options,
        )
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=self._options)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=self._options)
        self._decisions = decision_pb2_grpc.DecisionServiceStub(self._channel)

    async def evaluate(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        *,
        principal: PrincipalLike | None = None,
        resource: ResourceLike | None = None,
        context: Mapping[str, Any] | None = None,
        justification: str = "",
        request_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Decision:
        """Ask whether `action` with `params` may go ahead; retried safely (see README)."""
        req = Request(action, params, principal, resource, context, justification, request_id)
        raw = await self._call(self._decisions.Evaluate, self._evaluate_request(req), timeout)
        return Decision.from_proto(raw)

    async def evaluate_batch(
        self,
        requests: Sequence[Request | Mapping[str, Any]],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> list[Decision]:
        """Decide several requests in one call; one decision per request, in order."""
        request = self._batch_request(requests)
        raw = await self._call(self._decisions.EvaluateBatch, request, timeout)
        return [Decision.from_proto(d) for d in raw.decisions]

    async def explain(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        *,
        principal: PrincipalLike | None = None,
        resource: ResourceLike | None = None,
        context: Mapping[str, Any] | None = None,
        justification: str = "",
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Explanation:
        """Show how the policies treat an action, rule by rule; nothing is stored."""
        req = Request(action, params, principal, resource, context, justification)
        raw = await self._call(self._decisions.Explain, self._explain_request(req), timeout)
        return Explanation.from_proto(raw)

    # Reviews (issue 4): `get_review` and `wait_for_review` go here too, as coroutines.

    async def _call(
        self,
        rpc: Callable[..., Awaitable[T]],
        request: Message,
        timeout: float | None,  # noqa: ASYNC109
    ) -> T:
        attempts = self._attempts(timeout)
        while True:
            try:
                return await rpc(request, timeout=attempts.start(), metadata=self._metadata)
            except grpc.RpcError as exc:
                await asyncio.sleep(self._retry_after(exc, attempts))

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
