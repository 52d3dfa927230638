"""`AsyncClient`: the asyncio twin of `Client` (same methods, same `_base`, awaited)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from signoff_client import _approval
from signoff_client._base import BaseClient, ChannelOptions, PrincipalLike, ResourceLike
from signoff_client._gen import audit_pb2, audit_pb2_grpc, decision_pb2_grpc, review_pb2_grpc
from signoff_client.models import Decision, Explanation, Request, Screening
from signoff_client.reviews import Approval, Review, ReviewPage, ReviewState, Verdict

T = TypeVar("T")


class AsyncClient(BaseClient):
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
        self._reviews = review_pb2_grpc.ReviewServiceStub(self._channel)
        self._audit = audit_pb2_grpc.AuditServiceStub(self._channel)

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
        raw = await self._call(
            self._decisions.EvaluateBatch, self._batch_request(requests), timeout
        )
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

    async def screen(
        self,
        requests: Sequence[Request | Mapping[str, Any]],
        *,
        varying: Sequence[str] = (),
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> list[Screening]:
        """Which of `requests` (without params) the policies deny whatever the params;
        `varying`: context paths each real call sets to its own value. Nothing is stored."""
        raw = await self._call(
            self._decisions.Screen, self._screen_request(requests, varying), timeout
        )
        return [Screening.from_proto(r, raw.policy_version) for r in raw.results]

    async def require(
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
        on_review: Callable[[Decision], object] | None = None,
    ) -> Approval:
        """Evaluate, wait for the review if one is needed, and return what may be executed.

        Raises a `NotApproved` subclass (Denied, Rejected, Expired, Cancelled,
        ReviewTimeout, DigestMismatch) whenever the action must not run. `on_review` is
        called with the REQUIRE_REVIEW decision just before waiting starts.
        """
        started, evaluate_timeout = self._require_budget(timeout)
        decision = await self.evaluate(
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
        review = await self.wait_for_review(decision.review_id, timeout=wait)
        return _approval.from_review(action, params, decision, review)

    async def get_review(self, review_id: str, *, timeout: float | None = None) -> Review:  # noqa: ASYNC109
        """Return a review as it stands now."""
        return Review.from_proto(
            await self._call(self._reviews.GetReview, self._get_request(review_id), timeout)
        )

    async def wait_for_review(self, review_id: str, *, timeout: float | None) -> Review:  # noqa: ASYNC109
        """Wait until the review is resolved and return it; ReviewTimeout at the deadline.

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
                async for raw in call:
                    reconnects.received()
                    last = Review.from_proto(raw)
                    if last.final:
                        return last
            except grpc.RpcError as exc:
                error = exc
            finally:
                call.cancel()  # no-op once ended; frees the stream if we leave early
            await asyncio.sleep(self._rewatch_after(review_id, error, reconnects, last))

    async def list_reviews(
        self,
        *,
        groups: Sequence[str] = (),
        states: Sequence[ReviewState | str] = (),
        action: str = "",
        order: str = "oldest",
        older_than: float | dt.timedelta | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ReviewPage:
        """Return one page of the reviews the caller may see (PENDING only by default)."""
        req = self._list_request(groups, states, action, order, older_than, page_size, page_token)
        return ReviewPage.from_proto(await self._call(self._reviews.ListReviews, req, timeout))

    async def submit_review(
        self,
        review_id: str,
        verdict: Verdict | str,
        *,
        expected_version: int,
        params: Mapping[str, Any] | None = None,
        comment: str = "",
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Review:
        """Approve, modify (with `params`) or reject, as a reviewer; returns the new review."""
        req = self._submit_request(review_id, verdict, expected_version, params, comment)
        return Review.from_proto(await self._call(self._reviews.SubmitReview, req, timeout))

    async def receipt_proof(
        self,
        receipt: Any,
        *,
        tree_size: int = 0,
        min_cosignatures: int = 0,
        unwitnessed: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> audit_pb2.ReceiptProof:
        """Upgrade `receipt` (a Receipt, or a Decision, Review or Approval carrying one)
        with the proof that the log records its allow, up to a checkpoint witnesses
        co-signed; check it offline with `receipt_proofs.verify`. FailedPrecondition
        until a witness co-signed a checkpoint covering it: ask again later."""
        req = self._receipt_proof_request(receipt, tree_size, min_cosignatures, unwitnessed)
        return await self._call(self._audit.GetReceiptProof, req, timeout)

    async def cancel_review(
        self,
        review_id: str,
        reason: str = "",
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Review:
        """Withdraw the caller's own pending review; returns it CANCELLED."""
        req = self._cancel_request(review_id, reason)
        return Review.from_proto(await self._call(self._reviews.CancelReview, req, timeout))

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
