"""Field-size settings: the bound classes of the request field table (validate_fields.py), the
largest audit entry, and the byte budget of one page of a read."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

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
    max_audit_entry_bytes: int | None = Field(
        None,
        ge=4 * KiB,
        description="Largest audit entry (and stored review), canonical JSON bytes; a request "
        "that would write a larger one is refused before anything is stored. Default: half "
        "the page budget (1 MiB with the default max_message_bytes).",
    )
    max_page_bytes: int | None = Field(
        None,
        ge=8 * KiB,
        description="Byte budget of one page of QueryAudit, ListReviews and WatchQueue and of "
        "one ExportAudit chunk: a page stops early (with a next-page token) when it is "
        "reached. At most half of max_message_bytes, the rest being room for the envelope. "
        "Default: half of max_message_bytes (2 MiB).",
    )

    def budgets(self, max_message_bytes: int) -> tuple[int, int]:
        """(page bytes, audit entry bytes), the defaults derived from the message size."""
        page = self.max_page_bytes or max_message_bytes // 2
        return page, self.max_audit_entry_bytes or page // 2

    def check_budgets(self, max_message_bytes: int) -> None:
        """Raise ValueError unless an entry fits a page and a page fits a message."""
        page, entry = self.budgets(max_message_bytes)
        # Nothing stored may exceed what a read can send: a page (at least one item) and its
        # envelope must fit in one gRPC message.
        if page > max_message_bytes // 2:
            raise ValueError(
                f"limits.fields.max_page_bytes ({page}) exceeds half of max_message_bytes "
                f"({max_message_bytes}): a page and its envelope could not be sent"
            )
        if entry > page:
            raise ValueError(
                f"limits.fields.max_audit_entry_bytes ({entry}) exceeds the page budget "
                f"({page}): an entry must fit in one page"
            )
