"""E-mail settings: the SMTP server, who reviews which group by e-mail, and the links' key."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from signoff.net import is_loopback

# One address, no display name: it goes into an SMTP envelope as it is, so anything that
# could carry a second address or a header (",", ";", "<", CR, LF, spaces) is refused.
_ADDRESS_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9.-]{1,253}$")


def _address(value: str) -> str:
    if not _ADDRESS_RE.match(value):
        raise ValueError(f"{value[:80]!r} is not a plain e-mail address (local@domain)")
    return value


class EmailRecipient(BaseModel):
    """One reviewer who gets e-mails: where to, and the reviewer id their link acts as."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = Field(description="Where the e-mail goes (local@domain).")
    reviewer: str = Field(
        min_length=1,
        max_length=128,
        description="The reviewer id the link acts as: the same id this person has in the "
        "tokens file or OIDC, so separation of duties and N approvals count them once.",
    )

    _check_address = field_validator("address")(_address)


class EmailSettings(BaseModel):
    """E-mail per review opened: SMTP, the console's public address, the links' key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1, description="SMTP server host name.")
    port: int = Field(587, ge=1, le=65535, description="SMTP server port.")
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls",
        description="starttls: upgrade after connecting (587); tls: TLS from the first byte "
        "(465); none: plain text, for a relay on localhost only.",
    )
    username: str | None = Field(None, description="SMTP login; none: no AUTH.")
    password: SecretStr | None = Field(None, description="SMTP password.")
    from_address: str = Field(description="The From: address (local@domain).")
    console_url: AnyHttpUrl = Field(
        description="The console's address as reviewers reach it (https://signoff.example.com);"
        " links in e-mails point there."
    )
    link_secret: SecretStr = Field(
        min_length=32,
        description="HMAC key of the links and of the sessions they open (at least 32 "
        "characters, the same on every replica). Changing it voids every link sent.",
    )
    link_ttl_s: int = Field(
        3600,
        ge=60,
        le=7 * 86400,
        description="A link works for this many seconds after it is sent (and never past "
        "the review's deadline).",
    )
    session_ttl_s: int = Field(
        900, ge=60, le=86400, description="How long the console session a link opens lasts."
    )
    timeout_s: float = Field(10.0, gt=0, le=300, description="Socket timeout per attempt.")
    max_attempts: int = Field(6, ge=1, le=100, description="Attempts before giving up.")

    _check_from = field_validator("from_address")(_address)

    @model_validator(mode="after")
    def _no_password_in_clear(self) -> EmailSettings:
        # A password sent without TLS is readable on every network hop to the server.
        if self.security == "none" and self.username and not is_loopback(self.host):
            raise ValueError(
                f"security none sends the SMTP password in clear text to {self.host}: use "
                "starttls or tls, or a relay on localhost"
            )
        return self
