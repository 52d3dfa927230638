"""Authentication settings (part of the server's Settings) and the authenticator they build."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from signoff.auth.chain import ChainAuthenticator
from signoff.auth.identity import Authenticator
from signoff.auth.jwt_config import (
    ASYMMETRIC_ALGORITHMS,
    DEFAULT_ALGORITHMS,
    JwtPrincipalClaims,
    JwtSettings,
)
from signoff.auth.mtls import MtlsAuthenticator, MtlsSettings
from signoff.auth.oidc import JwtAuthenticator
from signoff.auth.principals import Directory
from signoff.auth.tokens import TokensAuthenticator, load_principals


class AuthSettings(BaseModel):
    """How callers authenticate; nothing set means dev mode (loopback only)."""

    model_config = ConfigDict(extra="forbid")

    tokens_file: Path | None = Field(
        None, description="YAML file of bearer tokens (SHA-256 hashes) with identities and roles."
    )
    jwt: JwtSettings | None = Field(None, description="OIDC/JWT bearer tokens.")
    mtls: MtlsSettings | None = Field(
        None,
        description="Client certificates as identities (needs tls.client_auth: require); "
        "a bearer token, when sent, wins.",
    )
    trust_principal_claims: bool = Field(
        False,
        description="LEGACY, UNSAFE: policies see what callers say about themselves"
        " (principal kind, roles, tags, attributes, on_behalf_of) as fact, as before facts"
        " were vouched for. Any agent can then claim any tag or role. Logged at start-up.",
    )


def build_directory(settings: AuthSettings) -> Directory:
    """The principal facts the deployment vouches for; claims are trusted only in dev mode
    (nothing configured) or with the legacy switch."""
    dev_mode = settings.tokens_file is None and settings.jwt is None and settings.mtls is None
    entries = {} if settings.tokens_file is None else load_principals(settings.tokens_file)
    return Directory(entries, trust_claims=dev_mode or settings.trust_principal_claims)


def build_authenticator(settings: AuthSettings) -> Authenticator | None:
    """The configured authenticator, or None for dev mode; AuthConfigError if unusable."""
    found: list[Authenticator] = []
    if settings.tokens_file is not None:
        found.append(TokensAuthenticator(settings.tokens_file))
    if settings.jwt is not None:
        found.append(JwtAuthenticator(settings.jwt))
    tokens = None if not found else found[0] if len(found) == 1 else ChainAuthenticator(found)
    if settings.mtls is not None:
        return MtlsAuthenticator(settings.mtls, tokens)
    return tokens


__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "AuthSettings",
    "JwtPrincipalClaims",
    "JwtSettings",
]
