"""What the deployment vouches for one principal id (kind, roles, tags, attributes, the users
it may act for): a value, hashable, with no dependency on how the caller authenticated."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import struct_pb2

ANYONE = "*"
KINDS = ("", "agent", "user", "service")


@dataclass(frozen=True)
class PrincipalFacts:
    """What the deployment vouches for one principal id."""

    kind: str = ""
    roles: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    # Canonical JSON, so that facts (and the Identity holding them) stay hashable and
    # comparable; the Struct is built once.
    attributes_json: str = "{}"
    # The users this principal may act for; "*" means anyone.
    on_behalf_of: frozenset[str] = frozenset()
    _attributes: struct_pb2.Struct = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        attributes = struct_pb2.Struct()
        attributes.update(json.loads(self.attributes_json))
        object.__setattr__(self, "_attributes", attributes)

    @classmethod
    def of(
        cls,
        *,
        kind: str = "",
        roles: Any = (),
        tags: Any = (),
        attributes: Mapping[str, Any] | None = None,
        on_behalf_of: Any = (),
    ) -> PrincipalFacts:
        """Facts from plain values (attributes must be JSON: checked by the callers)."""
        users = frozenset([ANYONE] if on_behalf_of == ANYONE else on_behalf_of)
        text = json.dumps(dict(attributes or {}), sort_keys=True, separators=(",", ":"))
        return cls(kind, tuple(roles), tuple(tags), text, users)

    @property
    def attributes(self) -> struct_pb2.Struct:
        """The attributes as the Struct CEL reads (do not modify)."""
        return self._attributes

    def may_act_for(self, user: str) -> bool:
        """Whether this principal may send requests on behalf of `user`."""
        return ANYONE in self.on_behalf_of or user in self.on_behalf_of


NO_FACTS = PrincipalFacts()
