"""Settings of the store's group commit (`store.*`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from signoff.store.linger import DEFAULT_COMMIT_BATCH, DEFAULT_COMMIT_LINGER


class StoreSettings(BaseModel):
    """How the writer groups writes into transactions (one fsync each)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    commit_linger: float = Field(
        DEFAULT_COMMIT_LINGER,
        ge=0,
        le=0.1,
        description="Seconds a group commit may wait for more writes while other writers are "
        "in flight, so that one fsync serves them all; a lone write commits at once "
        "(0: never wait). Both databases; see docs/operators.md, 'Group commit'.",
    )
    commit_batch: int = Field(
        DEFAULT_COMMIT_BATCH,
        ge=1,
        le=10_000,
        description="Most writes in one transaction (both databases); a full batch commits "
        "without lingering.",
    )
