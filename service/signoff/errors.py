"""The one error hierarchy. Raised by the core and `app`; mapped to gRPC codes in `api/`."""

from __future__ import annotations


class SignoffError(Exception):
    """Base of every error Signoff raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(SignoffError):
    """A request field is malformed; `field` is its dotted path, e.g. `action.name`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NotFound(SignoffError):
    """The named object does not exist."""


class AlreadyExists(SignoffError):
    """The object being created exists already."""


class PermissionDenied(SignoffError):
    """The caller may not do this."""


class Unauthenticated(SignoffError):
    """The caller did not prove who they are."""


class FailedPrecondition(SignoffError):
    """The object is not in a state that allows the operation."""

    def __init__(self, message: str, current_state: str = "") -> None:
        super().__init__(message)
        self.current_state = current_state


class DataLoss(SignoffError):
    """A stored row disagrees with the audit chain that recorded it (changed outside signoff)."""


class Unavailable(SignoffError):
    """A dependency (the database) failed; nothing was stored, the call may be retried."""


class ResourceExhausted(SignoffError):
    """A limit was hit; `retry_after` (seconds) when waiting that long is worth a retry."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceeded(SignoffError):
    """The caller's deadline passed before the call was served; nothing was done."""
