"""Ask Signoff about one tool call: the arguments to forward, or why the call must not run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from signoff import logs
from signoff.mcp_proxy import in_band as in_band_
from signoff.mcp_proxy.config import ProxyConfig
from signoff_client import AsyncClient, Decision, errors

log = logging.getLogger("signoff.mcp_proxy")

Report = Callable[[float, float | None, str | None], Awaitable[None]]


class Refused(Exception):
    """The call must not reach the upstream; the message is for the model (and its user)."""


@dataclass(frozen=True)
class Call:
    """One tools/call as Signoff sees it."""

    upstream: str
    tool: str
    arguments: dict[str, Any]
    request_id: str  # deterministic per MCP call: a retried Evaluate opens no second review
    context: dict[str, Any]

    @property
    def action(self) -> str:
        """The Signoff action name: mcp.<server>.<tool>."""
        return f"mcp.{self.upstream}.{self.tool}"


class Gate:
    """Turns Signoff's answer (and its silence) into forward-or-refuse for the proxy."""

    def __init__(
        self, config: ProxyConfig, client: AsyncClient, in_band: in_band_.InBand | None = None
    ) -> None:
        self.config = config
        self.client = client
        # Told the bundle version of each decision (the tool filter re-screens on a new one).
        self.on_version: Callable[[str], None] = lambda version: None
        self.in_band = in_band  # asks the client's human, if configured (in_band.py)

    async def check(self, call: Call, report: Report) -> dict[str, Any]:
        """The arguments to forward (a reviewer's edits included); Refused otherwise."""
        ticker: asyncio.Task[None] | None = None
        asking: asyncio.Task[None] | None = None
        pending: Decision | None = None

        def on_review(decision: Decision) -> None:
            nonlocal ticker, pending, asking
            pending = decision
            logs.event(
                log,
                "mcp.call.review",
                action=call.action,
                review_id=decision.review_id,
                reviewer_group=decision.reviewer_group,
            )
            ticker = asyncio.create_task(self._tick(decision, report))
            if self.in_band is not None:  # the wait goes on: a group reviewer may settle it
                asking = self.in_band.begin(decision.review_id, call.action)

        try:
            approval = await self.client.require(
                call.action,
                call.arguments,
                principal=self.config.principal.as_dict(),
                resource={"kind": "mcp_server", "id": call.upstream},
                context=call.context,
                request_id=call.request_id,
                timeout=self.config.review_timeout,
                on_review=on_review,
            )
        except asyncio.CancelledError:
            if pending is not None:  # nobody waits for this review any more
                reason = "the MCP client cancelled the tool call or went away"
                await asyncio.shield(self._withdraw(pending.review_id, call, reason))
            raise
        except errors.Denied as exc:
            self.on_version(exc.decision.policy_version)
            raise Refused(f"Signoff denied {call.action}: {exc.decision.reason}") from None
        except errors.Rejected as exc:
            said = f": {exc.comment}" if exc.comment else " (no comment)"
            raise Refused(
                f"a reviewer ({exc.reviewer or 'unknown'}) rejected {call.action}{said}"
            ) from None
        except errors.ReviewTimeout as exc:
            # A retry is a new MCP call with a new review: nobody should approve this one.
            await self._withdraw(exc.review_id, call, "nobody decided within review_timeout")
            raise Refused(
                f"no reviewer decided on {call.action} within {self.config.review_timeout:g}s; "
                f"review {exc.review_id} was withdrawn and the call was not made"
            ) from None
        except errors.NotApproved as exc:  # Expired, Cancelled, DigestMismatch
            raise Refused(f"{call.action} was not approved: {exc}") from None
        except errors.InvalidArgument as exc:
            # The client refuses params that are not JSON before sending (NaN, huge ints).
            # The message starts with the field (errors.InvalidArgument): named once here.
            field = exc.field.replace("action.params", "arguments", 1)
            msg = exc.message.removeprefix(f"{exc.field}: ").replace(
                "action.params", "arguments", 1
            )
            raise Refused(f"Signoff cannot take these arguments ({field}): {msg}") from None
        except (errors.Unavailable, errors.DeadlineExceeded) as exc:
            return self._undecided(call, exc)
        except errors.SignoffError as exc:
            raise Refused(f"Signoff refused to decide on {call.action}: {exc.message}") from None
        finally:
            await in_band_.stop(asking)
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
        self.on_version(approval.decision.policy_version)
        if approval.review is not None:
            logs.event(
                log,
                "mcp.call.approved",
                action=call.action,
                review_id=approval.review.review_id,
                state=approval.review.state.name,
            )
        return dict(approval.params)

    async def _withdraw(self, review_id: str, call: Call, reason: str) -> None:
        """Cancel the review of a call that will not run, so that nobody approves it."""
        try:
            await self.client.cancel_review(review_id, reason, timeout=2.0)
        except errors.SignoffError as exc:  # e.g. resolved meanwhile: nothing to withdraw
            logs.event(log, "mcp.call.withdraw_failed", review_id=review_id, error=exc.message)
            return
        logs.event(log, "mcp.call.withdrawn", action=call.action, review_id=review_id)

    def _undecided(self, call: Call, exc: errors.SignoffError) -> dict[str, Any]:
        if self.config.fail_mode == "closed":
            raise Refused(
                f"Signoff is unreachable ({exc.message}); {call.action} was not made "
                "(fail_mode: closed)"
            ) from None
        # Loud on every call: an operator must not mistake fail-open for approved.
        logs.event(
            log,
            "mcp.call.FAIL_OPEN",
            logging.WARNING,
            action=call.action,
            error=exc.message,
            note="Signoff is unreachable; forwarding WITHOUT a decision (fail_mode: open)",
        )
        return dict(call.arguments)

    async def _tick(self, decision: Decision, report: Report) -> None:
        """Progress notifications while a reviewer decides (only if the client asked)."""
        group = decision.reviewer_group or "reviewers"
        message = (f"waiting for review {decision.review_id} by {group}: {decision.reason}").strip()
        beat = 0
        while True:
            beat += 1
            with contextlib.suppress(Exception):  # a client gone away ends only the beats
                await report(float(beat), None, message)
            await asyncio.sleep(self.config.progress_interval)


def coerce_integers(arguments: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Whole floats back to ints where the tool's schema says integer.

    Signoff carries numbers as doubles, so a reviewer's edited `3` comes back as `3.0`;
    a strict upstream would refuse it for an integer parameter.
    """
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(properties, Mapping):
        return dict(arguments)
    out = dict(arguments)
    for key, value in arguments.items():
        spec = properties.get(key)
        if (
            isinstance(spec, Mapping)
            and spec.get("type") == "integer"
            and isinstance(value, float)
            and value.is_integer()
        ):
            out[key] = int(value)
    return out
