"""Every error the client raises on purpose, and the one mapping from gRPC status codes.

Catch `SignoffError` for anything the service (or the client on its behalf) refused;
each subclass names one gRPC status code. The original `grpc.RpcError`, when there is
one, is chained as `__cause__`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

if TYPE_CHECKING:  # models import this module: annotations only, no cycle at run time
    from signoff_client.models import Decision
    from signoff_client.reviews import Review

__all__ = [
    "AlreadyExists",
    "Cancelled",
    "DeadlineExceeded",
    "Denied",
    "DigestMismatch",
    "Expired",
    "FailedPrecondition",
    "InvalidArgument",
    "NotApproved",
    "NotFound",
    "PermissionDenied",
    "Rejected",
    "ResourceExhausted",
    "ReviewTimeout",
    "SignoffError",
    "Unauthenticated",
    "Unavailable",
    "from_rpc_error",
    "from_status",
    "retry_delay_of",
    "status_of",
]


class SignoffError(Exception):
    """Base of every client error; `code` is the gRPC status code, `message` its details."""

    default_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code: grpc.StatusCode = code or self.default_code


# The server writes INVALID_ARGUMENT details as "<field>: <message>", e.g.
# "action.name: must not be empty" or "requests[2].action.params: 312 KiB exceeds ...".
_FIELD_RE = re.compile(r"^([A-Za-z_][\w.\[\]-]*): ")


class InvalidArgument(SignoffError, ValueError):
    """A request field is malformed; `field` is its dotted path, e.g. `action.name`.

    Raised by the server, or by the client before sending (params that are not JSON);
    it is also a `ValueError` so that either is caught the same way.
    """

    default_code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(
        self, message: str, *, field: str | None = None, code: grpc.StatusCode | None = None
    ) -> None:
        if field is None:
            match = _FIELD_RE.match(message)
            field = match.group(1) if match else ""
        elif field and not message.startswith(f"{field}: "):
            message = f"{field}: {message}"
        super().__init__(message, code=code)
        self.field = field


class NotFound(SignoffError):
    """The named object (a review, a decision) does not exist."""

    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(SignoffError):
    """The object being created exists already."""

    default_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(SignoffError):
    """The caller is known but may not do this."""

    default_code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(SignoffError):
    """The token is missing, malformed or not accepted."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class FailedPrecondition(SignoffError):
    """The object is not in a state that allows this, e.g. a request_id reused elsewhere."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(SignoffError):
    """The server could not be reached or could not store; nothing was decided."""

    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(SignoffError):
    """The call's overall deadline passed before an answer arrived."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class ResourceExhausted(SignoffError):
    """A server limit was hit (request size, batch size, rate, concurrent calls).

    `retry_after` is the wait in seconds the server asked for (its RetryInfo) when a retry
    after that long may succeed, as after a rate limit; None when retrying cannot help, as
    for a request that is too large. The client waits and retries by itself when the wait
    fits the call's timeout; this error means it did not.
    """

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


# --- require(): the action must not run ---------------------------------------------------
#
# Not gRPC failures: every call succeeded, and the answer is "no" (or "not yet"). None is
# in _BY_CODE, so no status the server sends can be mistaken for one of them.


class NotApproved(SignoffError):
    """Base of every reason `require()` or a gated tool refuses to run the action."""

    default_code = grpc.StatusCode.PERMISSION_DENIED


class Denied(NotApproved):
    """The policy denied the action outright; `decision` says which rule and why."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(f"denied by policy: {decision.reason}")
        self.decision = decision


class Rejected(NotApproved):
    """A reviewer rejected the action; `comment` is theirs, `review` the resolved review."""

    def __init__(self, review: Review) -> None:
        act = review.acts[-1] if review.acts else None
        self.reviewer = act.reviewer if act else ""
        self.comment = act.comment if act else ""
        said = f": {self.comment}" if self.comment else ""
        super().__init__(f"review {review.review_id} rejected by {self.reviewer or '?'}{said}")
        self.review = review


class Expired(NotApproved):
    """Nobody decided in time and the rule's `on_timeout` denies the action."""

    def __init__(self, review: Review) -> None:
        note = f" ({review.resolution_note})" if review.resolution_note else ""
        super().__init__(f"review {review.review_id} expired{note}")
        self.review = review


class Cancelled(NotApproved):
    """The review was withdrawn (by the agent, or an admin) before anyone decided."""

    def __init__(self, review: Review) -> None:
        note = f": {review.resolution_note}" if review.resolution_note else ""
        super().__init__(f"review {review.review_id} was cancelled{note}")
        self.review = review


class ReviewTimeout(NotApproved):
    """The client stopped waiting; the review stays pending on the server.

    `review` is the last state seen (None if the server was never reached). Calling
    `require()` again with the same `request_id` resumes waiting on the same review.
    """

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED

    def __init__(self, review_id: str, review: Review | None = None, waited: float = 0.0) -> None:
        super().__init__(
            f"review {review_id} still pending after {waited:.1f}s of waiting; "
            "it stays open on the server"
        )
        self.review_id = review_id
        self.review = review


class DigestMismatch(NotApproved):
    """What the client would execute is not what the server says was reviewed or approved."""

    default_code = grpc.StatusCode.DATA_LOSS

    def __init__(self, review: Review, *, field: str, expected: str, actual: str) -> None:
        super().__init__(
            f"review {review.review_id}: {field} is {expected or '(empty)'} but the action "
            f"this client would execute hashes to {actual}; refusing to execute"
        )
        self.review = review
        self.field = field
        self.expected = expected
        self.actual = actual


# The one place that decides which exception a status code becomes. Codes not listed
# (INTERNAL, UNKNOWN, UNIMPLEMENTED...) become a plain SignoffError carrying the code.
_BY_CODE: dict[grpc.StatusCode, type[SignoffError]] = {
    cls.default_code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        Unauthenticated,
        FailedPrecondition,
        Unavailable,
        DeadlineExceeded,
        ResourceExhausted,
    )
}


def from_status(
    code: grpc.StatusCode, details: str, retry_after: float | None = None
) -> SignoffError:
    """Return the exception for a gRPC status code, its details message and retry delay."""
    cls = _BY_CODE.get(code, SignoffError)
    if cls is ResourceExhausted:
        return ResourceExhausted(details or code.name, code=code, retry_after=retry_after)
    return cls(details or code.name, code=code)


def from_rpc_error(exc: grpc.RpcError) -> SignoffError:
    """Return the exception for a failed call (sync or `grpc.aio`)."""
    code, details = status_of(exc)
    return from_status(code, details, retry_delay_of(exc))


def retry_delay_of(exc: grpc.RpcError) -> float | None:
    """Return the seconds the server asked us to wait (google.rpc.RetryInfo), if it did."""
    trailers = getattr(exc, "trailing_metadata", None)
    metadata = trailers() if callable(trailers) else None
    for key, value in metadata or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    return max(0.0, info.retry_delay.ToNanoseconds() / 1e9)
        except DecodeError:
            return None  # a garbled trailer is no reason to hide the status itself
    return None


def status_of(exc: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    """Return the status code and details of a failed call."""
    # Sync failures are `grpc.Call`s, `grpc.aio.AioRpcError` is not, and grpc.RpcError
    # promises neither: read the two methods where they exist, else call it UNKNOWN.
    code_of = getattr(exc, "code", None)
    details_of = getattr(exc, "details", None)
    code = code_of() if callable(code_of) else None
    details = details_of() if callable(details_of) else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    return code, details if isinstance(details, str) else str(exc)
