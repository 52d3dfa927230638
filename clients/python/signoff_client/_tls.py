"""TLS for the channel: `tls_credentials` reads a CA and an optional client certificate."""

from __future__ import annotations

import os
from pathlib import Path

import grpc

PathLike = str | os.PathLike[str]


def _read(path: PathLike, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{what} {os.fspath(path)}: cannot read: {exc.strerror}") from None
    if b"-----BEGIN " not in data:
        raise ValueError(f"{what} {os.fspath(path)}: not a PEM file")
    return data


def tls_credentials(
    ca: PathLike | None = None, cert: PathLike | None = None, key: PathLike | None = None
) -> grpc.ChannelCredentials:
    """Channel credentials for a TLS server: `ca` (PEM) to trust, else the system's roots;
    `cert` and `key` (PEM) for mTLS. Pass the result as `Client(..., credentials=...)`."""
    if (cert is None) != (key is None):
        raise ValueError("cert and key go together: a client certificate needs its key")
    return grpc.ssl_channel_credentials(
        root_certificates=None if ca is None else _read(ca, "CA file"),
        private_key=None if key is None else _read(key, "client key"),
        certificate_chain=None if cert is None else _read(cert, "client certificate"),
    )
