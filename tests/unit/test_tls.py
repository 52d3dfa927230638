"""The `tls` settings and the checks of its files, and reloading them when they change."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signoff.serving.tls import (
    CertificateFiles,
    TlsError,
    TlsSettings,
    certificate_files,
    load_material,
)
from signoff.settings.model import ConfigError, load_settings

from ..pki import NOW, Ca


@pytest.fixture
def ca(tmp_path: Path) -> Ca:
    return Ca(tmp_path)


def _settings(ca: Ca, **extra: object) -> TlsSettings:
    server = ca.issue("server", "server-1", server=True)
    return TlsSettings(cert_file=server.cert, key_file=server.key, **extra)


# -- settings -------------------------------------------------------------------------------


def test_tls_is_off_by_default() -> None:
    settings = TlsSettings()
    assert not settings.enabled
    assert not settings.serves_http
    assert certificate_files(settings, mtls_identities=False) is None


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"cert_file": "c.pem"}, "cert_file and key_file go together: set key_file too"),
        ({"key_file": "k.pem"}, "cert_file and key_file go together: set cert_file too"),
        (
            {"cert_file": "c.pem", "key_file": "k.pem", "client_auth": "require"},
            "client_auth: require needs client_ca_file",
        ),
        (
            {"cert_file": "c.pem", "key_file": "k.pem", "client_ca_file": "ca.pem"},
            "client_ca_file is set: set client_auth: require to use it",
        ),
        (
            {"client_ca_file": "ca.pem", "client_auth": "require"},
            "client_auth: require needs cert_file and key_file",
        ),
    ],
)
def test_inconsistent_settings_are_one_line_naming_tls(
    monkeypatch: pytest.MonkeyPatch, given: dict[str, str], message: str
) -> None:
    for key, value in given.items():
        monkeypatch.setenv(f"SIGNOFF_TLS__{key.upper()}", value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value).startswith(f"tls (SIGNOFF_TLS): {message}")


def test_client_auth_optional_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # gRPC's Python server can only not ask for a client certificate, or require one.
    monkeypatch.setenv("SIGNOFF_TLS__CLIENT_AUTH", "optional")
    with pytest.raises(ConfigError, match=r"^tls.client_auth \(SIGNOFF_TLS__CLIENT_AUTH\): "):
        load_settings()


# -- files ----------------------------------------------------------------------------------


def test_good_files_load(ca: Ca) -> None:
    settings = _settings(ca, client_ca_file=ca.pem, client_auth="require")
    material = load_material(settings, NOW)
    assert material.subject == "CN=server-1,O=Signoff Tests"
    assert material.client_ca_pem == ca.pem.read_bytes()


def test_missing_file_names_setting_and_path(ca: Ca, tmp_path: Path) -> None:
    settings = _settings(ca)
    settings.key_file = tmp_path / "gone.pem"
    with pytest.raises(TlsError) as err:
        load_material(settings, NOW)
    assert str(err.value) == (
        f"tls.key_file (SIGNOFF_TLS__KEY_FILE): {tmp_path / 'gone.pem'}: cannot read: "
        "No such file or directory"
    )


def test_a_key_that_is_not_pem(ca: Ca) -> None:
    settings = _settings(ca)
    assert settings.key_file is not None
    settings.key_file.write_text("nonsense")
    with pytest.raises(TlsError, match=r"tls.key_file .*: not a PEM private key$"):
        load_material(settings, NOW)


def test_an_encrypted_key_is_refused(ca: Ca) -> None:
    settings = _settings(ca)
    assert settings.key_file is not None
    key = serialization.load_pem_private_key(settings.key_file.read_bytes(), None)
    settings.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TlsError, match="encrypted; the server needs an unencrypted key"):
        load_material(settings, NOW)


def test_a_bad_client_ca_file(ca: Ca, tmp_path: Path) -> None:
    bad = tmp_path / "ca-bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    settings = _settings(ca, client_ca_file=bad, client_auth="require")
    with pytest.raises(TlsError, match=r"^tls.client_ca_file \(SIGNOFF_TLS__CLIENT_CA_FILE\)"):
        load_material(settings, NOW)


def test_a_certificate_not_valid_yet(ca: Ca) -> None:
    settings = _settings(ca)
    with pytest.raises(TlsError, match="certificate not valid before"):
        load_material(settings, NOW - dt.timedelta(days=2))


def test_expiring_soon_is_a_warning(ca: Ca, caplog: pytest.LogCaptureFixture) -> None:
    soon = ca.issue("soon", "soon", server=True, days=3)
    later = ca.issue("later", "later", server=True, days=60)
    with caplog.at_level(logging.WARNING, logger="signoff.tls"):
        CertificateFiles(TlsSettings(cert_file=later.cert, key_file=later.key))
        assert not caplog.records
        CertificateFiles(TlsSettings(cert_file=soon.cert, key_file=soon.key))
    [record] = caplog.records
    assert record.getMessage().startswith("tls.certificate_expiring")
    assert vars(record)["file"] == str(soon.cert)


def test_mtls_identities_need_client_auth(ca: Ca) -> None:
    with pytest.raises(TlsError, match=r"^auth.mtls: .* need tls.client_auth: require"):
        certificate_files(_settings(ca), mtls_identities=True)


# -- reloading ------------------------------------------------------------------------------


def _put(src: Path, dst: Path) -> None:
    tmp = dst.with_suffix(".new")
    tmp.write_bytes(src.read_bytes())
    os.replace(tmp, dst)


def test_reload_only_when_a_file_changed_and_only_what_checks_out(
    ca: Ca, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(ca)
    assert settings.cert_file is not None
    assert settings.key_file is not None
    files = CertificateFiles(settings)
    assert files.check()[0] == 0
    assert files.check()[0] == 0  # unchanged: nothing re-read

    new = ca.issue("new", "server-2", server=True)
    with caplog.at_level(logging.INFO, logger="signoff.tls"):
        _put(new.cert, settings.cert_file)  # the key is still the old one
        version, material = files.check()
        assert (version, material.subject) == (0, "CN=server-1,O=Signoff Tests")
        assert "does not match the certificate" in vars(caplog.records[-1])["error"]

        _put(new.key, settings.key_file)
        version, material = files.check()
    assert (version, material.subject) == (1, "CN=server-2,O=Signoff Tests")
    assert [r.getMessage().split()[0] for r in caplog.records] == [
        "tls.reload_failed",
        "tls.reloaded",
    ]


def test_an_expired_replacement_is_not_served(ca: Ca) -> None:
    settings = _settings(ca)
    assert settings.cert_file is not None
    assert settings.key_file is not None
    files = CertificateFiles(settings)
    old = ca.issue("old", "old", server=True, expired=True)
    _put(old.cert, settings.cert_file)
    _put(old.key, settings.key_file)
    assert files.check()[1].subject == "CN=server-1,O=Signoff Tests"


def test_a_file_missing_mid_rotation_keeps_the_current(ca: Ca) -> None:
    settings = _settings(ca)
    assert settings.key_file is not None
    files = CertificateFiles(settings)
    settings.key_file.unlink()
    assert files.check() == (0, files.material)
    # A key of another algorithm is still a mismatch, not a crash.
    other = ec.generate_private_key(ec.SECP384R1())
    settings.key_file.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert files.check()[0] == 0


# -- the Python client's tls_credentials ----------------------------------------------------


def test_client_tls_credentials_name_the_bad_file(ca: Ca, tmp_path: Path) -> None:
    from signoff_client import tls_credentials

    client = ca.issue("client", "bot")
    assert tls_credentials(ca=ca.pem, cert=client.cert, key=client.key) is not None
    assert tls_credentials() is not None  # the system's CAs
    with pytest.raises(ValueError, match="cert and key go together"):
        tls_credentials(ca=ca.pem, cert=client.cert)
    with pytest.raises(ValueError, match=f"^CA file {tmp_path / 'nope.pem'}: cannot read: "):
        tls_credentials(ca=tmp_path / "nope.pem")
    (tmp_path / "text.pem").write_text("hello")
    with pytest.raises(ValueError, match=f"^client key {tmp_path / 'text.pem'}: not a PEM file$"):
        tls_credentials(ca=ca.pem, cert=client.cert, key=tmp_path / "text.pem")
