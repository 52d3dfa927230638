"""`Client`: the blocking twin (see `_base` for everything it shares with `AsyncClient`)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
from google.protobuf.message import Message

from signoff_client import _approval
from signoff_client._base import BaseClient, ChannelOptions, PrincipalLike, ResourceLike
from signoff_client._gen import audit_pb2, audit_pb2_grpc, decision_pb2_grpc, review_pb2_grpc
from signoff_client.models import Decision, Explanation, Request, Screening
from signoff_client.reviews import Approval, Review, ReviewPage, ReviewState, Verdict

T = TypeVar("T")


class Client(BaseClient):
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
        self._reviews = review_pb2_grpc.ReviewServiceStub(self._channel)
        self._audit = audit_pb2_grpc.AuditServiceStub(self._channel)

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

    def screen(
        self,
        requests: Sequence[Request | Mapping[str, Any]],
        *,
        varying: Sequence[str] = (),
        timeout: float | None = None,
    ) -> list[Screening]:
        """Which of `requests` (without params) the policies deny whatever the params;
        `varying`: context paths each real call sets to its own value. Nothing is stored."""
        raw = self._call(self._decisions.Screen, self._screen_request(requests, varying), timeout)
        return [Screening.from_proto(r, raw.policy_version) for r in raw.results]

    def require(
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
        on_review: Callable[[Decision], object] | None = None,
    ) -> Approval:
        """Evaluate, wait for the review if one is needed, and return what may be executed.

        Raises a `NotApproved` subclass (Denied, Rejected, Expired, Cancelled,
        ReviewTimeout, DigestMismatch) whenever the action must not run. `on_review` is
        called with the REQUIRE_REVIEW decision just before waiting starts.
        """
        started, evaluate_timeout = self._require_budget(timeout)
        decision = self.evaluate(
            action,
            params,
            principal=principal,
            resource=resource,
            context=context,
            justification=justification,
            request_id=request_id,
            timeout=evaluate_timeout,
        )
        approval = _approval.from_decision(decision, params)
        if approval is not None:
            return approval
        if on_review is not None:
            on_review(decision)
        wait = self._wait_budget(started, timeout)
        review = self.wait_for_review(decision.review_id, timeout=wait)
        return _approval.from_review(action, params, decision, review)

    def get_review(self, review_id: str, *, timeout: float | None = None) -> Review:
        """Return a review as it stands now."""
        return Review.from_proto(
            self._call(self._reviews.GetReview, self._get_request(review_id), timeout)
        )

    def wait_for_review(self, review_id: str, *, timeout: float | None) -> Review:
        """Block until the review is resolved and return it; ReviewTimeout at the deadline.

        Watches the review's stream and reopens it whenever it drops (server restart,
        network): the server sends the current state first, so no change is missed.
        `timeout` None waits until the review resolves (reviews expire on the server).
        """
        request = self._watch_request(review_id)
        reconnects = self._reconnects(timeout)
        last: Review | None = None
        while True:
            error: grpc.RpcError | None = None
            call = self._reviews.WatchReview(
                request, timeout=reconnects.remaining(), metadata=self._metadata
            )
            try:
                for raw in call:
                    reconnects.received()
                    last = Review.from_proto(raw)
                    if last.final:
                        return last
            except grpc.RpcError as exc:
                error = exc
            finally:
                call.cancel()  # no-op once ended; frees the stream if we leave early
            time.sleep(self._rewatch_after(review_id, error, reconnects, last))

    def list_reviews(
        self,
        *,
        groups: Sequence[str] = (),
        states: Sequence[ReviewState | str] = (),
        action: str = "",
        order: str = "oldest",
        older_than: float | dt.timedelta | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> ReviewPage:
        """Return one page of the reviews the caller may see (PENDING only by default)."""
        req = self._list_request(groups, states, action, order, older_than, page_size, page_token)
        return ReviewPage.from_proto(self._call(self._reviews.ListReviews, req, timeout))

    def submit_review(
        self,
        review_id: str,
        verdict: Verdict | str,
        *,
        expected_version: int,
        params: Mapping[str, Any] | None = None,
        comment: str = "",
        timeout: float | None = None,
    ) -> Review:
        """Approve, modify (with `params`) or reject, as a reviewer; returns the new review."""
        req = self._submit_request(review_id, verdict, expected_version, params, comment)
        return Review.from_proto(self._call(self._reviews.SubmitReview, req, timeout))

    def receipt_proof(
        self,
        receipt: Any,
        *,
        tree_size: int = 0,
        min_cosignatures: int = 0,
        unwitnessed: bool = False,
        timeout: float | None = None,
    ) -> audit_pb2.ReceiptProof:
        """Upgrade `receipt` (a Receipt, or a Decision, Review or Approval carrying one)
        with the proof that the log records its allow, up to a checkpoint witnesses
        co-signed; check it offline with `receipt_proofs.verify`. FailedPrecondition
        until a witness co-signed a checkpoint covering it: ask again later."""
        req = self._receipt_proof_request(receipt, tree_size, min_cosignatures, unwitnessed)
        return self._call(self._audit.GetReceiptProof, req, timeout)

    def cancel_review(
        self, review_id: str, reason: str = "", *, timeout: float | None = None
    ) -> Review:
        """Withdraw the caller's own pending review; returns it CANCELLED."""
        req = self._cancel_request(review_id, reason)
        return Review.from_proto(self._call(self._reviews.CancelReview, req, timeout))

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
