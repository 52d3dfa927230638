"""The schema of a `*_test.yaml` case file, as pydantic models (validation only).

The loader validates the YAML data with `CaseFile` and maps every pydantic error back to a
YAML position, so a misspelled key (`expect.outcom`) is reported where it was written.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictStr, model_validator

Decision = Literal["allow", "review", "deny"]


class _Strict(BaseModel):
    # Unknown keys are errors: a typo must not turn an expectation into a silent no-op.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expect(_Strict):
    """What the decision must be; unset optional fields are not checked."""

    outcome: Decision
    reviewer_group: StrictStr | None = None
    # "" means: no rule decided, the default decision applied.
    rule: StrictStr | None = None
    reason_contains: StrictStr | None = None
    shadow: list[StrictStr] = Field(default_factory=list)


class Case(_Strict):
    """One request and the decision expected for it."""

    name: StrictStr = Field(min_length=1)
    # Validated later against the proto (json_format) and signoff.core.validate, which know more.
    request: dict[str, Any]
    expect: Expect
    now: AwareDatetime | None = None


class DefaultSpec(_Strict):
    """The decision when no rule matches, as the server under test is configured."""

    decision: Literal["review", "deny"] = "review"
    reviewer_group: StrictStr = Field("default", min_length=1)
    reason: StrictStr = "no policy matched"


class Property(_Strict):
    """What an invariant says of the requests `when` selects (the whole `when`: all of them)."""

    outcome: Decision
    reviewers: StrictStr | None = None
    when: StrictStr = Field("true", min_length=1)


class Invariant(_Strict):
    """A property of every request, proven by `policy analyze`: exactly one of never/always."""

    name: StrictStr = Field(min_length=1)
    never: Property | None = None
    always: Property | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Invariant:
        if (self.never is None) == (self.always is None):
            raise ValueError("give exactly one of never: or always:")
        return self

    @property
    def kind(self) -> Literal["never", "always"]:
        """Whether the property must never or always hold."""
        return "never" if self.never is not None else "always"

    @property
    def property(self) -> Property:
        """The property itself."""
        spec = self.never or self.always
        assert spec is not None  # _one_kind
        return spec


class CaseFile(_Strict):
    """A whole `*_test.yaml` file."""

    # Required (a file of invariants only says `cases: []`), so `case:` is reported as a typo.
    cases: list[Case]
    invariants: list[Invariant] = Field(default_factory=list)
    default: DefaultSpec | None = None
    # A fixed evaluation time for every case of the file that does not set its own.
    now: AwareDatetime | None = None
