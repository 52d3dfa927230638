"""PLACEHOLDER until the authentication module lands: dev mode only."""

from __future__ import annotations

from dataclasses import dataclass

from signoff.auth.config import AuthSettings

ALL_ROLES = frozenset({"agent", "reviewer:*", "auditor", "admin"})


@dataclass(frozen=True)
class Identity:
    """An authenticated caller."""

    id: str
    roles: frozenset[str]
    act_for_others: bool = False
    source: str = "dev"

    def can_review(self, group: str) -> bool:
        """True if the caller may review for `group`."""
        return f"reviewer:{group}" in self.roles or "reviewer:*" in self.roles


class DevAuthenticator:
    """Dev mode: anyone is anyone, with every role."""

    def authenticate(self, token: str | None) -> Identity:
        """The token is taken as the identity name."""
        return Identity(token or "dev", ALL_ROLES, True, "dev")


def build_authenticator(settings: AuthSettings) -> None:
    """Nothing configurable yet."""
    return None
