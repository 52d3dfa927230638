"""Principal facts: what the deployment vouches for an identity, and the one rewrite of a
request's principal into facts (top level) and claims (`principal.claimed`).

Only `principal.id` is proven by authentication. Everything else a caller sends about
itself (kind, roles, tags, attributes, on_behalf_of) is its word; policies that read it as
fact could be talked into anything ("vip" in principal.tags). So the server replaces those
fields with what the deployment says about that id (the `principals` section of the tokens
file, or the caller's JWT claims) and keeps the caller's word, verbatim, under
`principal.claimed`, where a policy can only read it on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping

from signoff import pb
from signoff.auth.facts import NO_FACTS, PrincipalFacts
from signoff.auth.identity import Identity
from signoff.errors import InvalidArgument


class Directory:
    """Facts by principal id (the tokens file's `principals`), and whether claims count."""

    def __init__(
        self, entries: Mapping[str, PrincipalFacts] | None = None, *, trust_claims: bool = False
    ) -> None:
        self._entries = dict(entries or {})
        # Dev mode, or the legacy switch auth.trust_principal_claims: nothing vouches, so
        # the caller's word is all there is; it is still copied to `claimed`.
        self.trust_claims = trust_claims

    def __len__(self) -> int:
        """How many principals the directory describes."""
        return len(self._entries)

    def facts_for(self, who: Identity, principal_id: str) -> PrincipalFacts:
        """The facts for `principal_id` as sent by `who`: the caller's own (its JWT claims
        if they carry facts, else its directory entry), or a named principal's entry."""
        if principal_id == who.id and who.facts is not None:
            return who.facts
        return self._entries.get(principal_id, NO_FACTS)

    def vouch(self, who: Identity, principal: pb.common.Principal, prefix: str = "") -> None:
        """Rewrite `principal` in place: facts at the top level, the caller's word in
        `claimed` (call after the principal id has been checked against the caller)."""
        if principal.HasField("claimed"):
            raise InvalidArgument(
                f"{prefix}principal.claimed",
                "is filled in by the server from what you send in principal; leave it unset",
            )
        claimed = principal.claimed
        claimed.SetInParent()  # present even when empty: marks the principal as sorted
        claimed.kind = principal.kind
        claimed.roles.extend(principal.roles)
        claimed.tags.extend(principal.tags)
        claimed.on_behalf_of = principal.on_behalf_of
        if principal.HasField("attributes"):
            claimed.attributes.CopyFrom(principal.attributes)
        if self.trust_claims:
            return
        apply_facts(principal, self.facts_for(who, principal.id))


def apply_facts(principal: pb.common.Principal, facts: PrincipalFacts) -> None:
    """Replace the principal's asserted fields with `facts`; on_behalf_of stays if allowed."""
    principal.kind = facts.kind
    principal.roles[:] = facts.roles
    principal.tags[:] = facts.tags
    principal.ClearField("attributes")
    if facts.attributes.fields:
        principal.attributes.CopyFrom(facts.attributes)
    if principal.on_behalf_of and not facts.may_act_for(principal.on_behalf_of):
        principal.on_behalf_of = ""
