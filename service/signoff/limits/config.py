"""Limits settings: concurrent calls, concurrent streams, and per-identity call rates."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from signoff.auth.identity import role_error
from signoff.limits.fields import FieldLimitSettings
from signoff.limits.ingress import DenialAudit, HttpLimits, PeerLimits


class RateSettings(BaseModel):
    """A token bucket: `rate` calls per second on average, up to `burst` at once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="Calls per second allowed; 0: unlimited."
    )
    burst: int | None = Field(
        None,
        ge=1,
        description="Calls allowed at once after a quiet spell; default: one second's worth "
        "(the rate rounded up).",
    )

    @model_validator(mode="after")
    def _burst_needs_rate(self) -> RateSettings:
        if self.burst is not None and self.rate == 0:
            raise ValueError("burst is set but rate is 0 (unlimited); set a rate too")
        return self

    @property
    def unlimited(self) -> bool:
        """True when calls are not counted at all."""
        return self.rate == 0

    @property
    def capacity(self) -> float:
        """The bucket's size: `burst`, or one second's worth of calls."""
        return float(self.burst if self.burst is not None else max(1, math.ceil(self.rate)))


class LimitSettings(BaseModel):
    """Back-pressure: how many calls run at once, and how fast one identity may call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_concurrent: int = Field(
        1000,
        ge=0,
        description="Unary calls in flight at once, both ports together; one more is refused "
        "at once with RESOURCE_EXHAUSTED (no queue); 0: unlimited.",
    )
    max_streams: int = Field(
        1000,
        ge=0,
        description="Open server streams (WatchReview, WatchQueue, ExportAudit) at once, both "
        "ports together; one more is refused with RESOURCE_EXHAUSTED; 0: unlimited.",
    )
    max_concurrent_per_identity: int | None = Field(
        None,
        ge=0,
        description="Unary calls one identity may have in flight at once, both ports "
        "together; one more is refused with RESOURCE_EXHAUSTED naming this setting. Unset: a "
        "tenth of max_concurrent (at least 1). Must be 1 to half of max_concurrent, so that no "
        "single identity can make another's call fail; when max_concurrent is 0 (unlimited), "
        "any value, 0 and unset meaning unlimited.",
    )
    max_streams_per_identity: int | None = Field(
        None,
        ge=0,
        description="Open server streams one identity may hold at once, both ports together; "
        "one more is refused with RESOURCE_EXHAUSTED naming this setting. Unset: a tenth of "
        "max_streams (at least 1). Must be 1 to half of max_streams, so that no single "
        "identity can make another's stream fail; when max_streams is 0 (unlimited), any "
        "value, 0 and unset meaning unlimited.",
    )
    rate: RateSettings = Field(
        default_factory=RateSettings,
        description="Calls per second per identity, for identities without an override; "
        "default unlimited.",
    )
    roles: dict[str, RateSettings] = Field(
        default_factory=dict,
        description="Role (agent, auditor, admin, reviewer:GROUP) -> rate for identities with "
        "that role; with several, the most generous applies.",
    )
    identities: dict[str, RateSettings] = Field(
        default_factory=dict,
        description="Identity id -> rate; overrides `rate` and `roles` for that identity.",
    )
    peers: PeerLimits = Field(
        default_factory=PeerLimits,
        description="Calls per peer address, counted before authentication (both ports).",
    )
    http: HttpLimits = Field(
        default_factory=HttpLimits,
        description="The HTTP port: request bodies in flight, and timeouts for slow connections.",
    )
    denials: DenialAudit = Field(
        default_factory=DenialAudit,
        description="Refused calls are counted and audited in periodic summary entries.",
    )

    fields: FieldLimitSettings = Field(
        default_factory=FieldLimitSettings,
        description="Size bounds of request fields, audit entries and read pages.",
    )

    @model_validator(mode="after")
    def _per_identity_leaves_room(self) -> LimitSettings:
        # One identity at its cap must leave the others at least as many places as it holds
        # (cap <= total / 2): then a call of an identity under its own cap is refused for the
        # server-wide cap only when two or more other identities hold places (docs/security.md).
        for each, total in (
            ("max_concurrent_per_identity", "max_concurrent"),
            ("max_streams_per_identity", "max_streams"),
        ):
            cap, most = getattr(self, each), getattr(self, total)
            if cap is None or not most:
                continue
            if cap == 0 or 2 * cap > most:
                raise ValueError(
                    f"{each} is {cap or 'unlimited (0)'} but must be at most half of {total} "
                    f"({most}), so that no single identity can fill the server; lower it or "
                    f"raise {total}"
                )
        return self

    @property
    def concurrent_per_identity(self) -> int:
        """The per-identity cap on unary calls in effect (0: none)."""
        return _per_identity(self.max_concurrent_per_identity, self.max_concurrent)

    @property
    def streams_per_identity(self) -> int:
        """The per-identity cap on open streams in effect (0: none)."""
        return _per_identity(self.max_streams_per_identity, self.max_streams)

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, v: dict[str, RateSettings]) -> dict[str, RateSettings]:
        for role in v:
            if (why := role_error(role)) is not None:
                raise ValueError(why)
        return v


def _per_identity(cap: int | None, most: int) -> int:
    """An explicit per-identity cap, else a tenth of the server-wide one (0 stays 0)."""
    if cap is not None:
        return cap
    return max(1, most // 10) if most else 0
