"""OIDC/JWT bearer tokens: signature from a JWKS (file or URL), issuer, audience, expiry."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet

from signoff.auth.facts import ANYONE, KINDS, PrincipalFacts
from signoff.auth.identity import AuthConfigError, Identity, role_error
from signoff.errors import Unauthenticated
from signoff.logs import event

if TYPE_CHECKING:
    from signoff.auth.jwt_config import JwtPrincipalClaims, JwtSettings

log = logging.getLogger("signoff.auth")

# gRPC metadata is capped near 8 KiB anyway; refuse before parsing anything larger.
MAX_TOKEN_CHARS = 16 * 1024
# Verified tokens are reused until they expire; bounded so junk cannot grow memory.
MAX_CACHED_TOKENS = 4096
# After an unknown `kid`, refetch the JWKS at most this often (a rotated key is picked up,
# a flood of made-up kids does not hammer the identity provider).
REFRESH_COOLDOWN_S = 30.0

_ERRORS: list[tuple[type[Exception], str]] = [
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "algorithm does not match the signing key"),
    (jwt.InvalidKeyError, "signing key unusable for this token"),
    (jwt.DecodeError, "malformed JWT"),
]


@dataclass(frozen=True, slots=True)
class _Verified:
    identity: Identity
    exp: float
    nbf: float | None
    until: float  # re-verify after this, so a key removed from the JWKS stops working


class JwtAuthenticator:
    """Verifies JWTs from an OIDC provider and maps their claims to an identity."""

    def __init__(self, settings: JwtSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._clock = clock
        self._algorithms = list(settings.algorithms)
        self._allowed = ", ".join(self._algorithms)
        self._cache: dict[str, _Verified] = {}
        self._cache_lock = threading.Lock()
        self._file_keys: dict[str | None, PyJWK] = {}
        self._client: PyJWKClient | None = None
        if settings.jwks_file is not None:
            self._file_keys = _load_jwks_file(settings.jwks_file)
        else:
            assert settings.jwks_url is not None  # JwtSettings requires exactly one
            self._client = PyJWKClient(
                settings.jwks_url,
                lifespan=settings.jwks_cache_s,
                timeout=settings.jwks_timeout_s,
                cooldown_duration=REFRESH_COOLDOWN_S,
            )

    def authenticate(self, token: str | None, certificate: bytes | None = None) -> Identity:
        """The identity a valid JWT names; Unauthenticated saying what is wrong otherwise."""
        if not token:
            raise Unauthenticated("missing bearer token")
        now = self._clock()
        hit = self._cache.get(token)
        if hit is not None:
            if now <= hit.until:
                self._check_times(hit.exp, hit.nbf, now)
                return hit.identity
            self._cache.pop(token, None)
        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthenticated(f"token longer than {MAX_TOKEN_CHARS} characters")
        claims = self._verify(token)
        exp, nbf = _times(claims)
        self._check_times(exp, nbf, now)
        identity = self._identity(claims)
        until = min(exp + self.settings.leeway_s, now + self.settings.jwks_cache_s)
        # Reads need no lock; eviction does if a caller runs us in worker threads.
        with self._cache_lock:
            if len(self._cache) >= MAX_CACHED_TOKENS:
                self._cache.pop(next(iter(self._cache)))  # oldest first: insertion order
            self._cache[token] = _Verified(identity, exp, nbf, until)
        return identity

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed JWT") from None
        alg = header.get("alg")
        if alg not in self._algorithms:
            shown = repr(alg)[:24]  # the caller's own header, but keep the message short
            raise Unauthenticated(f"algorithm {shown} not allowed (allowed: {self._allowed})")
        key = self._key(header.get("kid"))
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                # exp and nbf are checked by _check_times against the injected clock.
                options={
                    "require": ["exp", "iss", "aud"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidAudienceError:
            raise Unauthenticated(f"wrong audience: expected {self.settings.audience}") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated(f"wrong issuer: expected {self.settings.issuer}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"token has no '{exc.claim}' claim") from None
        except jwt.PyJWTError as exc:
            for kind, message in _ERRORS:
                if isinstance(exc, kind):
                    raise Unauthenticated(message) from None
            raise Unauthenticated(f"invalid token: {type(exc).__name__}") from None

    def _key(self, kid: object) -> PyJWK:
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("malformed JWT: 'kid' is not a string")
        if self._client is None:
            key = self._file_keys.get(kid)
            if key is None and kid is None and len(self._file_keys) == 1:
                key = next(iter(self._file_keys.values()))  # one key: no kid needed
            if key is None:
                raise Unauthenticated("unknown signing key" if kid else "token has no 'kid'")
            return key
        if kid is None:
            raise Unauthenticated("token has no 'kid'")
        try:
            self._client.get_signing_keys()  # the cached set; fetched only when stale
            return self._client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            self._jwks_failed("auth.jwks_fetch_failed", exc)
        except jwt.PyJWKClientError as exc:
            if self._client.jwk_set_cache is not None and self._client.jwk_set_cache.get():
                # The set was fetched and is usable: the kid is just not in it.
                raise Unauthenticated("unknown signing key") from None
            self._jwks_failed("auth.jwks_unusable", exc)
        except (jwt.PyJWTError, ValueError) as exc:
            # A body that is not JSON, or a key set with no usable keys.
            self._jwks_failed("auth.jwks_unusable", exc)

    def _jwks_failed(self, name: str, exc: Exception) -> NoReturn:
        assert self._client is not None
        event(log, name, logging.WARNING, url=self._client.uri, error=str(exc))
        raise Unauthenticated("cannot fetch JWKS") from None

    def _check_times(self, exp: float, nbf: float | None, now: float) -> None:
        leeway = self.settings.leeway_s
        if now > exp + leeway:
            raise Unauthenticated("token expired")
        if nbf is not None and now < nbf - leeway:
            raise Unauthenticated("token not valid yet (nbf)")

    def _identity(self, claims: dict[str, Any]) -> Identity:
        s = self.settings
        ident = _claim(claims, s.identity_claim)
        if not isinstance(ident, str) or not ident:
            raise Unauthenticated(f"claim '{s.identity_claim}' must be a non-empty string")
        raw = _claim(claims, s.roles_claim)
        if raw is None:
            names: list[Any] = []
        elif isinstance(raw, str):
            names = raw.split()
        elif isinstance(raw, list) and all(isinstance(r, str) for r in raw):
            names = raw
        else:
            raise Unauthenticated(
                f"claim '{s.roles_claim}' must be a list of strings or a space-separated string"
            )
        # Identity providers put their own roles in the same claim (offline_access, ...):
        # keep the Signoff ones, ignore the rest rather than refuse the caller.
        roles = frozenset(r for r in names if role_error(r) is None)
        act = _claim(claims, s.act_for_others_claim)
        if act is not None and not isinstance(act, bool):
            raise Unauthenticated(f"claim '{s.act_for_others_claim}' must be true or false")
        facts = None if s.principal_claims is None else _facts(claims, s.principal_claims)
        return Identity(ident, roles, act_for_others=bool(act), source="jwt", facts=facts)


def _facts(claims: dict[str, Any], names: JwtPrincipalClaims) -> PrincipalFacts:
    """The principal facts the token's claims vouch for; Unauthenticated naming a bad one."""
    kind = _claim(claims, names.kind) if names.kind else None
    if kind is not None and kind not in KINDS:
        raise Unauthenticated(f"claim '{names.kind}' must be agent, user or service")
    attributes = _claim(claims, names.attributes) if names.attributes else None
    if attributes is not None and not isinstance(attributes, dict):
        raise Unauthenticated(f"claim '{names.attributes}' must be a JSON object")
    users = _claim(claims, names.on_behalf_of) if names.on_behalf_of else None
    return PrincipalFacts.of(
        kind=kind or "",
        roles=_strings(claims, names.roles),
        tags=_strings(claims, names.tags),
        attributes=attributes,
        on_behalf_of=ANYONE if users == ANYONE else _strings(claims, names.on_behalf_of),
    )


