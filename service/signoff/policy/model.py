"""The schema of one policy file, as pydantic models (validation only, no CEL).

The loader validates the YAML data with `PolicyFile` and maps every pydantic error back to
a YAML position, so messages here name the field and say what is allowed.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

Decision = Literal["allow", "review", "deny"]
OnError = Literal["review", "deny", "ignore"]
Mode = Literal["enforce", "shadow"]

# Policy, rule and reviewer-group names: lower-case, start alphanumeric, no spaces, so they
# read well in `file:line:col: rule-name: message` and in reviewer queues.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
# Variable names become `vars.<name>` in CEL, so they must be CEL identifiers.
VARIABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Action names (see proto Action.name): segments of letters, digits, '_' and '-', joined by
# single dots. A glob is an action name in which `*` stands for any run of characters,
# dots included (`refund.*` matches `refund.issue` and `refund.card.issue`). Nothing else
# (`?`, `[...]`, spaces) is accepted: those characters can never appear in an action name.
ACTION_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
GLOB_CHARS_RE = re.compile(r"^[A-Za-z0-9_.*-]+$")
# Durations: one or more <int><unit> parts, largest unit first, e.g. 30m, 2h, 1d, 1h30m.
DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
REDACT_RE = re.compile(r"^(action|principal|resource|context)(\.[A-Za-z0-9_-]+)+$")
_RESERVED = {"in", "as", "break", "const", "continue", "else", "for", "function", "if"}
_RESERVED |= {"import", "let", "loop", "package", "namespace", "return", "var", "void"}
_RESERVED |= {"while", "true", "false", "null"}


def _name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError(
            f"invalid name {value!r}: use lower-case letters, digits, '_', '.', '-' "
            "(start with a letter or digit, at most 100 characters)"
        )
    return value


def _glob(value: str) -> str:
    if not GLOB_CHARS_RE.match(value) or not ACTION_RE.match(value.replace("*", "x")):
        raise ValueError(
            f"invalid action glob {value!r}: an action name (dot-separated segments of "
            "letters, digits, '_', '-') where '*' matches any characters, e.g. 'refund.*'"
        )
    return value


def parse_duration(value: str) -> dt.timedelta:
    """Parse `30m`, `2h`, `1d`, `1h30m`, `45s` into a positive timedelta."""
    match = DURATION_RE.match(value)
    if not value or not match:
        raise ValueError(f"invalid duration {value!r}: use e.g. 45s, 30m, 2h, 1d or 1h30m")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    delta = dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if delta <= dt.timedelta(0):
        raise ValueError(f"invalid duration {value!r}: must be longer than zero")
    return delta


def _on_timeout(value: str) -> str:
    if value in ("deny", "allow"):
        return value
    if value.startswith("escalate:") and NAME_RE.match(value.removeprefix("escalate:")):
        return value
    raise ValueError(f"invalid on_timeout {value!r}: use deny, allow or escalate:<group>")


# Who asked for what: kept in the audit log's indexed columns (actor, principal, action) and
# compared for separation of duties (a requester never reviews their own action). Masked,
# they would be stored anyway, and a masked requester would pass that check.
# The claimed on_behalf_of too: separation of duties counts it (reviews.requesters).
_UNREDACTABLE = (
    "action.name",
    "principal.id",
    "principal.on_behalf_of",
    "principal.claimed.on_behalf_of",
)


def _redact_path(value: str) -> str:
    if not REDACT_RE.match(value):
        raise ValueError(
            f"invalid redact path {value!r}: a dotted path under action., principal., "
            "resource. or context., e.g. action.params.card_number"
        )
    if value in _UNREDACTABLE:
        raise ValueError(
            f"redact path {value!r} cannot be masked: it names who asked for what, which the "
            "audit log records and separation of duties checks; redact params, attributes "
            "or context instead"
        )
    return value


def _variable_names(value: dict[str, str]) -> dict[str, str]:
    for name in value:
        if not VARIABLE_RE.match(name) or name in _RESERVED:
            raise ValueError(
                f"invalid variable name {name!r}: a CEL identifier (letters, digits, '_')"
            )
    return value


def _cel_text(value: str) -> str:
    if not value.strip():
        raise ValueError("empty expression")
    return value


Name = Annotated[StrictStr, AfterValidator(_name)]
Glob = Annotated[StrictStr, AfterValidator(_glob)]
CelText = Annotated[StrictStr, AfterValidator(_cel_text)]
Duration = Annotated[StrictStr, AfterValidator(parse_duration)]


def _field_error(field: str, message: str) -> PydanticCustomError:
    # The loader reads ctx["field"] to point at that key's YAML position, not the rule's.
    return PydanticCustomError("rule_field", "{field}: " + message, {"field": field})


class Rule(BaseModel):
    """One rule: a CEL `when` and the decision it asks for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    when: CelText
    decision: Decision
    reason: StrictStr | None = None
    reason_expr: CelText | None = None
    reviewers: Name | None = None
    approvals: Annotated[StrictInt, Field(ge=1, le=100)] = 1
    timeout: Duration | None = None
    on_timeout: Annotated[StrictStr, AfterValidator(_on_timeout)] | None = None
    on_error: OnError = "review"
    mode: Mode = "enforce"
    # Standing approvals (a reviewer's "allow more like this"): None means the default, see
    # `allows_grants`; "unbounded" allows them without the bounds a grant otherwise needs.
    grants: StrictBool | Literal["unbounded"] | None = None
    # Who besides the reviewer group may settle the review from their MCP client (in band):
    # "requester" is the person the agent acts for (the vouched on_behalf_of).
    in_band: Literal["requester"] | None = None

    @field_validator("grants", mode="wrap")
    @classmethod
    def _grants_value(cls, value: object, handler: ValidatorFunctionWrapHandler) -> object:
        # One message for the union, not one per member it failed.
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError(
                "grants", "must be true, false or unbounded, not {value}", {"value": repr(value)}
            ) from None

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if (self.reason is None) == (self.reason_expr is None):
            field = "reason_expr" if self.reason_expr is not None else "reason"
            raise _field_error(field, "give exactly one of reason (text) or reason_expr (CEL)")
        if self.decision == "review" and self.reviewers is None:
            raise _field_error("reviewers", "required when decision is review")
        if self.decision != "review":
            for field in ("reviewers", "timeout", "on_timeout", "grants", "in_band"):
                if getattr(self, field) is not None:
                    raise _field_error(field, "only allowed when decision is review")
            if "approvals" in self.model_fields_set:
                raise _field_error("approvals", "only allowed when decision is review")
        if self.in_band is not None and self.approvals > 1:
            # A two-person rule wants a second pair of eyes: the requester alone settling
            # it in band would undo that.
            raise _field_error(
                "in_band",
                f"not allowed with approvals: {self.approvals} (the requester alone would "
                "settle a rule that asks for several reviewers)",
            )
        return self

    @property
    def effective_on_timeout(self) -> str:
        """What happens when the review times out (default deny)."""
        return self.on_timeout or "deny"

    @property
    def allows_grants(self) -> bool:
        """Whether reviewers may grant standing approvals (default: only for one approval)."""
        # A rule asking for two or more approvals wants several people to look every time;
        # one reviewer's standing approval would quietly undo that, so it needs an explicit yes.
        if self.grants is None:
            return self.approvals == 1
        return self.grants is not False

    @property
    def allows_unbounded_grants(self) -> bool:
        """Whether a grant may leave params unbounded (`grants: unbounded`, said explicitly)."""
        return self.grants == "unbounded"


class PolicyFile(BaseModel):
    """One policy file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    description: StrictStr = ""
    actions: Annotated[list[Glob], Field(min_length=1)] | None = None
    variables: Annotated[dict[StrictStr, CelText], AfterValidator(_variable_names)] = Field(
        default_factory=dict
    )
    rules: list[Rule]
    redact: list[Annotated[StrictStr, AfterValidator(_redact_path)]] = Field(default_factory=list)
    # Action glob -> JSON Schema subset of its params (checked by the loader: params.py).
    params: dict[Glob, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_rules(self) -> PolicyFile:
        seen: set[str] = set()
        for index, rule in enumerate(self.rules):
            if rule.name in seen:
                raise PydanticCustomError(
                    "duplicate_rule",
                    "duplicate rule name '{name}': rule names are unique within a file",
                    {"name": rule.name, "index": index},
                )
            seen.add(rule.name)
        return self
