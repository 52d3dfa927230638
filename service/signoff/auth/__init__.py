"""Authentication: bearer tokens (a tokens file or OIDC JWTs) or mTLS client certificates
to identities with roles.

Roles: `agent`, `reviewer:<group>` (`reviewer:*` for every group), `auditor`, `admin`,
`witness` (runs `signoff audit witness`: checkpoints, consistency proofs, co-signatures).
Authorization (which RPC needs which role) is decided by the API layer from the Identity.
"""

from __future__ import annotations

from signoff.auth.chain import ChainAuthenticator, looks_like_jwt
from signoff.auth.config import (
    AuthSettings,
    JwtPrincipalClaims,
    JwtSettings,
    build_authenticator,
    build_directory,
)
from signoff.auth.dev import DevAuthenticator
from signoff.auth.identity import (
    ALL_ROLES,
    AuthConfigError,
    Authenticator,
    Identity,
    parse_roles,
    role_error,
)
from signoff.auth.mtls import MtlsAuthenticator, MtlsIdentity, MtlsSettings
from signoff.auth.oidc import JwtAuthenticator
from signoff.auth.principals import Directory, PrincipalFacts
from signoff.auth.tokens import TokensAuthenticator, hash_token, new_token

__all__ = [
    "ALL_ROLES",
    "AuthConfigError",
    "AuthSettings",
    "Authenticator",
    "ChainAuthenticator",
    "DevAuthenticator",
    "Directory",
    "Identity",
    "JwtAuthenticator",
    "JwtPrincipalClaims",
    "JwtSettings",
    "MtlsAuthenticator",
    "MtlsIdentity",
    "MtlsSettings",
    "PrincipalFacts",
    "TokensAuthenticator",
    "build_authenticator",
    "build_directory",
    "hash_token",
    "looks_like_jwt",
    "new_token",
    "parse_roles",
    "role_error",
]
