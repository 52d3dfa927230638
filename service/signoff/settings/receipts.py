"""Settings of signed receipts (`receipts.*`)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from signoff.settings.duration import Duration


class ReceiptSettings(BaseModel):
    """Signed receipts of final allow decisions (docs/auditors.md, "Signed receipts")."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        True,
        description="Attach a receipt signed with the audit checkpoint key to every "
        "AUTO_ALLOW decision and every approved or modified review.",
    )
    ttl: Duration = Field(
        dt.timedelta(minutes=15),
        gt=dt.timedelta(0),
        description="How long a receipt stays valid after the decision or approval.",
    )
