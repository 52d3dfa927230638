"""Slack app settings: the bot that posts one message per review, and who may act from it."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)

from signoff.auth.identity import role_error

# Slack ids: users U…/W…, channels C…/G…/D…, teams T…; upper-case letters and digits.
_SLACK_ID = re.compile(r"^[A-Z0-9]{2,40}$")
# The path of the interactivity endpoint on the HTTP port (the app's "Request URL").
INTERACTIVITY_PATH = "/slack/interactivity"


def _slack_id(value: str) -> str:
    if not _SLACK_ID.match(value):
        raise ValueError(
            f"{value!r} is not a Slack id (upper-case letters and digits, e.g. U0123ABC)"
        )
    return value


def _roles(value: list[str]) -> list[str]:
    for role in value:
        problem = role_error(role)
        if problem:
            raise ValueError(problem)
    return value


SlackId = Annotated[str, AfterValidator(_slack_id)]


def _user_entry(value: object) -> object:
    # `U0123: alice` is the short form of `U0123: {identity: alice}`.
    return {"identity": value} if isinstance(value, str) else value


class SlackUser(BaseModel):
    """The Signoff identity a Slack user acts as, and its roles unless the tokens file says."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identity: str = Field(min_length=1, description="Signoff identity id (as in the audit log).")
    roles: Annotated[list[str], AfterValidator(_roles)] | None = Field(
        None,
        description="Roles when the identity has no token in auth.tokens_file (OIDC "
        "deployments); an identity with a token takes that token's roles, and only them.",
    )


class SlackSettings(BaseModel):
    """The Slack app: its bot token, its signing secret, and the Slack user -> reviewer map."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bot_token: SecretStr = Field(
        description="Bot token (xoxb-...) with chat:write (and users:read.email for match_email)."
    )
    signing_secret: SecretStr = Field(
        description="The app's signing secret: every interactivity request is verified with it."
    )
    console_url: AnyHttpUrl = Field(
        description="Public URL of the reviewer console; 'Open in console' links to "
        "<console_url>/reviews/<review_id>."
    )
    team_id: Annotated[str, AfterValidator(_slack_id)] | None = Field(
        None, description="Refuse interactions from any other Slack workspace (team) id."
    )
    users: dict[SlackId, Annotated[SlackUser, BeforeValidator(_user_entry)]] = Field(
        default_factory=dict,
        description="Slack user id -> Signoff identity (`U0123: alice`, or "
        "`U0123: {identity: alice, roles: [reviewer:payments]}`).",
    )
    match_email: bool = Field(
        False,
        description="Map a Slack user not in `users` by the e-mail Slack holds for them "
        "(users.info) to the tokens file principal whose attributes.email is that address.",
    )
    api_url: AnyHttpUrl = Field(
        AnyHttpUrl("https://slack.com/api/"), description="Slack Web API base URL."
    )
    timeout_s: float = Field(10.0, gt=0, le=60, description="Limit per Web API call, seconds.")
    max_body_bytes: int = Field(
        64 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Largest interactivity request body accepted; larger ones are refused "
        "before their signature is checked.",
    )

    @model_validator(mode="after")
    def _not_blank(self) -> SlackSettings:
        for name in ("bot_token", "signing_secret"):
            if not getattr(self, name).get_secret_value().strip():
                raise ValueError(f"{name}: must not be empty")
        return self


class SlackRoute(BaseModel):
    """Where a reviewer group's reviews are posted in Slack."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: list[SlackId] = Field(
        min_length=1, description="Channel ids (C...) the app posts each review to."
    )
