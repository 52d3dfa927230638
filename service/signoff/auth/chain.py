"""Several authenticators in turn: static tokens first, JWTs to the JWT authenticators."""

from __future__ import annotations

import re
from collections.abc import Sequence

from signoff.auth.identity import Authenticator, Identity
from signoff.auth.oidc import JwtAuthenticator
from signoff.errors import Unauthenticated

# header.payload.signature, each base64url (the signature is empty for alg "none", which
# must still reach the JWT authenticator to be refused there by name).
_JWT_RE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


def looks_like_jwt(token: str) -> bool:
    """Whether a token has the three base64url parts of a compact JWT."""
    return _JWT_RE.match(token) is not None


class ChainAuthenticator:
    """Tries static-token authenticators in order; a JWT-shaped token goes to JWT ones only."""

    def __init__(self, authenticators: Sequence[Authenticator]) -> None:
        if not authenticators:
            raise ValueError("ChainAuthenticator needs at least one authenticator")
        self._jwt = [a for a in authenticators if isinstance(a, JwtAuthenticator)]
        self._other = [a for a in authenticators if not isinstance(a, JwtAuthenticator)]

    def authenticate(self, token: str | None, certificate: bytes | None = None) -> Identity:
        """The identity from the first authenticator that accepts the token."""
        if not token:
            raise Unauthenticated("missing bearer token")
        # A JWT is never a static token: routing it keeps the JWT's precise error ("token
        # expired") instead of "unknown token", and never hashes it against the tokens file.
        chain = self._jwt if self._jwt and looks_like_jwt(token) else self._other or self._jwt
        first: Unauthenticated | None = None
        for auth in chain:
            try:
                return auth.authenticate(token)
            except Unauthenticated as exc:
                first = first or exc
        assert first is not None
        raise first
