"""Settings of JWT authentication (`auth.jwt`): where the keys come from, which algorithms
count, and which claims hold the principal's facts. Apart from the authenticator that uses
them (`oidc`), so the settings model can import them without importing the authenticator."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from signoff.net import is_loopback

# Only public-key algorithms: the JWKS is public, so a shared-secret (HS*) algorithm would let
# anyone holding it sign tokens, and "none" signs nothing.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    | {"ES256", "ES256K", "ES384", "ES512", "EdDSA"}
)
DEFAULT_ALGORITHMS = ["RS256", "ES256", "EdDSA"]


class JwtPrincipalClaims(BaseModel):
    """Which JWT claims hold the facts policies read about the caller (principal.*)."""

    model_config = ConfigDict(extra="forbid")

    kind: str | None = Field(
        None, min_length=1, description="Claim holding principal.kind (agent, user or service)."
    )
    roles: str | None = Field(
        None,
        min_length=1,
        description="Claim holding principal.roles: a list or a space-separated string.",
    )
    tags: str | None = Field(
        None,
        min_length=1,
        description="Claim holding principal.tags: a list or a space-separated string.",
    )
    attributes: str | None = Field(
        None, min_length=1, description="Claim holding principal.attributes: a JSON object."
    )
    on_behalf_of: str | None = Field(
        None,
        min_length=1,
        description='Claim listing the users the caller may act for (a list, or "*").',
    )


class JwtSettings(BaseModel):
    """OIDC/JWT bearer tokens: where the keys are and which claims mean what."""

    model_config = ConfigDict(extra="forbid")

    jwks_file: Path | None = Field(None, description="JWKS JSON file with the signing keys.")
    jwks_url: str | None = Field(None, description="JWKS URL of the identity provider (https).")
    issuer: str = Field(min_length=1, description="Required `iss` claim.")
    audience: str = Field(min_length=1, description="Required `aud` claim (one of, if a list).")
    algorithms: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ALGORITHMS),
        min_length=1,
        description="Accepted signature algorithms (public-key only).",
    )
    leeway_s: float = Field(30.0, ge=0, le=3600, description="Clock skew allowed on exp/nbf.")
    identity_claim: str = Field("sub", min_length=1, description="Claim holding the identity.")
    roles_claim: str = Field(
        "roles",
        min_length=1,
        description="Claim holding the roles: a list or a space-separated string;"
        " a dotted path (realm_access.roles) if no claim has that exact name.",
    )
    act_for_others_claim: str = Field(
        "signoff_act_for_others",
        min_length=1,
        description="Boolean claim: the caller may send requests for other principals.",
    )
    principal_claims: JwtPrincipalClaims | None = Field(
        None,
        description="Claims that vouch for the caller's principal facts; unset: the tokens"
        " file's `principals` directory does, by identity. A claim named here but absent"
        " from a token means no facts of that kind.",
    )
    jwks_timeout_s: float = Field(5.0, gt=0, le=60, description="JWKS URL fetch timeout.")
    jwks_cache_s: float = Field(
        300.0, gt=0, description="How long a fetched JWKS (and a verified token) is reused."
    )

    @field_validator("algorithms")
    @classmethod
    def _check_algorithms(cls, v: list[str]) -> list[str]:
        for alg in v:
            if alg not in ASYMMETRIC_ALGORITHMS:
                raise ValueError(
                    f"algorithm {alg!r} not accepted: use public-key algorithms"
                    f" ({', '.join(sorted(ASYMMETRIC_ALGORITHMS))})"
                )
        return v

    @field_validator("jwks_url")
    @classmethod
    def _check_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        url = urlparse(v)
        if url.scheme == "https" and url.hostname:
            return v
        # Plain http is only safe where nobody can tamper with the keys in transit.
        if url.scheme == "http" and url.hostname and is_loopback(url.hostname):
            return v
        raise ValueError(f"must be an https:// URL (http:// only on loopback), got {v!r}")

    @model_validator(mode="after")
    def _one_source(self) -> JwtSettings:
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("set exactly one of jwks_file and jwks_url")
        return self
