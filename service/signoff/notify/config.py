"""Notification settings: webhooks, the Slack app, and which channels each reviewer group's
reviews go to (`routes`)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, model_validator

from signoff.notify.email_config import EmailRecipient, EmailSettings
from signoff.notify.slack_config import SlackRoute, SlackSettings

Event = Literal["review.opened", "review.resolved", "review.escalated"]
EVENTS: tuple[Event, ...] = get_args(Event)
# One of N approvals landed: the review is still pending, at a new version. Slack and e-mail
# act on it; webhooks are not sent it (their events are EVENTS).
CHANGED = "review.changed"

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


class EmailRoute(BaseModel):
    """Who is e-mailed a group's reviews (sent with the server's settings, notify.email)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    to: list[EmailRecipient] = Field(
        min_length=1,
        description="Reviewers e-mailed each review, with the reviewer id their link acts as. "
        "A review escalated to a group is mailed to that group.",
    )


class GroupRoute(BaseModel):
    """The channels one reviewer group's reviews go to; any may be left out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhooks: list[WebhookSettings] = Field(
        default_factory=list, description="Webhooks, as under `notify.webhooks`."
    )
    slack: SlackRoute | None = Field(
        None, description="Slack channels the app (notify.slack) posts each review to."
    )
    email: EmailRoute | None = Field(None, description="Addresses e-mailed each review.")


class NotifySettings(BaseModel):
    """Where reviews are announced: per reviewer group ("*": every group), by webhook,
    Slack message or e-mail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhooks: dict[str, list[WebhookSettings]] = Field(
        default_factory=dict,
        description='Reviewer group (or "*" for all) -> webhooks notified of its reviews '
        "(the same as routes.<group>.webhooks; both lists are used).",
    )
    routes: dict[str, GroupRoute] = Field(
        default_factory=dict,
        description='Reviewer group (or "*" for all) -> the channels its reviews go to: '
        "webhooks, slack, email.",
    )
    slack: SlackSettings | None = Field(
        None,
        description="The Slack app posting interactive review messages (routes.<group>.slack "
        "says where); its interactivity endpoint is /slack/interactivity on the HTTP port.",
    )

    email: EmailSettings | None = Field(
        None,
        description="The SMTP server and links of e-mailed reviews (routes.<group>.email says "
        "who gets them); the links open the console on the HTTP port.",
    )

    @model_validator(mode="after")
    def _routes_need_their_channel(self) -> NotifySettings:
        for channel, needs in (("slack", "the app's bot token and signing secret"),
                               ("email", "the SMTP server and the link secret")):  # fmt: skip
            routed = sorted(g for g, r in self.routes.items() if getattr(r, channel) is not None)
            if routed and getattr(self, channel) is None:
                raise ValueError(f"routes.{routed[0]}.{channel}: needs notify.{channel} ({needs})")
        return self

    def email_recipients(self) -> dict[str, list[EmailRecipient]]:
        """Reviewer group (or "*") -> who is e-mailed its reviews, from `routes`."""
        return {g: list(r.email.to) for g, r in self.routes.items() if r.email is not None}

    def webhooks_by_group(self) -> dict[str, list[WebhookSettings]]:
        """Every group's webhooks, from `webhooks` and from `routes`."""
        out = {g: list(hooks) for g, hooks in self.webhooks.items()}
        for group, route in self.routes.items():
            out.setdefault(group, []).extend(route.webhooks)
        return out

    def slack_channels(self, group: str) -> list[str]:
        """The Slack channels a review of `group` is posted to (its own route, then "*")."""
        out: list[str] = []
        for g in (group, ALL_GROUPS):
            route = self.routes.get(g)
            if route is not None and route.slack is not None:
                out += [c for c in route.slack.channels if c not in out]
        return out
