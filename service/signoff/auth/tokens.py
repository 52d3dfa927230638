"""Static bearer tokens from a YAML file, stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictStr,
    ValidationError,
    field_validator,
)
from yaml.nodes import MappingNode, Node, SequenceNode

from signoff.auth.facts import ANYONE, PrincipalFacts
from signoff.auth.identity import AuthConfigError, Identity, role_error
from signoff.errors import Unauthenticated
from signoff.yamlpos import at, child, duplicate_keys, field_message, load_document, node_at

_HEX = frozenset("0123456789abcdef")


def hash_token(token: str) -> str:
    """The lower-case hex SHA-256 of a token, as the tokens file stores it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh random token and its SHA-256: give the first out, store the second."""
    # 32 bytes of entropy; url-safe base64 has no '.', so it never looks like a JWT.
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def _check_sha256(value: str) -> str:
    value = value.lower()
    if len(value) != 64 or not set(value) <= _HEX:
        raise ValueError(
            "must be 64 hex digits, the SHA-256 of the token (`signoff token new` prints one);"
            " never put the token itself here"
        )
    return value


def _check_role(value: str) -> str:
    problem = role_error(value)
    if problem:
        raise ValueError(problem)
    return value


def _check_identity(value: str) -> str:
    if not value.strip() or value != value.strip():
        raise ValueError("must be a non-empty id without surrounding spaces")
    return value


class _Entry(BaseModel):
    """One token of the tokens file."""

    model_config = ConfigDict(extra="forbid")

    sha256: Annotated[StrictStr, AfterValidator(_check_sha256)]
    identity: Annotated[StrictStr, AfterValidator(_check_identity)]
    roles: list[Annotated[StrictStr, AfterValidator(_check_role)]] = []
    act_for_others: StrictBool = False


def _check_json(value: dict[str, Any]) -> dict[str, Any]:
    # YAML has dates, binary and non-string keys that a Struct (what CEL reads) cannot hold.
    try:
        return dict(json.loads(json.dumps(value, allow_nan=False)))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"must hold only JSON values (strings, numbers, lists, maps): {exc}"
        ) from None


_Name = Annotated[StrictStr, AfterValidator(_check_identity)]


class _Principal(BaseModel):
    """What the deployment vouches for one principal id (policies read it as fact)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["", "agent", "user", "service"] = ""
    roles: list[StrictStr] = []
    tags: list[StrictStr] = []
    attributes: Annotated[dict[StrictStr, Any], AfterValidator(_check_json)] = {}
    # The users this principal may send requests on behalf of: a list, or "*" for anyone.
    on_behalf_of: Any = []

    @field_validator("on_behalf_of")
    @classmethod
    def _users(cls, v: Any) -> str | list[str]:
        # One message for every wrong shape, where a union type would give one per member.
        if v == ANYONE:
            return ANYONE
        if isinstance(v, list) and all(isinstance(u, str) for u in v):
            return [_check_identity(u) for u in v]
        raise ValueError(f'must be a list of user ids, or "{ANYONE}" for anyone')

    def facts(self) -> PrincipalFacts:
        """These facts in the form the server applies."""
        users = ANYONE if self.on_behalf_of == ANYONE else self.on_behalf_of
        return PrincipalFacts.of(
            kind=self.kind,
            roles=self.roles,
            tags=self.tags,
            attributes=self.attributes,
            on_behalf_of=users,
        )


class _File(BaseModel):
    """The tokens file: `tokens: [...]` and the `principals: {id: facts}` directory."""

    model_config = ConfigDict(extra="forbid")

    tokens: list[_Entry] = []
    principals: dict[_Name, _Principal] = {}


class TokensAuthenticator:
    """Bearer tokens listed in a YAML file as SHA-256 hashes, each with an identity and roles."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._by_hash, self.principals = _load(self.path)

    def __len__(self) -> int:
        """How many tokens the file holds."""
        return len(self._by_hash)

    def authenticate(self, token: str | None, certificate: bytes | None = None) -> Identity:
        """The identity of a listed token; Unauthenticated otherwise."""
        if not token:
            raise Unauthenticated("missing bearer token")
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        # The dict probes compare digests of a 256-bit secret, never the token: learning how
        # much of a digest matched brings an attacker no closer to a preimage. The constant-
        # time compare is the check that actually admits the caller.
        found = self._by_hash.get(digest)
        if found is None or not hmac.compare_digest(found[0], digest):
            raise Unauthenticated("unknown token")
        return found[1]


def load_principals(path: Path) -> dict[str, PrincipalFacts]:
    """The `principals` directory of a tokens file; AuthConfigError with file:line."""
    return _load(Path(path))[1]


def load_identities(path: Path) -> dict[str, Identity]:
    """Each identity of a tokens file with its roles (its tokens agree on them, see _load)."""
    return {identity.id: identity for _, identity in _load(Path(path))[0].values()}


def _load(path: Path) -> tuple[dict[bytes, tuple[bytes, Identity]], dict[str, PrincipalFacts]]:
    """Parse and check a tokens file; AuthConfigError listing every problem with file:line."""
    root, data = load_document(path, "tokens file", AuthConfigError)
    if root is None or not isinstance(root, MappingNode):
        raise AuthConfigError(
            f"{path}:1:1: a tokens file is a mapping with a 'tokens' list and/or a 'principals' map"
        )

    errors: list[str] = []

    def error(node: Node, message: str) -> None:
        errors.append(f"{at(path, node)}: {message}")

    duplicate_keys(root, error)
    if errors:
        raise AuthConfigError("\n".join(errors))
    try:
        model = _File.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            message = field_message(err)
            node = node_at(root, loc, key=err["type"] == "extra_forbidden")
            error(node, f"{_dotted(loc)}: {message}" if loc else message)
        raise AuthConfigError("\n".join(errors)) from None

    by_hash: dict[bytes, tuple[bytes, Identity]] = {}
    hash_line: dict[bytes, int] = {}
    by_identity: dict[str, tuple[Identity, int]] = {}
    items = child(root, "tokens")
    nodes = items.value if isinstance(items, SequenceNode) else []
    for i, entry in enumerate(model.tokens):
        node = nodes[i] if i < len(nodes) else root
        line = node.start_mark.line + 1
        digest = bytes.fromhex(entry.sha256)
        identity = Identity(
            entry.identity, frozenset(entry.roles), entry.act_for_others, source="tokens"
        )
        if digest in by_hash:
            error(
                child(node, "sha256") or node,
                f"tokens[{i}].sha256: duplicate token hash (also on line {hash_line[digest]})",
            )
            continue
        # One identity may hold several tokens (rotation), but they must agree on what it may
        # do: otherwise its rights would depend on which token it happened to present.
        seen = by_identity.get(entry.identity)
        if seen is not None and seen[0] != identity:
            error(
                child(node, "identity") or node,
                f"tokens[{i}].identity: '{entry.identity}' has different roles or"
                f" act_for_others than its entry on line {seen[1]}",
            )
            continue
        by_identity.setdefault(entry.identity, (identity, line))
        by_hash[digest] = (digest, identity)
        hash_line[digest] = line
    if errors:
        raise AuthConfigError("\n".join(errors))
    return by_hash, {name: entry.facts() for name, entry in model.principals.items()}


def _dotted(loc: tuple[Any, ...]) -> str:
    """A pydantic location as `tokens[0].roles[1]`."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
