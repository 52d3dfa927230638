"""mTLS identities: a verified client certificate's subject or URI SAN mapped to an identity.

The TLS handshake has already checked the certificate against `tls.client_ca_file`
(`tls.client_auth: require`); this maps who it names to Signoff roles. A bearer token, when
the caller sends one, wins: the certificate then only proves the connection (a gateway that
holds a certificate and forwards its users' tokens).
"""

from __future__ import annotations

import re
import threading
from typing import Self

from cryptography import x509
from cryptography.x509.oid import NameOID
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from signoff.auth.identity import Authenticator, Identity, parse_roles
from signoff.errors import Unauthenticated

# Parsed certificates are remembered by their bytes: a client reuses one certificate for
# every call of a connection. Bounded so that many clients cannot grow memory.
MAX_CACHED_CERTIFICATES = 1024
_SPACED_COMMA = re.compile(r"(?<!\\)\s*,\s*")


class MtlsIdentity(BaseModel):
    """One client certificate (by subject or URI SAN) and the identity it stands for."""

    model_config = ConfigDict(extra="forbid")

    subject: str | None = Field(
        None,
        description="The certificate's subject as an RFC 4514 string, most specific first "
        "(`openssl x509 -noout -subject -nameopt RFC2253`), e.g. CN=billing-agent,O=Acme.",
    )
    uri: str | None = Field(
        None, description="A URI SAN of the certificate, e.g. spiffe://acme.example/billing."
    )
    identity: str | None = Field(
        None, min_length=1, description="The identity id; default: the subject's CN, or the URI."
    )
    roles: list[str] = Field(
        description="Signoff roles: agent, reviewer:<group>, auditor, admin, witness."
    )
    act_for_others: bool = Field(
        False, description="May send requests whose principal is not this identity."
    )

    @field_validator("subject")
    @classmethod
    def _normal_subject(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            # "CN=a, O=b" as people write it; the parser wants no space after the comma.
            return x509.Name.from_rfc4514_string(_SPACED_COMMA.sub(",", v.strip())).rfc4514_string()
        except ValueError as exc:
            raise ValueError(f"not an RFC 4514 subject: {exc}") from None

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, v: list[str]) -> list[str]:
        return sorted(parse_roles(v))

    @model_validator(mode="after")
    def _one_key(self) -> Self:
        if (self.subject is None) == (self.uri is None):
            raise ValueError("set exactly one of subject and uri")
        if self.identity is None and self.subject is not None:
            cns = x509.Name.from_rfc4514_string(self.subject).get_attributes_for_oid(
                NameOID.COMMON_NAME
            )
            if not cns:
                raise ValueError(f"subject {self.subject!r} has no CN: set identity")
        return self


class MtlsSettings(BaseModel):
    """Client certificates (verified by tls.client_ca_file) that are identities."""

    model_config = ConfigDict(extra="forbid")

    identities: list[MtlsIdentity] = Field(
        min_length=1, description="Certificates that are identities, by subject or URI SAN."
    )

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: set[str] = set()
        for entry in self.identities:
            key = entry.subject or f"uri {entry.uri}"
            if key in seen:
                raise ValueError(f"{key!r} is mapped twice")
            seen.add(key)
        return self


def _identity(entry: MtlsIdentity) -> Identity:
    ident = entry.identity
    if ident is None and entry.subject is not None:
        cn = x509.Name.from_rfc4514_string(entry.subject).get_attributes_for_oid(
            NameOID.COMMON_NAME
        )[0]
        ident = str(cn.value)
    return Identity(
        ident or str(entry.uri),
        parse_roles(entry.roles),
        act_for_others=entry.act_for_others,
        source="mtls",
    )


class MtlsAuthenticator:
    """Bearer token if sent (to the token authenticators), else the client certificate."""

    uses_certificates = True  # the Guard passes the peer certificate only to those who ask

    def __init__(self, settings: MtlsSettings, tokens: Authenticator | None) -> None:
        self._tokens = tokens
        self._by_subject = {e.subject: _identity(e) for e in settings.identities if e.subject}
        self._by_uri = {e.uri: _identity(e) for e in settings.identities if e.uri}
        self._cache: dict[bytes, Identity | str] = {}
        self._lock = threading.Lock()

    def authenticate(self, token: str | None, certificate: bytes | None = None) -> Identity:
        """The token's identity if a token is sent, else the certificate's; Unauthenticated."""
        if token:
            if self._tokens is None:
                raise Unauthenticated(
                    "bearer tokens are not accepted here (no auth.tokens_file or auth.jwt): "
                    "authenticate with the client certificate alone"
                )
            return self._tokens.authenticate(token)
        if certificate is None:
            raise Unauthenticated("no client certificate and no bearer token")
        found = self._cache.get(certificate)
        if found is None:
            found = self._lookup(certificate)
            with self._lock:
                if len(self._cache) >= MAX_CACHED_CERTIFICATES:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[certificate] = found
        if isinstance(found, str):
            raise Unauthenticated(found)
        return found

    def _lookup(self, certificate: bytes) -> Identity | str:
        """The mapped identity, or why there is none."""
        try:
            cert = x509.load_der_x509_certificate(certificate)
        except ValueError:
            return "unreadable client certificate"
        subject = cert.subject.rfc4514_string()
        hit = self._by_subject.get(subject)
        if hit is not None:
            return hit
        try:
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
        except x509.ExtensionNotFound:
            uris = []
        for uri in uris:
            hit = self._by_uri.get(uri)
            if hit is not None:
                return hit
        named = f"{subject!r}" + (f" (URI {', '.join(uris)})" if uris else "")
        return f"client certificate {named} is not mapped to an identity (auth.mtls.identities)"
