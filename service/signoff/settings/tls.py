"""The `tls` settings: TLS and mTLS on the gRPC and HTTP ports (the files are read and
watched by `signoff.serving.tls`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TlsError(ValueError):
    """A TLS file is unusable; the message is one line naming the setting and the file."""


class TlsSettings(BaseModel):
    """TLS on the gRPC port (and by default the HTTP port); mTLS with client_auth: require."""

    model_config = ConfigDict(extra="forbid")

    cert_file: Path | None = Field(
        None,
        description="Server certificate chain (PEM, leaf first); setting it turns TLS on. "
        "Re-read when it changes.",
    )
    key_file: Path | None = Field(
        None, description="Private key of cert_file (PEM, unencrypted). Re-read when it changes."
    )
    client_ca_file: Path | None = Field(
        None,
        description="CA certificates (PEM) that client certificates must chain to; "
        "needs client_auth: require.",
    )
    client_auth: Literal["none", "require"] = Field(
        "none",
        description="require: every client presents a certificate from client_ca_file (mTLS), "
        "refused at the handshake otherwise; none: clients are not asked for one.",
    )
    http: bool = Field(
        True,
        description="Serve the HTTP port (console, Connect) over TLS with the same files; "
        "false: plain HTTP, e.g. behind a proxy that terminates TLS.",
    )
    expiry_warning_days: int = Field(
        14, ge=0, description="Warn in the log when the server certificate expires this soon."
    )

    @model_validator(mode="after")
    def _consistent(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            raise ValueError(f"cert_file and key_file go together: set {missing} too")
        if self.client_auth == "require" and self.client_ca_file is None:
            raise ValueError("client_auth: require needs client_ca_file")
        if self.client_ca_file is not None and self.client_auth != "require":
            raise ValueError("client_ca_file is set: set client_auth: require to use it")
        if self.client_auth == "require" and self.cert_file is None:
            raise ValueError("client_auth: require needs cert_file and key_file (mTLS is TLS)")
        return self

    @property
    def enabled(self) -> bool:
        """Whether the gRPC port serves TLS."""
        return self.cert_file is not None

    @property
    def mutual(self) -> bool:
        """Whether clients must present a certificate (mTLS)."""
        return self.client_auth == "require"

    @property
    def serves_http(self) -> bool:
        """Whether the HTTP port serves TLS too."""
        return self.enabled and self.http
