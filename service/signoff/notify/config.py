"""Webhook settings: which URLs hear about which reviewer groups' reviews, and how."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr

from signoff.notify.email_config import EmailSettings

Event = Literal["review.opened", "review.resolved", "review.escalated"]
EVENTS: tuple[Event, ...] = get_args(Event)

# The key of `NotifySettings.webhooks` whose webhooks hear about every group's reviews.
ALL_GROUPS = "*"


class WebhookSettings(BaseModel):
    """One endpoint: where to POST, how to sign and format it, which events, how hard to try."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: AnyHttpUrl = Field(description="Endpoint receiving the POST (http or https).")
    secret: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key for the X-Signoff-Signature header; unsigned if unset.",
    )
    format: Literal["json", "slack"] = Field(
        "json", description="Signoff's JSON payload, or a Slack-compatible message."
    )
    events: list[Event] = Field(
        default_factory=lambda: list(EVENTS), min_length=1, description="Events to send."
    )
    timeout_s: float = Field(5.0, gt=0, le=300, description="Hard limit per attempt, seconds.")
    max_attempts: int = Field(6, ge=1, le=100, description="Attempts before giving up.")


class NotifySettings(BaseModel):
    """Webhooks per reviewer group; the group "*" hears about every group."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhooks: dict[str, list[WebhookSettings]] = Field(
        default_factory=dict,
        description='Reviewer group (or "*" for all) -> webhooks notified of its reviews.',
    )
    email: EmailSettings | None = Field(
        None, description="E-mail per review, with a link that opens it in the console."
    )
