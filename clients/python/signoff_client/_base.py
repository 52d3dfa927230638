"""What `Client` and `AsyncClient` share: configuration, request building, retry decisions.

Everything but the I/O lives here and in the pure modules it calls (request building in
`_request`, retry and reconnect decisions in `_retry`, error mapping in `errors`, the
verdict of `require()` in `_approval`); the twins only open a channel, await or not, and
sleep or `await asyncio.sleep`.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

import grpc

from signoff_client import _request, _struct
from signoff_client._gen import audit_pb2, common_pb2, decision_pb2, review_pb2
from signoff_client._retry import RETRYABLE, Attempts, Reconnects, RetryPolicy
from signoff_client.errors import (
    InvalidArgument,
    ReviewTimeout,
    from_status,
    retry_delay_of,
    status_of,
)
from signoff_client.models import Principal, Request, Resource
from signoff_client.reviews import Review, ReviewState, Verdict

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

_ORDERS = {
    "oldest": review_pb2.REVIEW_ORDER_OLDEST_FIRST,
    "newest": review_pb2.REVIEW_ORDER_NEWEST_FIRST,
}


class BaseClient:
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
        self._timeout = check_timeout(timeout)
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

    # --- decisions ---

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

    def _screen_request(
        self, requests: Sequence[Request | Mapping[str, Any]], varying: Sequence[str]
    ) -> decision_pb2.ScreenRequest:
        # Screen stores nothing either, and answers for every params: none are sent.
        protos = self._batch_request(requests).requests
        for r in protos:
            r.ClearField("request_id")
        return decision_pb2.ScreenRequest(requests=protos, varying=list(varying))

    def _explain_request(self, req: Request) -> common_pb2.ActionRequest:
        # Explain stores nothing, so it needs no idempotency key.
        return _request.to_proto(req, with_id=False)

    # --- reviews ---

    def _get_request(self, review_id: str) -> review_pb2.GetReviewRequest:
        return review_pb2.GetReviewRequest(review_id=_review_id(review_id))

    def _watch_request(self, review_id: str) -> review_pb2.WatchReviewRequest:
        return review_pb2.WatchReviewRequest(review_id=_review_id(review_id))

    def _receipt_proof_request(
        self, receipt: Any, tree_size: int, min_cosignatures: int, unwitnessed: bool
    ) -> audit_pb2.GetReceiptProofRequest:
        raw = (
            receipt
            if isinstance(receipt, common_pb2.Receipt)
            else getattr(receipt, "receipt", None)
        )
        if not isinstance(raw, common_pb2.Receipt) or not raw.payload:
            raise TypeError("receipt: expected a Receipt, or a Decision/Review/Approval with one")
        return audit_pb2.GetReceiptProofRequest(
            receipt=raw,
            tree_size=tree_size,
            min_cosignatures=min_cosignatures,
            unwitnessed=unwitnessed,
        )

    def _cancel_request(self, review_id: str, reason: str) -> review_pb2.CancelReviewRequest:
        _check_str(reason, "reason")
        return review_pb2.CancelReviewRequest(review_id=_review_id(review_id), reason=reason)

    def _submit_request(
        self,
        review_id: str,
        verdict: Verdict | str,
        expected_version: int,
        params: Mapping[str, Any] | None,
        comment: str,
    ) -> review_pb2.SubmitReviewRequest:
        if isinstance(expected_version, bool) or not isinstance(expected_version, int):
            raise InvalidArgument(
                "expected an int (the review version you saw)", field="expected_version"
            )
        _check_str(comment, "comment")
        return review_pb2.SubmitReviewRequest(
            review_id=_review_id(review_id),
            verdict=Verdict.parse(verdict).value,
            expected_version=expected_version,
            # Unset unless given: the server refuses params on anything but MODIFY.
            params=None if params is None else _struct.to_struct(params, "params"),
            comment=comment,
        )

    def _list_request(
        self,
        groups: Sequence[str],
        states: Sequence[ReviewState | str],
        action: str,
        order: str,
        older_than: float | dt.timedelta | None,
        page_size: int,
        page_token: str,
    ) -> review_pb2.ListReviewsRequest:
        if order not in _ORDERS:
            raise ValueError(f"order must be 'oldest' or 'newest', got {order!r}")
        req = review_pb2.ListReviewsRequest(
            reviewer_groups=_request._strings(groups, "reviewer_groups"),
            states=[_state(s).value for s in _as_list(states, "states")],
            order=_ORDERS[order],
            page_size=page_size,
            page_token=page_token,
            action=action,
        )
        if older_than is not None:
            age = older_than if isinstance(older_than, dt.timedelta) else _seconds(older_than)
            req.older_than.FromTimedelta(age)
        return req

    # --- retries and reconnects ---

    def _attempts(self, timeout: float | None) -> Attempts:
        budget = self._timeout if timeout is None else check_timeout(timeout)
        return Attempts(self._policy, budget)

    def _retry_after(self, exc: grpc.RpcError, attempts: Attempts) -> float:
        """Return the wait before the next attempt, or raise the mapped error."""
        code, details = status_of(exc)
        server_delay = retry_delay_of(exc)
        delay = attempts.retry_after(code, server_delay)
        if delay is None:
            error = from_status(code, details, server_delay)
            if server_delay is not None and server_delay >= attempts.remaining():
                error.add_note(
                    f"the server asked to retry in {server_delay:.3f}s; only "
                    f"{attempts.remaining():.3f}s of the call's timeout were left"
                )
            if attempts.made > 1:
                error.add_note(
                    f"gave up after {attempts.made} attempts in {attempts.elapsed():.2f}s "
                    f"(target {self._target})"
                )
            raise error from exc
        return delay

    def _reconnects(self, timeout: float | None) -> Reconnects:
        return Reconnects(self._policy, None if timeout is None else check_timeout(timeout))

    def _rewatch_after(
        self,
        review_id: str,
        exc: grpc.RpcError | None,
        reconnects: Reconnects,
        last: Review | None,
    ) -> float:
        """Return the wait before reopening a watch that ended unresolved, or raise.

        `exc` None means the stream ended without a final state (a server going away
        cleanly). Reopening loses nothing: the server sends the current state first.
        """
        code, details = status_of(exc) if exc is not None else (None, "")
        server_delay = retry_delay_of(exc) if exc is not None else None
        delay = reconnects.retry_after(code, server_delay)
        if delay is not None:
            return delay
        if code is None or code in RETRYABLE or server_delay is not None:
            raise ReviewTimeout(review_id, last, reconnects.elapsed()) from exc
        raise from_status(code, details) from exc

    def _require_budget(self, timeout: float | None) -> tuple[float, float | None]:
        """Return (when require() started, the evaluate call's timeout)."""
        if timeout is None:
            return time.monotonic(), None
        return time.monotonic(), min(self._timeout, check_timeout(timeout))

    @staticmethod
    def _wait_budget(started: float, timeout: float | None) -> float | None:
        """Return what is left of require()'s timeout for waiting on the review."""
        if timeout is None:
            return None
        # At least a sliver: the wait then ends at once with ReviewTimeout, which is the
        # error the caller expects at the deadline.
        return max(1e-3, timeout - (time.monotonic() - started))


def check_timeout(timeout: float) -> float:
    """Return `timeout` as float seconds, or raise ValueError unless positive and finite."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ValueError(f"timeout must be a number of seconds, got {timeout!r}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _review_id(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgument("expected a non-empty str", field="review_id")
    return value


def _check_str(value: object, field: str) -> None:
    if not isinstance(value, str):
        raise InvalidArgument(f"expected a str, got {type(value).__name__}", field=field)


def _as_list(value: object, field: str) -> list[Any]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidArgument(f"expected a list, got {type(value).__name__}", field=field)
    return list(value)


def _state(value: ReviewState | str) -> ReviewState:
    if isinstance(value, ReviewState):
        return value
    if isinstance(value, str) and value.upper() in ReviewState.__members__:
        return ReviewState[value.upper()]
    raise InvalidArgument(f"unknown review state {value!r}", field="states")


def _seconds(value: float) -> dt.timedelta:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidArgument("expected seconds >= 0 or a timedelta", field="older_than")
    return dt.timedelta(seconds=value)
