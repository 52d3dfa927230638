"""Field-size settings: the bound classes of the request field table (validate_fields.py), the
largest audit entry, and the byte budget of one page of a read."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

KiB = 1024
MiB = 1024 * KiB


class FieldLimitSettings(BaseModel):
    """Sizes of request fields, by class, in encoded bytes (JSON escapes counted)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name_bytes: int = Field(
        256,
        gt=0,
        le=64 * KiB,
        description="Ids, names, kinds, roles, tags, reviewer groups and audit filter values: "
        "largest one, in encoded bytes.",
    )
    pattern_bytes: int = Field(
        512, gt=0, le=64 * KiB, description="Action globs (ListReviews, audit filters)."
    )
    token_bytes: int = Field(1 * KiB, gt=0, le=64 * KiB, description="Page tokens.")
    text_bytes: int = Field(
        16 * KiB,
        gt=0,
        le=1 * MiB,
        description="Free text: justification, review comments, cancel and revoke reasons.",
    )
    value_bytes: int = Field(
        4 * KiB, gt=0, le=1 * MiB, description="One grant bound's value (SubmitReview grant)."
    )
    attributes_bytes: int = Field(
        64 * KiB,
        gt=0,
        le=4 * MiB,
        description="principal.attributes, principal.claimed.attributes and "
        "resource.attributes, each (params and context: max_params_bytes, max_context_bytes).",
    )
    list_items: int = Field(
        100,
        gt=0,
        le=10_000,
        description="Entries of a repeated field (roles, tags, groups, states, grant bounds...); "
        "batches are max_batch.",
    )
    max_audit_entry_bytes: int = Field(
        1 * MiB,
        ge=64 * KiB,
        description="Largest audit entry, canonical JSON bytes; a request that would write a "
        "larger one is refused before anything is stored.",
    )
    max_page_bytes: int = Field(
        2 * MiB,
        ge=64 * KiB,
        description="Byte budget of one page of QueryAudit, ListReviews and WatchQueue and of "
        "one ExportAudit chunk: a page stops early (with a next-page token) when it is reached.",
    )

    @model_validator(mode="after")
    def _entry_fits_a_page(self) -> FieldLimitSettings:
        # A page always carries at least one item, so the largest item must fit the budget.
        if self.max_audit_entry_bytes > self.max_page_bytes:
            raise ValueError(
                f"max_audit_entry_bytes ({self.max_audit_entry_bytes}) exceeds max_page_bytes "
                f"({self.max_page_bytes}): an entry must fit in one page"
            )
        return self