def _strings(claims: dict[str, Any], name: str | None) -> list[str]:
    """A claim that is a list of strings or a space-separated string; [] if unset."""
    raw = _claim(claims, name) if name else None
    if raw is None:
        return []
    if isinstance(raw, str):
        return raw.split()
    if isinstance(raw, list) and all(isinstance(r, str) for r in raw):
        return list(raw)
    raise Unauthenticated(f"claim '{name}' must be a list of strings or a space-separated string")


def _times(claims: dict[str, Any]) -> tuple[float, float | None]:
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise Unauthenticated("claim 'exp' must be a number")
    if nbf is not None and (isinstance(nbf, bool) or not isinstance(nbf, int | float)):
        raise Unauthenticated("claim 'nbf' must be a number")
    return float(exp), None if nbf is None else float(nbf)


def _claim(claims: dict[str, Any], name: str) -> Any:
    """A claim by exact name (URL-like names contain dots), else by dotted path."""
    if name in claims or "." not in name:
        return claims.get(name)
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _load_jwks_file(path: Path) -> dict[str | None, PyJWK]:
    """The signing keys of a JWKS file by kid; AuthConfigError naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AuthConfigError(f"{path}: cannot read JWKS: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise AuthConfigError(f"{path}: a JWKS is a JSON object with a 'keys' list")
    for raw in data["keys"]:
        # A private or shared-secret key on the server's disk is a leak waiting to happen,
        # and an "oct" key would let whoever reads this file sign tokens.
        if isinstance(raw, dict) and ("d" in raw or raw.get("kty") == "oct"):
            kid = raw.get("kid", "?")
            raise AuthConfigError(
                f"{path}: key {kid!r} is private or shared-secret: publish only public keys"
            )
    try:
        keyset = PyJWKSet.from_dict(data)
    except jwt.PyJWTError as exc:
        raise AuthConfigError(f"{path}: unusable JWKS: {exc}") from None
    keys: dict[str | None, PyJWK] = {}
    for key in keyset.keys:
        if key.public_key_use not in ("sig", None):
            continue
        if key.key_id in keys:
            raise AuthConfigError(f"{path}: two keys with kid {key.key_id!r}")
        keys[key.key_id] = key
    if not keys:
        raise AuthConfigError(f"{path}: no signing keys")
    if None in keys and len(keys) > 1:
        raise AuthConfigError(f"{path}: with several keys, every key needs a 'kid'")
    return keys
