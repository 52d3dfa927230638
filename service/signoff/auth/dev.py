"""Dev mode: FOR LOCAL DEVELOPMENT ONLY. Anyone is anybody, with every role.

Used when no authenticator is configured. The server must refuse to listen on anything but
loopback in this mode and say so loudly at startup: any caller that can reach the port can
approve anything, read the audit log and change policies.
"""

from __future__ import annotations

from signoff.auth.identity import ALL_ROLES, Identity
from signoff.errors import Unauthenticated

DEV_IDENTITY = "dev"
MAX_NAME_CHARS = 128


class DevAuthenticator:
    """No token is identity "dev"; token `<name>` is identity `<name>`; all roles, always."""

    def __init__(self) -> None:
        self._default = Identity(DEV_IDENTITY, ALL_ROLES, act_for_others=True, source="dev")
        # A local tour uses a handful of names; remember them instead of rebuilding each time.
        self._named: dict[str, Identity] = {}

    def authenticate(self, token: str | None, certificate: bytes | None = None) -> Identity:
        """The dev identity, or the one the token names (so alice can approve bob's request)."""
        if not token:
            return self._default
        found = self._named.get(token)
        if found is not None:
            return found
        if len(token) > MAX_NAME_CHARS or not token.isprintable() or token != token.strip():
            raise Unauthenticated(
                f"dev mode: the token is a name to act as, up to {MAX_NAME_CHARS} printable"
                " characters without surrounding spaces"
            )
        if len(self._named) < 1024:
            self._named[token] = Identity(token, ALL_ROLES, act_for_others=True, source="dev")
            return self._named[token]
        return Identity(token, ALL_ROLES, act_for_others=True, source="dev")
