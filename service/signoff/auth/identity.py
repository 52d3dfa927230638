"""Who a caller is: an identity with Signoff roles, and the `Authenticator` protocol."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from signoff.auth.facts import PrincipalFacts

AGENT = "agent"
AUDITOR = "auditor"
# Runs `signoff audit witness`: reads checkpoints and consistency proofs, adds co-signatures.
WITNESS = "witness"
ADMIN = "admin"
REVIEWER_PREFIX = "reviewer:"
ALL_GROUPS = "*"
# The roles a dev-mode caller gets: everything, so one person can play every part locally.
ALL_ROLES = frozenset({AGENT, f"{REVIEWER_PREFIX}{ALL_GROUPS}", AUDITOR, ADMIN, WITNESS})

# Same shape as reviewer-group names in policy files (policy/model.py NAME_RE), so a role
# can only name a group a policy could route to.
_GROUP_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class ReviewScope:
    """The one review a session (from an e-mail link) may see and act on, at one version."""

    review_id: str
    version: int
    channel: str = "email"  # recorded on the act and its audit entry


class AuthConfigError(ValueError):
    """Authentication is misconfigured (bad tokens file, role, JWKS); the message says where."""


def role_error(role: object) -> str | None:
    """Why `role` is not a Signoff role, or None if it is one."""
    if not isinstance(role, str):
        return f"role must be a string, got {type(role).__name__}"
    if role in (AGENT, AUDITOR, ADMIN, WITNESS):
        return None
    if role.startswith(REVIEWER_PREFIX):
        group = role.removeprefix(REVIEWER_PREFIX)
        if group == ALL_GROUPS or _GROUP_RE.match(group):
            return None
        return (
            f"unknown role {role!r}: a reviewer group is lower-case letters, digits, '_', '.'"
            " or '-' (or '*' for every group)"
        )
    return f"unknown role {role!r}: use agent, reviewer:<group>, auditor, admin or witness"


def parse_roles(roles: Iterable[object]) -> frozenset[str]:
    """Validated roles; AuthConfigError naming the first unknown one."""
    out: set[str] = set()
    for role in roles:
        problem = role_error(role)
        if problem:
            raise AuthConfigError(problem)
        out.add(str(role))
    return frozenset(out)


@dataclass(frozen=True)
class Identity:
    """An authenticated caller: its id, its Signoff roles, and where it was proven."""

    id: str
    roles: frozenset[str]
    # A gateway may send requests whose principal.id is not its own identity.
    act_for_others: bool = False
    source: str = "tokens"  # "tokens" | "jwt" | "mtls" | "dev" | "email"
    # Facts about this principal carried by the credential itself (JWT claims mapped by
    # auth.jwt.principal_claims); None: the `principals` directory says (see principals.py).
    facts: PrincipalFacts | None = None
    # Set for a session from an e-mail link: the one review it may read and act on
    # (api/scope.py refuses every other call); None for every other caller.
    scope: ReviewScope | None = None
    # Derived once: authorization checks run on every RPC.
    _groups: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        groups = frozenset(
            r.removeprefix(REVIEWER_PREFIX) for r in self.roles if r.startswith(REVIEWER_PREFIX)
        )
        object.__setattr__(self, "_groups", groups)

    def has_role(self, role: str) -> bool:
        """Whether the identity holds exactly this role (`reviewer:*` is not expanded)."""
        return role in self.roles

    @property
    def reviewer_groups(self) -> frozenset[str]:
        """Groups this identity reviews; contains "*" if it reviews every group."""
        return self._groups

    @property
    def reviews_all_groups(self) -> bool:
        """Whether the identity holds `reviewer:*`."""
        return ALL_GROUPS in self._groups

    def can_review(self, group: str) -> bool:
        """Whether the identity may list, get and submit reviews of `group`."""
        return group in self._groups or ALL_GROUPS in self._groups

    @property
    def is_admin(self) -> bool:
        """Whether the identity may call the policy RPCs."""
        return ADMIN in self.roles

    @property
    def is_auditor(self) -> bool:
        """Whether the identity may call the audit RPCs."""
        return AUDITOR in self.roles

    @property
    def is_agent(self) -> bool:
        """Whether the identity may evaluate and follow its own reviews."""
        return AGENT in self.roles


class Authenticator(Protocol):
    """Turns a bearer token (or, for those with `uses_certificates`, the client's verified TLS
    certificate, DER) into an identity; called on every RPC, so it must be fast."""

    def authenticate(self, token: str | None, certificate: bytes | None = None) -> Identity:
        """The caller's identity; Unauthenticated with a precise, non-leaky message."""
        ...
