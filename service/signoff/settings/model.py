"""Settings: one typed model, layered flags > environment (SIGNOFF_*) > config file > defaults."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from signoff.auth.config import AuthSettings
from signoff.limits.config import LimitSettings
from signoff.notify.config import NotifySettings
from signoff.settings.duration import Duration
from signoff.settings.grants import GrantSettings
from signoff.settings.receipts import ReceiptSettings
from signoff.settings.store import StoreSettings
from signoff.settings.tls import TlsSettings
from signoff.telemetry.config import TelemetrySettings


class ConfigError(Exception):
    """Settings could not be loaded; the message is one line naming the key."""


class AuditSettings(BaseModel):
    """Signed checkpoints of the audit chain."""

    model_config = ConfigDict(extra="forbid")

    signing_key: Path | None = Field(
        None,
        description="Ed25519 private key (PEM) that signs checkpoints, exports and receipts; "
        "default: signoff-audit-key.pem in state_dir (a key an older version left beside "
        "the database is still used there, with a warning).",
    )
    trusted_keys: list[Path] = Field(
        default_factory=list,
        description="Public keys (PEM) whose checkpoints count besides the signing key's own: "
        "after a key rotation, list the old key's public key so that its checkpoints still "
        "verify. A checkpoint signed by any other key fails verification.",
    )
    create_key: bool = Field(
        False, description="Generate the key file if it is missing (always so in dev mode)."
    )
    checkpoint_every: int = Field(
        10_000, gt=0, description="Sign the chain head at least every N entries."
    )
    checkpoint_interval: Duration = Field(
        dt.timedelta(seconds=60),
        gt=dt.timedelta(0),
        description="...and at least this often while entries arrive.",
    )


class Settings(BaseSettings):
    """Everything `signoff serve` can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="SIGNOFF_", env_nested_delimiter="__", extra="forbid"
    )

    policies: Path = Field(Path("./policies"), description="Directory of policy files.")
    state_dir: Path | None = Field(
        None,
        description="Private directory (created 0700) for the server's own state: the audit "
        "signing key. Default $XDG_STATE_HOME/signoff, else ~/.local/state/signoff; keep it "
        "outside working trees and away from the database.",
    )
    db: str = Field(
        "sqlite:///./signoff.db",
        description="Database URL: sqlite:///PATH, or postgresql://USER@HOST/DB for replicas.",
    )
    listen: str = Field("127.0.0.1:50051", description="gRPC listen address HOST:PORT.")
    http_listen: str = Field(
        "127.0.0.1:8080",
        description="HOST:PORT of the reviewer console and the Connect (browser) API; "
        "empty: no HTTP port.",
    )
    log_format: Literal["text", "json"] = Field("text", description="Log line format.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level."
    )
    default_decision: Literal["review", "deny"] = Field(
        "review", description="Decision when no rule matches."
    )
    default_reviewer_group: str = Field(
        "default", min_length=1, description="Reviewer group of the default review decision."
    )
    max_params_bytes: int = Field(
        256 * 1024, gt=0, description="Largest accepted action.params, in serialized bytes."
    )
    max_context_bytes: int = Field(
        256 * 1024, gt=0, description="Largest accepted context, in serialized bytes."
    )
    max_depth: int = Field(
        20, gt=0, le=30, description="Deepest accepted nesting of params, context and attributes."
    )
    max_batch: int = Field(100, gt=0, le=10_000, description="Most requests in one EvaluateBatch.")
    max_message_bytes: int = Field(
        4 * 1024 * 1024, gt=0, description="Largest gRPC message received; larger ones are refused."
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Server processes sharing the ports (SO_REUSEPORT), about one core each; "
        "review expiry and checkpoints run in worker 0. "
        "See docs/operators.md, 'Deployment shapes'.",
    )
    shutdown_grace: float = Field(
        10.0, ge=0, description="Seconds in-flight requests get to finish on SIGTERM."
    )
    review_timeout: Duration = Field(
        dt.timedelta(hours=24),
        gt=dt.timedelta(0),
        description="How long a review may stay pending when its rule sets no timeout.",
    )
    sweep_interval: float = Field(
        1.0, gt=0, description="Seconds between checks for reviews past their deadline."
    )
    watch_recheck: float = Field(
        5.0, gt=0, description="Seconds a WatchReview stream waits before re-reading anyway."
    )
    watch_policies: bool = Field(
        True, description="Reload the policies when a file in the policy directory changes."
    )
    watch_debounce: float = Field(
        0.3,
        gt=0,
        le=60,
        description="Seconds without further changes before the watcher reloads (a checkout "
        "that writes many files reloads once).",
    )
    analysis_timeout: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Seconds each solver question of the console's policy analysis (Insights "
        "page, GetAnalysis) may take; beyond it the finding is UNKNOWN. The same limit as "
        "`signoff policy analyze --timeout`.",
    )
    auth: AuthSettings = Field(
        default_factory=AuthSettings,
        description="Authentication; with nothing configured the server runs in dev mode.",
    )
    store: StoreSettings = Field(
        default_factory=StoreSettings,
        description="Group commit: how long a commit waits for more writes, and how many.",
    )
    audit: AuditSettings = Field(
        default_factory=AuditSettings, description="Signed checkpoints of the audit log."
    )
    notify: NotifySettings = Field(
        default_factory=NotifySettings, description="Webhooks per reviewer group."
    )
    grants: GrantSettings = Field(
        default_factory=GrantSettings,
        description="Standing approvals: how long a grant may last, how long a read is reused.",
    )
    receipts: ReceiptSettings = Field(
        default_factory=ReceiptSettings,
        description="Signed receipts of AUTO_ALLOW decisions and approved reviews.",
    )
    tls: TlsSettings = Field(
        default_factory=TlsSettings, description="TLS and mTLS on the gRPC and HTTP ports."
    )
    limits: LimitSettings = Field(
        default_factory=LimitSettings,
        description="Concurrent calls and streams, and calls per second per identity.",
    )
    telemetry: TelemetrySettings = Field(
        default_factory=TelemetrySettings,
        description="OpenTelemetry traces and metrics: OTLP export, /metrics on the HTTP port.",
    )

    @field_validator("listen", "http_listen")
    @classmethod
    def _check_listen(cls, v: str, info: ValidationInfo) -> str:
        optional = info.field_name == "http_listen"
        if optional and v == "":
            return v  # the documented way to turn the HTTP port off
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            off = ", or empty for no HTTP port" if optional else ""
            raise ValueError(f"must be HOST:PORT with a port 0-65535{off}, got {v!r}")
        return v

    @model_validator(mode="after")
    def _pages_fit_messages(self) -> Settings:
        self.limits.fields.check_budgets(self.max_message_bytes)
        return self

    @field_validator("db")
    @classmethod
    def _check_db(cls, v: str) -> str:
        if not v.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError(
                f"unsupported database URL {v!r}: use sqlite:///PATH or postgresql://..."
            )
        return v

    @property
    def is_postgres(self) -> bool:
        """True when `db` names a PostgreSQL database."""
        return self.db.startswith(("postgresql://", "postgres://"))

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file named by `db`."""
        return Path(self.db.removeprefix("sqlite:///"))

    @property
    def listen_host(self) -> str:
        """The host part of `listen`."""
        return self.listen.rpartition(":")[0]

    @property
    def http_listen_host(self) -> str:
        """The host part of `http_listen` ("" when the HTTP port is off)."""
        return self.http_listen.rpartition(":")[0]


def load_settings(flags: dict[str, Any] | None = None, config_file: Path | None = None) -> Settings:
    """Build settings from flags, environment and an optional YAML file; raise ConfigError."""
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    in_file = _read_config_file(config_file) if config_file is not None else {}

    class _Layered(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if config_file is not None:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
            return tuple(sources)

    try:
        return Settings.model_validate(_Layered(**given).model_dump())
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, config_file, in_file)) from None


def _read_config_file(path: Path) -> dict[str, Any]:
    """The YAML mapping in `path`; ConfigError naming the file (and line) if it is not one."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).replace("\n", " ")
        raise ConfigError(f"config file {path}{where}: not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ConfigError(f"config file {path}: must be a mapping of settings, got a {kind}")
    return data


def _one_line(
    exc: ValidationError, config_file: Path | None = None, in_file: dict[str, Any] | None = None
) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        env = "SIGNOFF_" + key.upper().replace(".", "__")
        # Name the file when the bad key came from it (the environment outranks the file).
        where = ""
        loc = err["loc"][:-1] if err["type"] == "missing" else err["loc"]
        if config_file is not None and _has(in_file or {}, loc) and env not in os.environ:
            where = f"config file {config_file}: "
        if err["type"] == "extra_forbidden":
            parts.append(f"{where}{key}: unknown setting")
        else:
            parts.append(f"{where}{key} ({env}): {msg}")
    return "; ".join(parts)


def _has(data: Any, loc: tuple[int | str, ...]) -> bool:
    for part in loc:
        in_list = isinstance(data, list) and isinstance(part, int) and part < len(data)
        if not (in_list or (isinstance(data, dict) and part in data)):
            return False
        data = data[part]
    return True
