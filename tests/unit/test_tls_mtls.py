"""auth.mtls: client certificates mapped to identities, and how a bearer token takes part."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from signoff.auth import (
    AuthSettings,
    MtlsAuthenticator,
    MtlsSettings,
    build_authenticator,
    hash_token,
)
from signoff.errors import Unauthenticated

from ..pki import Ca


def _der(path: Path) -> bytes:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture
def ca(tmp_path: Path) -> Ca:
    return Ca(tmp_path)


def _mtls(*identities: dict[str, Any]) -> MtlsSettings:
    return MtlsSettings.model_validate({"identities": list(identities)})


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"roles": ["agent"]}, "set exactly one of subject and uri"),
        ({"subject": "CN=a", "uri": "spiffe://x/a", "roles": []}, "set exactly one of"),
        ({"subject": "O=Acme", "roles": ["agent"]}, "subject 'O=Acme' has no CN: set identity"),
        ({"subject": "CN=a", "roles": ["root"]}, "unknown role 'root'"),
        ({"subject": "not a subject", "roles": []}, "not an RFC 4514 subject"),
    ],
)
def test_bad_entries_are_refused_by_name(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _mtls(entry)


def test_a_subject_mapped_twice_is_refused() -> None:
    with pytest.raises(ValidationError, match="'CN=a,O=Acme' is mapped twice"):
        _mtls({"subject": "CN=a,O=Acme", "roles": []}, {"subject": "CN=a, O=Acme", "roles": []})


def test_subjects_are_compared_as_names(ca: Ca) -> None:
    cert = ca.issue("bot", "bot-1", org="Acme")
    auth = MtlsAuthenticator(_mtls({"subject": " CN=bot-1 ,  O=Acme", "roles": ["agent"]}), None)
    who = auth.authenticate(None, _der(cert.cert))
    assert (who.id, who.roles, who.source) == ("bot-1", frozenset({"agent"}), "mtls")
    assert auth.authenticate(None, _der(cert.cert)) is who  # remembered, not parsed again


def test_a_uri_san_names_the_identity(ca: Ca) -> None:
    cert = ca.issue("gw", "gw", uris=("https://acme.test/x", "spiffe://acme.test/gw"))
    settings = _mtls({"uri": "spiffe://acme.test/gw", "roles": ["agent"], "act_for_others": True})
    who = MtlsAuthenticator(settings, None).authenticate(None, _der(cert.cert))
    assert (who.id, who.act_for_others) == ("spiffe://acme.test/gw", True)


def test_unmapped_and_unreadable_certificates(ca: Ca) -> None:
    cert = ca.issue("other", "other", uris=("spiffe://acme.test/other",))
    auth = MtlsAuthenticator(_mtls({"subject": "CN=bot", "roles": []}), None)
    with pytest.raises(Unauthenticated) as err:
        auth.authenticate(None, _der(cert.cert))
    assert err.value.message == (
        "client certificate 'CN=other,O=Signoff Tests' (URI spiffe://acme.test/other) is not "
        "mapped to an identity (auth.mtls.identities)"
    )
    with pytest.raises(Unauthenticated, match="unreadable client certificate"):
        auth.authenticate(None, b"\x30\x03junk")
    with pytest.raises(Unauthenticated, match="no client certificate and no bearer token"):
        auth.authenticate(None, None)


def test_with_tokens_configured_a_token_wins(ca: Ca, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        f"tokens:\n  - sha256: {hash_token('t-ann')}\n    identity: ann\n    roles: [auditor]\n"
    )
    auth = build_authenticator(
        AuthSettings(
            tokens_file=tokens,
            mtls=_mtls({"subject": "CN=bot,O=Signoff Tests", "roles": ["agent"]}),
        )
    )
    assert isinstance(auth, MtlsAuthenticator)
    cert = _der(ca.issue("bot", "bot").cert)
    assert auth.authenticate("t-ann", cert).id == "ann"
    assert auth.authenticate(None, cert).id == "bot"
    with pytest.raises(Unauthenticated, match="unknown token"):
        auth.authenticate("t-nobody", cert)
