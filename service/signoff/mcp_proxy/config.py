"""The `signoff mcp-proxy` config file: Signoff, the principal, the fail mode, the upstreams.

Validated by pydantic; every error names the file, the line and column, and the field.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    model_validator,
)
from yaml.nodes import MappingNode, Node

from signoff.policy.model import parse_duration
from signoff.yamlpos import at, dotted, duplicate_keys, field_message, load_document, node_at

# Upstream names become part of action names (mcp.<name>.<tool>) and of namespaced tools.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class McpConfigError(Exception):
    """The config file is unreadable or invalid; the message lists every problem."""


def _upstream_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(
            f"invalid upstream name {value!r}: letters, digits, '_' and '-', starting with a "
            "letter or digit (it becomes part of the action name mcp.<name>.<tool>)"
        )
    return value


def _duration(value: str | float) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 45s, 10m or 1h")
    if isinstance(value, int | float):
        if value <= 0:
            raise ValueError(f"must be longer than zero, got {value}")
        return float(value)
    return parse_duration(value) / dt.timedelta(seconds=1)


Seconds = Annotated[StrictStr | float, AfterValidator(_duration)]
UpstreamName = Annotated[StrictStr, AfterValidator(_upstream_name)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignoffTarget(_Strict):
    """Where the Signoff server is and how to authenticate to it."""

    server: StrictStr | None = None  # default: $SIGNOFF_SERVER, then 127.0.0.1:50051
    token: StrictStr | None = None  # default: $SIGNOFF_TOKEN
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    timeout: Seconds = 5.0  # per Evaluate call, retries included


class PrincipalConfig(_Strict):
    """Who the agent behind the proxy is, as Signoff's policies see it."""

    id: StrictStr = Field(min_length=1)
    kind: StrictStr = "agent"
    roles: list[StrictStr] = []
    tags: list[StrictStr] = []
    on_behalf_of: StrictStr = ""
    attributes: dict[str, Any] = {}

    def as_dict(self) -> dict[str, Any]:
        """The principal as `signoff_client` takes it."""
        return self.model_dump()


class ToolHints(_Strict):
    """A deployment's word on one tool's annotations: it replaces the upstream's, hint by
    hint (the upstream's own are untrusted hints: it says what its tools do)."""

    title: StrictStr | None = None
    read_only: StrictBool | None = Field(default=None, alias="readOnlyHint")
    destructive: StrictBool | None = Field(default=None, alias="destructiveHint")
    idempotent: StrictBool | None = Field(default=None, alias="idempotentHint")
    open_world: StrictBool | None = Field(default=None, alias="openWorldHint")

    def pinned(self) -> dict[str, bool]:
        """The hints it sets, by their MCP names."""
        hints = self.model_dump(by_alias=True, exclude={"title"})
        return {k: v for k, v in hints.items() if v is not None}


class UpstreamConfig(_Strict):
    """One MCP server behind the proxy: a command run over stdio, or a streamable HTTP URL."""

    name: UpstreamName
    command: StrictStr | None = None  # run over stdio, in `cwd` (default: the config's directory)
    args: list[StrictStr] = []
    env: dict[str, StrictStr] = {}
    cwd: Path | None = None
    url: StrictStr | None = None
    headers: dict[str, StrictStr] = {}
    connect_timeout: Seconds = 30.0
    # Per tool name: annotations the deployment pins (they win over the upstream's).
    annotations: dict[StrictStr, ToolHints] = {}

    @model_validator(mode="after")
    def _one_transport(self) -> UpstreamConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of 'command' (stdio) or 'url' (streamable HTTP)")
        if self.url is not None and not re.match(r"^https?://", self.url):
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
        if self.url is not None and (self.args or self.env or self.cwd):
            raise ValueError("args, env and cwd are for 'command' upstreams, not 'url' ones")
        if self.command is not None and self.headers:
            raise ValueError("headers are for 'url' upstreams, not 'command' ones")
        return self

    @property
    def where(self) -> str:
        """The command line or URL, for messages."""
        if self.url is not None:
            return self.url
        return " ".join([self.command or "", *self.args])


class InBandConfig(_Strict):
    """In-band approvals (mcp_proxy/in_band.py): the human at the MCP client settles a review
    the policy lets them settle (`in_band: requester`), as themself."""

    # The human's own Signoff token, never the agent's: the act is theirs.
    token: StrictStr = Field(min_length=1)
    # The reviewer console's address (e.g. http://127.0.0.1:8080): clients that declared
    # URL-mode elicitation get a link to the review's page there instead of a form.
    console_url: StrictStr | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")


