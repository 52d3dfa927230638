"""The committed JSON Schemas: fresh, and they accept the example files and refuse bad ones.

`jsonschema` is not a dependency, so `_errors` implements the keywords the generated
schemas use (and fails loudly on any other, so a new keyword cannot be silently ignored).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from signoff.cli.policy_schema import (
    POLICY_SCHEMA,
    TEST_SCHEMA,
    render,
    run_schema,
    schemas,
)
from signoff.policy.model import PolicyFile

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
POLICIES = REPO / "policies"
_ANNOTATIONS = {"title", "description", "default", "examples", "$schema", "$defs", "format"}
_KEYWORDS = {"$ref", "type", "enum", "const", "pattern", "minLength", "maxLength", "minItems"}
_KEYWORDS |= {"minimum", "maximum", "required", "properties", "additionalProperties"}
_KEYWORDS |= {"propertyNames", "items", "allOf", "anyOf", "oneOf", "if", "then", "else"}
_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _errors(schema: Any, value: Any, root: dict[str, Any], at: str = "$") -> list[str]:
    """Every violation of `schema` by `value`, as 'path: problem'."""
    if schema is True:
        return []
    if schema is False:
        return [f"{at}: not allowed"]
    unknown = set(schema) - _ANNOTATIONS - _KEYWORDS
    assert not unknown, f"the test's validator does not know {unknown}"
    out: list[str] = []
    for key, want in schema.items():
        if key in _ANNOTATIONS:
            continue
        if key == "$ref":
            target = root
            for part in want.removeprefix("#/").split("/"):
                target = target[part]
            out += _errors(target, value, root, at)
        elif key == "type":
            if want == "integer":
                ok = isinstance(value, int) and not isinstance(value, bool)
            else:
                ok = isinstance(value, _TYPES[want]) and not (
                    want != "boolean" and isinstance(value, bool)
                )
            if not ok:
                return [f"{at}: expected {want}, got {type(value).__name__}"]
        elif key == "enum" and value not in want:
            out.append(f"{at}: {value!r} not one of {want}")
        elif key == "const" and value != want:
            out.append(f"{at}: expected {want!r}")
        elif key == "pattern" and isinstance(value, str) and not re.search(want, value):
            out.append(f"{at}: {value!r} does not match {want}")
        elif key in ("minLength", "maxLength", "minItems") and isinstance(value, str | list):
            if (len(value) < want) if key != "maxLength" else (len(value) > want):
                out.append(f"{at}: {key} {want}")
        elif key in ("minimum", "maximum") and isinstance(value, int):
            if (value < want) if key == "minimum" else (value > want):
                out.append(f"{at}: {key} {want}")
        elif key == "required" and isinstance(value, dict):
            out += [f"{at}: missing {k}" for k in want if k not in value]
        elif key == "properties" and isinstance(value, dict):
            for k, sub in want.items():
                if k in value:
                    out += _errors(sub, value[k], root, f"{at}.{k}")
        elif key == "additionalProperties" and isinstance(value, dict):
            for k, v in value.items():
                if k not in schema.get("properties", {}):
                    out += _errors(want, v, root, f"{at}.{k}")
        elif key == "propertyNames" and isinstance(value, dict):
            for k in value:
                out += _errors(want, k, root, f"{at}[{k!r}]")
        elif key == "items" and isinstance(value, list):
            for i, v in enumerate(value):
                out += _errors(want, v, root, f"{at}[{i}]")
        elif key == "allOf":
            for sub in want:
                out += _errors(sub, value, root, at)
        elif key == "anyOf":
            if all(_errors(sub, value, root, at) for sub in want):
                out.append(f"{at}: matches none of anyOf")
        elif key == "oneOf":
            matching = sum(not _errors(sub, value, root, at) for sub in want)
            if matching != 1:
                out.append(f"{at}: matches {matching} of oneOf, not exactly 1")
        elif key == "if":
            branch = "then" if not _errors(want, value, root, at) else "else"
            if branch in schema:
                out += _errors(schema[branch], value, root, at)
    return out


def _yaml(path: Path) -> Any:
    # An editor sees timestamps as text; so does the schema.
    data = yaml.safe_load(path.read_text())
    return json.loads(json.dumps(data, default=lambda v: v.isoformat()))


def _committed(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text())


def test_committed_schemas_are_fresh():
    for name, schema in schemas().items():
        assert (SCHEMAS / name).read_text() == render(schema), (
            f"schemas/{name} is stale: run `signoff policy schema` and commit it"
        )


def test_check_names_a_stale_file_and_exits_1(tmp_path, capsys):
    assert run_schema(tmp_path, check=False) == 0
    assert run_schema(tmp_path, check=True) == 0
    (tmp_path / POLICY_SCHEMA).write_text("{}\n")
    assert run_schema(tmp_path, check=True) == 1
    assert f"{tmp_path / POLICY_SCHEMA} is stale" in capsys.readouterr().err
    assert (tmp_path / POLICY_SCHEMA).read_text() == "{}\n"  # --check writes nothing


def test_every_field_has_a_description():
    for name in (POLICY_SCHEMA, TEST_SCHEMA):
        schema = _committed(name)
        for obj in [schema, *schema["$defs"].values()]:
            for key, prop in obj["properties"].items():
                assert prop.get("description"), f"{name}: {key} has no description"


@pytest.mark.parametrize(
    "path", sorted(p for p in POLICIES.glob("*.yaml") if not p.name.endswith("_test.yaml"))
)
def test_example_policies_validate(path):
    schema = _committed(POLICY_SCHEMA)
    assert _errors(schema, _yaml(path), schema) == []


@pytest.mark.parametrize("path", sorted(POLICIES.glob("*_test.yaml")))
def test_example_test_files_validate(path):
    schema = _committed(TEST_SCHEMA)
    assert _errors(schema, _yaml(path), schema) == []


GOOD_RULE = {"name": "r", "when": "true", "decision": "allow", "reason": "ok"}
REVIEW_RULE = {"name": "r", "when": "true", "decision": "review", "reviewers": "g", "reason": "x"}


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({**GOOD_RULE, "decison": "allow"}, "decison"),  # a typo in a key
        ({**GOOD_RULE, "decision": "maybe"}, "not one of"),
        ({**GOOD_RULE, "reason_expr": '"x"'}, "oneOf"),  # both reasons
        ({k: v for k, v in GOOD_RULE.items() if k != "reason"}, "oneOf"),  # neither
        ({**GOOD_RULE, "reviewers": "g"}, "reviewers: not allowed"),
        ({**REVIEW_RULE, "reviewers": "Finance Team"}, "does not match"),
        ({k: v for k, v in REVIEW_RULE.items() if k != "reviewers"}, "missing reviewers"),
        ({**REVIEW_RULE, "timeout": "2 hours"}, "does not match"),
        ({**REVIEW_RULE, "timeout": ""}, "does not match"),
        ({**REVIEW_RULE, "on_timeout": "escalate:"}, "does not match"),
        ({**REVIEW_RULE, "approvals": 0}, "minimum"),
        ({**GOOD_RULE, "mode": "dry-run"}, "not one of"),
    ],
)
def test_schema_refuses_what_the_loader_refuses(rule, problem):
    schema = _committed(POLICY_SCHEMA)
    policy = {"name": "p", "rules": [rule]}
    errors = _errors(schema, policy, schema)
    assert any(problem in e for e in errors), errors
    with pytest.raises(ValidationError):  # the loader's model agrees
        PolicyFile.model_validate(policy)


def test_schema_accepts_what_the_loader_accepts():
    schema = _committed(POLICY_SCHEMA)
    policy = {
        "name": "p",
        "actions": ["refund.*"],
        "variables": {"amount": "double(action.params.amount)"},
        "rules": [
            GOOD_RULE,
            {**REVIEW_RULE, "name": "s", "timeout": "1h30m", "on_timeout": "escalate:leads"},
        ],
        "redact": ["action.params.card_number"],
    }
    PolicyFile.model_validate(policy)
    assert _errors(schema, policy, schema) == []
