"""Settings of standing approvals (`grants.*`)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class GrantSettings(BaseModel):
    """Standing approvals that reviewers grant while approving."""

    model_config = ConfigDict(extra="forbid")

    max_ttl: dt.timedelta = Field(
        dt.timedelta(hours=24),
        gt=dt.timedelta(0),
        description="The longest a standing approval may last; a longer one is refused.",
    )
