"""Settings of standing approvals (`grants.*`)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from signoff.settings.duration import Duration


class GrantSettings(BaseModel):
    """Standing approvals that reviewers grant while approving."""

    model_config = ConfigDict(extra="forbid")

    max_ttl: Duration = Field(
        dt.timedelta(hours=24),
        gt=dt.timedelta(0),
        description="The longest a standing approval may last; a longer one is refused.",
    )
    cache_ttl: Duration = Field(
        dt.timedelta(seconds=1),
        ge=dt.timedelta(0),
        description=(
            "How long a process reuses its read of the active standing approvals for one "
            "action and rule (0: read on every decision). Grants made or revoked through this "
            "process count at once; another worker's or replica's new grant after at most this."
        ),
    )
