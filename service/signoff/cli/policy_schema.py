"""`signoff policy schema`: JSON Schemas of policy and test files for editors, kept fresh.

The schema is generated from the pydantic models the loader validates with, so it cannot
drift from what the server accepts. What pydantic cannot see (the regexes inside
`AfterValidator`s, the cross-field rules of `Rule._consistent`) is added here from the
same constants, with descriptions an editor shows on hover. One deliberate difference:
optional keys do not accept `null` here (the loader treats `reason: null` as absent), so
the editor never suggests a value nobody means to write.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

from signoff.policy import model
from signoff.policytest.model import CaseFile

DEFAULT_DIR = Path("schemas")
POLICY_SCHEMA = "policy.schema.json"
TEST_SCHEMA = "policy-test.schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"

ON_TIMEOUT_PATTERN = rf"^(deny|allow|escalate:{model.NAME_RE.pattern[1:-1]})$"
# The loader's duration regex also matches "", which it then refuses as zero.
DURATION_PATTERN = r"^(?=.)" + model.DURATION_RE.pattern[1:]

_FILE = {
    "name": (
        "Policy name, unique across the bundle: lower-case letters, digits, '_', '.', '-'.",
        {"pattern": model.NAME_RE.pattern, "examples": ["refunds"]},
    ),
    "description": ("What these rules are for; shown in GetBundle and `signoff policy check`.", {}),
    "actions": (
        "Globs on action.name this file applies to; '*' matches any characters, dots "
        "included ('refund.*' matches refund.issue and refund.card.issue). Omit to apply "
        "to every action.",
        {"items": {"type": "string", "pattern": model.GLOB_CHARS_RE.pattern}},
    ),
    "variables": (
        "Named CEL expressions, usable in this file's rules as vars.<name>; evaluated "
        "lazily, only when a rule reaches them.",
        {"propertyNames": {"pattern": model.VARIABLE_RE.pattern}},
    ),
    "rules": (
        "The rules. Every applicable rule is evaluated; deny beats review beats allow, and "
        "among equals the first in bundle order (files by path, rules in file order) wins.",
        {},
    ),
    "redact": (
        "Request fields never stored or shown, e.g. action.params.card_number: masked in "
        "the audit log, reviews, webhooks and exports; reason_expr and error texts see the "
        "masked value, `when` the real one. Not action.name, principal.id, "
        "principal.on_behalf_of or principal.claimed.on_behalf_of: separation of duties "
        "and the audit log need them.",
        {"items": {"type": "string", "pattern": model.REDACT_RE.pattern}},
    ),
    "params": (
        "Action schemas: an action glob -> the JSON Schema (subset: type, required, enum, "
        "minimum, maximum, minLength, maxLength, properties, items, additionalProperties) "
        "of its params. Requests that break it are refused; when the glob covers this "
        "file's actions, its rules' action.params paths are type-checked at load.",
        {
            "propertyNames": {"pattern": model.GLOB_CHARS_RE.pattern},
            "additionalProperties": {"type": "object"},
        },
    ),
}
_RULE = {
    "name": (
        "Rule name, unique within the file; it names the rule in decisions, errors and the "
        "audit log.",
        {"pattern": model.NAME_RE.pattern},
    ),
    "when": (
        "CEL boolean expression over action, principal, resource, context, now and "
        "vars.<name>; the rule matches when it is true. Type-checked when the bundle loads.",
        {"examples": ["vars.amount > 500.0", '"vip" in principal.tags']},
    ),
    "decision": ("What the rule asks for when it matches: allow, review or deny.", {}),
    "reason": ("Human-readable reason, a literal. Give exactly one of reason or reason_expr.", {}),
    "reason_expr": (
        "CEL expression yielding the reason as a string. Give exactly one of reason or "
        "reason_expr.",
        {"examples": ['"Refund of " + string(vars.amount) + " needs review"']},
    ),
    "reviewers": (
        "Reviewer group that must approve (required when decision is review).",
        {"pattern": model.NAME_RE.pattern},
    ),
    "approvals": ("Distinct approvers needed (review only).", {}),
    "grants": (
        "Whether an approving reviewer may grant a standing approval for more requests like "
        "this one (review only). Default: true when approvals is 1, false for 2 or more. "
        "A grant must bound what its reviewer saw (at least one bound, an upper bound on "
        "every number); 'unbounded' allows grants without those bounds.",
        {"examples": [True, False, "unbounded"]},
    ),
    "in_band": (
        "Who besides the reviewer group may settle the review (review only, approvals 1): "
        "'requester' is the person the agent acts for (the vouched on_behalf_of), who may "
        "approve or reject, never edit, e.g. from their MCP client (`signoff mcp-proxy`).",
        {"examples": ["requester"]},
    ),
    "timeout": (
        "How long the review may stay pending (review only): e.g. 45s, 30m, 2h, 1d, 1h30m. "
        "Default: the server's review_timeout.",
        {"pattern": DURATION_PATTERN, "examples": ["2h"]},
    ),
    "on_timeout": (
        "What a review that times out becomes (review only): deny (default), allow, or "
        "escalate:<group> to move it to another group with a new timeout.",
        {"pattern": ON_TIMEOUT_PATTERN, "examples": ["deny", "escalate:finance-leads"]},
    ),
    "on_error": (
        "When `when` fails to evaluate (missing field, wrong type): review (default) or deny "
        "makes the decision at least that severe; ignore treats the rule as not matched. "
        "The error is recorded either way.",
        {},
    ),
    "mode": (
        "enforce (default), or shadow: evaluated and logged as 'would have decided X' but "
        "never affects the decision, for rolling out new rules safely.",
        {},
    ),
}
# Rule._consistent as JSON Schema, so an editor flags it while typing.
_RULE_CONSISTENCY = [
    {"oneOf": [{"required": ["reason"]}, {"required": ["reason_expr"]}]},
    {
        "if": {"properties": {"decision": {"const": "review"}}, "required": ["decision"]},
        "then": {"required": ["reviewers"]},
        "else": {
            "properties": {k: False for k in ("reviewers", "approvals", "timeout", "on_timeout")}
        },
    },
]


_OPTIONAL = "Unset: not checked."
_CASE_FILE = {
    "cases": ("The test cases: each a request and the decision expected for it.", {}),
    "invariants": (
        "Properties of every request, proven by `signoff policy analyze` (and `policy "
        "test`) with a solver: each names one `never:` or `always:` property.",
        {},
    ),
    "default": (
        "The decision when no rule matches, as the server these policies ship to is "
        "configured (default: review by the group 'default', reason 'no policy matched').",
        {},
    ),
    "now": (
        "Evaluation time (RFC 3339 with a zone) for every case that does not set its own.",
        {"examples": ["2026-01-05T10:00:00Z"]},
    ),
}
_CASE = {
    "name": ("Unique within the file; says what the case shows.", {}),
    "request": (
        "An ActionRequest in YAML, with proto JSON field names: action {name, params}, "
        "principal {id, kind, roles, tags, on_behalf_of, attributes, claimed}, "
        "resource {kind, id, attributes}, context, justification.",
        {
            "properties": {
                k: {"description": d}
                for k, d in {
                    "request_id": "Idempotency key (not needed in tests).",
                    "action": "{name: dotted.verb, params: {...}}",
                    "principal": (
                        "{id, kind, roles, tags, on_behalf_of, attributes}: the facts, as the"
                        " server would vouch for them; claimed {kind, roles, tags,"
                        " on_behalf_of, attributes}: what an agent merely says"
                    ),
                    "resource": "{kind, id, attributes}",
                    "context": "Anything else: ticket ids, risk scores...",
                    "justification": "The agent's own words on why it wants to act.",
                }.items()
            },
            "required": ["action"],
        },
    ),
    "expect": ("The decision expected.", {}),
    "now": ("Evaluation time of this case (RFC 3339 with a zone).", {}),
}
_EXPECT = {
    "outcome": ("The expected outcome: allow, review or deny.", {}),
    "reviewer_group": ("The expected reviewer group (review outcomes). " + _OPTIONAL, {}),
    "rule": (
        'The expected deciding rule; "" means the default decision applied. ' + _OPTIONAL,
        {},
    ),
    "reason_contains": ("A substring the reason must contain. " + _OPTIONAL, {}),
    "shadow": ("Shadow rules that must match (would have decided).", {}),
}
_INVARIANT = {
    "name": ("Unique within the file; says what must hold.", {}),
    "never": ("No request selected by `when` may get this outcome (and group).", {}),
    "always": ("Every request selected by `when` must get this outcome (and group).", {}),
}
_PROPERTY = {
    "outcome": ("allow, review or deny.", {}),
    "reviewers": ("The reviewer group the outcome must have too. " + _OPTIONAL, {}),
    "when": (
        "CEL over the request (no vars.) selecting the requests the property is about; "
        "default: every request.",
        {"examples": ['action.name == "refund.issue" && double(action.params.amount) > 10000.0']},
    ),
}
_DEFAULT = {
    "decision": ("review or deny.", {}),
    "reviewer_group": ("Reviewer group of the default review.", {}),
    "reason": ("Reason of the default decision.", {}),
}


def add_parser(psub: Any) -> None:
    """Register `signoff policy schema` under the `policy` subcommands."""
    p = psub.add_parser("schema", help="write the JSON Schema of policy files (for editors)")
    p.add_argument(
        "--out", type=Path, default=DEFAULT_DIR, help="directory to write into (default schemas)"
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 naming each file that is missing or stale",
    )


def run(args: argparse.Namespace) -> int:
    """Entry point of `signoff policy schema`."""
    return run_schema(args.out, args.check)


def policy_schema() -> dict[str, Any]:
    """The JSON Schema of one policy file."""
    schema = model.PolicyFile.model_json_schema()
    rule = schema["$defs"]["Rule"]
    _describe(schema, _FILE)
    _describe(rule, _RULE)
    rule["allOf"] = _RULE_CONSISTENCY
    return _document(
        schema,
        "Signoff policy file",
        "One file of CEL rules that decide allow, review or deny for agent actions "
        "(policies/*.yaml, except *_test.yaml). Guide: docs/policies.md.",
    )


def case_file_schema() -> dict[str, Any]:
    """The JSON Schema of one `*_test.yaml` case file."""
    schema = CaseFile.model_json_schema()
    defs = schema["$defs"]
    _describe(schema, _CASE_FILE)
    _describe(defs["Case"], _CASE)
    _describe(defs["Expect"], _EXPECT)
    _describe(defs["DefaultSpec"], _DEFAULT)
    _describe(defs["Invariant"], _INVARIANT)
    _describe(defs["Property"], _PROPERTY)
    defs["Invariant"]["oneOf"] = [{"required": ["never"]}, {"required": ["always"]}]
    return _document(
        schema,
        "Signoff policy test file",
        "Test cases run by `signoff policy test`, and invariants proven by `signoff policy "
        "analyze` (policies/*_test.yaml).",
    )


def schemas() -> dict[str, dict[str, Any]]:
    """Every generated schema by file name."""
    return {POLICY_SCHEMA: policy_schema(), TEST_SCHEMA: case_file_schema()}


def _document(schema: dict[str, Any], title: str, description: str) -> dict[str, Any]:
    return {"$schema": DIALECT, **schema, "title": title, "description": description}


def render(schema: dict[str, Any]) -> str:
    """The committed text of a schema: stable key order, two-space indent, final newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def run_schema(out: Path, check: bool) -> int:
    """Write the schemas into `out`, or with `check` report stale ones and return 1."""
    stale = []
    for name, schema in schemas().items():
        path = out / name
        text = render(schema)
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        if check:
            stale.append(path)
            diff = difflib.unified_diff(
                (current or "").splitlines(keepends=True),
                text.splitlines(keepends=True),
                str(path),
                f"{path} (generated)",
                n=1,
            )
            sys.stderr.writelines(list(diff)[:40])
            continue
        out.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)  # never leave a half-written schema for editors to read
        print(f"wrote {path}")
    for path in stale:
        print(
            f"signoff: {path} is stale: run `signoff policy schema --out {out}` and commit it",
            file=sys.stderr,
        )
    return 1 if stale else 0


def _describe(schema: dict[str, Any], fields: dict[str, tuple[str, dict[str, Any]]]) -> None:
    props = schema["properties"]
    if set(props) != set(fields):
        # A new model field needs a description here before the schema can be regenerated.
        raise RuntimeError(f"policy schema: describe the fields {sorted(set(props) ^ set(fields))}")
    for key, (description, extra) in fields.items():
        prop = _without_null(props[key])
        prop.pop("title", None)  # "Reason Expr": the key itself says more
        prop["description"] = description
        for k, v in extra.items():
            if isinstance(v, dict) and isinstance(prop.get(k), dict):
                prop[k] = {**prop[k], **v}
            else:
                prop[k] = v
        props[key] = prop


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [X, null]` -> X, keeping the default unless it is null."""
    branches = prop.get("anyOf")
    if not branches:
        return dict(prop)
    kept = [b for b in branches if b.get("type") != "null"]
    out = {k: v for k, v in prop.items() if k != "anyOf"}
    if len(kept) == 1:
        out.update(kept[0])
    else:
        out["anyOf"] = kept
    if out.get("default", 0) is None:
        del out["default"]
    return out