class ProxyConfig(_Strict):
    """The whole file."""

    signoff: SignoffTarget = SignoffTarget()
    principal: PrincipalConfig
    # closed: no decision, no call. open: forward undecided calls, with a warning each time.
    fail_mode: Literal["closed", "open"] = "closed"
    review_timeout: Seconds = 600.0
    progress_interval: Seconds = 10.0
    # --http: clients must send `Authorization: Bearer <http_token>`; required off loopback,
    # since whoever reaches the port calls tools as `principal`.
    http_token: StrictStr | None = Field(default=None, min_length=16)
    # Tools the policies deny whatever their arguments are left out of tools/list; this
    # often the proxy asks Signoff again, and tells clients when their list changed.
    hide_denied: StrictBool = True
    policy_refresh: Seconds = 30.0
    upstreams: list[UpstreamConfig] = Field(min_length=1)
    in_band: InBandConfig | None = None


def load_config(path: Path) -> ProxyConfig:
    """Read and validate a config file; McpConfigError lists each problem at file:line:col."""
    root, data = load_document(path, "the config file", McpConfigError)
    if root is None or not isinstance(root, MappingNode) or not isinstance(data, dict):
        raise McpConfigError(
            f"{path}:1:1: the config is a mapping with 'principal' and 'upstreams'"
        )
    errors: list[str] = []

    def error(node: Node, message: str) -> None:
        errors.append(f"{at(path, node)}: {message}")

    duplicate_keys(root, error)
    try:
        data = _expand_env(data, ())
    except _MissingVariable as exc:
        error(node_at(root, exc.loc), f"{dotted(exc.loc)}: {exc}")
    if errors:
        raise McpConfigError("\n".join(errors))
    try:
        config = ProxyConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            message = field_message(err)
            # Union members add their type name to the location: drop what YAML lacks.
            loc = tuple(p for p in loc if not (isinstance(p, str) and p in _TYPE_TAGS))
            node = node_at(root, loc, key=err["type"] == "extra_forbidden")
            # A missing key is named in the message; the label is where it is missing.
            label = loc[:-1] if err["type"] == "missing" else loc
            error(node, f"{dotted(label)}: {message}" if label else message)
        raise McpConfigError("\n".join(errors)) from None
    first: dict[str, int] = {}
    for i, upstream in enumerate(config.upstreams):
        if upstream.name in first:
            loc = ("upstreams", i, "name")
            error(
                node_at(root, loc),
                f"{dotted(loc)}: '{upstream.name}' is also upstreams[{first[upstream.name]}]",
            )
        first.setdefault(upstream.name, i)
    if errors:
        raise McpConfigError("\n".join(errors))
    return _run_beside(config, path.resolve().parent)


def own_python(command: str) -> str:
    """A bare `python` or `python3` is the proxy's own interpreter: without an activated
    virtualenv PATH's python lacks the MCP SDK, or is missing altogether."""
    return sys.executable if command in ("python", "python3") else command


def _run_beside(config: ProxyConfig, directory: Path) -> ProxyConfig:
    """Relative paths are the config file's: command upstreams run in its directory (or
    `cwd` relative to it), TLS files are found beside it. An MCP client app starts the
    proxy from a working directory nobody chose."""
    upstreams = [
        u.model_copy(
            update={
                "cwd": directory / u.cwd if u.cwd else directory,
                "command": own_python(u.command),
            }
        )
        if u.command is not None
        else u
        for u in config.upstreams
    ]
    tls = {
        name: directory / path
        for name in ("ca", "cert", "key")
        if (path := getattr(config.signoff, name)) is not None
    }
    signoff = config.signoff.model_copy(update=tls)
    return config.model_copy(update={"upstreams": upstreams, "signoff": signoff})


_TYPE_TAGS = {"str", "float", "function-after[_duration(), union[str,float]]"}


class _MissingVariable(ValueError):
    def __init__(self, name: str, loc: tuple[Any, ...]) -> None:
        super().__init__(f"${{{name}}} is not set in the environment")
        self.loc = loc


def _expand_env(value: Any, loc: tuple[Any, ...]) -> Any:
    """${VAR} in string values is replaced by the environment's value (tokens stay out of
    the file); an unset variable is an error rather than an empty secret."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise _MissingVariable(name, loc)
            return os.environ[name]

        return _ENV_RE.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, (*loc, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, (*loc, i)) for i, v in enumerate(value)]
    return value
