"""TLS and mTLS on the gRPC and HTTP ports: the `tls` settings, start-up checks of the files,
and certificate files that are re-read when they change (rotation without a restart)."""

from __future__ import annotations

import datetime as dt
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from signoff.logs import event
from signoff.settings.tls import TlsError, TlsSettings

log = logging.getLogger("signoff.tls")

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class Material:
    """The contents of the TLS files, checked: a key that matches a valid certificate."""

    cert_pem: bytes
    key_pem: bytes
    client_ca_pem: bytes | None
    subject: str
    not_after: dt.datetime


def _where(key: str, path: Path) -> str:
    return f"tls.{key} (SIGNOFF_TLS__{key.upper()}): {path}"


def _read(key: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsError(f"{_where(key, path)}: cannot read: {exc.strerror}") from None


def _certificates(key: str, path: Path) -> tuple[bytes, list[x509.Certificate]]:
    data = _read(key, path)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TlsError(f"{_where(key, path)}: not a PEM certificate") from None
    return data, certs


def load_material(settings: TlsSettings, now: dt.datetime) -> Material:
    """Read and check the configured files; TlsError naming the setting and file if unusable."""
    assert settings.cert_file is not None
    assert settings.key_file is not None
    cert_pem, certs = _certificates("cert_file", settings.cert_file)
    leaf = certs[0]
    key_pem = _read("key_file", settings.key_file)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise TlsError(
            f"{_where('key_file', settings.key_file)}: encrypted; "
            "the server needs an unencrypted key"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsError(f"{_where('key_file', settings.key_file)}: not a PEM private key") from None
    if key.public_key().public_bytes(*_SPKI) != leaf.public_key().public_bytes(*_SPKI):
        raise TlsError(
            f"{_where('key_file', settings.key_file)}: does not match the certificate in "
            f"{settings.cert_file}"
        )
    where = _where("cert_file", settings.cert_file)
    if now > leaf.not_valid_after_utc:
        raise TlsError(f"{where}: certificate expired on {_day(leaf.not_valid_after_utc)}")
    if now < leaf.not_valid_before_utc:
        raise TlsError(f"{where}: certificate not valid before {_day(leaf.not_valid_before_utc)}")
    client_ca = None
    if settings.client_ca_file is not None:
        client_ca, _ = _certificates("client_ca_file", settings.client_ca_file)
    return Material(
        cert_pem, key_pem, client_ca, leaf.subject.rfc4514_string(), leaf.not_valid_after_utc
    )


def _day(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CertificateFiles:
    """The TLS files as last loaded; each new connection (either port) first looks whether
    they changed on disk, and a change that checks out is served from then on."""

    def __init__(self, settings: TlsSettings, clock: Callable[[], dt.datetime] = _utcnow) -> None:
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self.material = load_material(settings, clock())
        self.version = 0
        event(
            log,
            "tls.loaded",
            subject=self.material.subject,
            not_after=_day(self.material.not_after),
            client_auth=settings.client_auth,
            http="tls" if settings.http else "plain",
        )
        self._warn_if_expiring()

    def _paths(self) -> list[Path]:
        s = self.settings
        return [p for p in (s.cert_file, s.key_file, s.client_ca_file) if p is not None]

    def _stat(self) -> tuple[tuple[int, int, int], ...]:
        out = []
        for path in self._paths():
            try:
                st = path.stat()
            except OSError:
                out.append((-1, -1, -1))  # mid-rotation: compared, and reloading reports it
                continue
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    def check(self) -> tuple[int, Material]:
        """Reload if a file changed since the last look; the (version, material) to serve.

        A change that does not check out (a key written before its certificate, an expired
        certificate) is logged and the previous files are served until the next change.
        """
        stamp = self._stat()
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    material = load_material(self.settings, self._clock())
                except TlsError as exc:
                    event(log, "tls.reload_failed", logging.ERROR, error=str(exc))
                else:
                    self.material, self.version = material, self.version + 1
                    event(
                        log,
                        "tls.reloaded",
                        subject=material.subject,
                        not_after=_day(material.not_after),
                    )
                    self._warn_if_expiring()
            return self.version, self.material

    def _warn_if_expiring(self) -> None:
        left = self.material.not_after - self._clock()
        if left < dt.timedelta(days=self.settings.expiry_warning_days):
            event(
                log,
                "tls.certificate_expiring",
                logging.WARNING,
                file=str(self.settings.cert_file),
                not_after=_day(self.material.not_after),
                days_left=left.days,
            )


def _grpc_config(material: Material) -> Any:
    return grpc.ssl_server_certificate_configuration(
        [(material.key_pem, material.cert_pem)], root_certificates=material.client_ca_pem
    )


def grpc_credentials(files: CertificateFiles) -> grpc.ServerCredentials:
    """Server credentials that pick up rotated files at the next handshake."""
    version, material = files.check()
    served = [version]

    def fetch() -> Any:
        # Called by gRPC before each handshake, on one of its threads; None keeps the current.
        try:
            version, material = files.check()
            if version == served[0]:
                return None
            served[0] = version
            return _grpc_config(material)
        except Exception:
            log.exception("TLS certificate reload failed")
            return None

    return grpc.dynamic_ssl_server_credentials(
        _grpc_config(material), fetch, require_client_authentication=files.settings.mutual
    )


def _ssl_context(settings: TlsSettings) -> ssl.SSLContext:
    assert settings.cert_file is not None
    assert settings.key_file is not None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(settings.cert_file, settings.key_file)
    if settings.client_ca_file is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(settings.client_ca_file)
    return ctx


def http_context(files: CertificateFiles) -> ssl.SSLContext:
    """An SSLContext for the HTTP port that serves rotated files from the next handshake on."""
    outer = _ssl_context(files.settings)
    current: list[Any] = [files.version, outer]

    def swap(ssl_obj: Any, server_name: str | None, ctx: ssl.SSLContext) -> None:
        # OpenSSL calls this for every ClientHello (server_name None without SNI), before it
        # picks the certificate: the place to hand the connection the newest context. A
        # fresh context per change, so a failed load leaves the served one intact.
        version, _ = files.check()
        if version != current[0]:
            try:
                fresh = _ssl_context(files.settings)
            except (ssl.SSLError, OSError) as exc:
                event(log, "tls.reload_failed", logging.ERROR, port="http", error=str(exc))
            else:
                fresh.sni_callback = swap
                current[0], current[1] = version, fresh
        if ssl_obj.context is not current[1]:
            ssl_obj.context = current[1]

    outer.sni_callback = swap
    return outer


def certificate_files(settings: TlsSettings, mtls_identities: bool) -> CertificateFiles | None:
    """The checked files when TLS is on, None when off; TlsError if unusable."""
    if mtls_identities and not settings.mutual:
        raise TlsError(
            "auth.mtls: client certificates as identities need tls.client_auth: require "
            "and tls.client_ca_file (SIGNOFF_TLS__CLIENT_AUTH, SIGNOFF_TLS__CLIENT_CA_FILE)"
        )
    return CertificateFiles(settings) if settings.enabled else None


__all__ = ["CertificateFiles", "Material", "TlsError", "TlsSettings"]
