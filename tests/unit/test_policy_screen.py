"""What a rule reads (policy/reads.py, from the CEL AST) and when an action is denied
whatever its params (policy/screen.py): only by a rule that reads nothing a call changes."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from signoff import pb
from signoff.policy import cel, load_bundle
from signoff.policy.reads import reads
from signoff.policy.screen import denied_regardless

NOW = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
VARYING = ("context.mcp.session_id", "context.mcp.client")


@pytest.mark.parametrize(
    ("expr", "paths"),
    [
        ("action.params.amount > 5.0", {("action", "params", "amount")}),
        ("action.name == 'x'", {("action", "name")}),
        # has() is a read; an index by a constant string is a selection.
        (
            'has(context.mcp.annotations.readOnlyHint) && context["mcp"]["tool"] == "x"',
            {("context", "mcp", "annotations", "readOnlyHint"), ("context", "mcp", "tool")},
        ),
        # A path ends where constant selection ends: all of it is read.
        ("size(context) > 0", {("context",)}),
        (
            "principal.attributes[action.name] == 1",
            {("principal", "attributes"), ("action", "name")},
        ),
        ("now > timestamp('2020-01-01T00:00:00Z')", {("now",)}),
        # A comprehension variable named like a request variable is not the request's.
        (
            "principal.roles.exists(r, r == 'x') && [1].exists(action, action == 1)",
            {("principal", "roles")},
        ),
        ("action.params.items.map(i, i.x).size() > 1", {("action", "params", "items")}),
        ("{'a': resource.id}.a == 'x'", {("resource", "id")}),
        ("true", set()),
    ],
)
def test_reads_names_every_request_path_an_expression_selects(expr, paths):
    assert reads(cel.compile(expr)) == paths


POLICY = """\
name: screen
actions: ["tool.*"]
variables:
  destructive: >-
    has(context.hints) && has(context.hints.destructive) && context.hints.destructive == true
rules:
  - name: by-name
    when: action.name == "tool.wipe"
    decision: deny
    reason: never wiped by an agent
  - name: by-hint
    when: vars.destructive
    decision: deny
    reason_expr: '"the hint denies " + action.name'
  - name: by-params
    when: action.name == "tool.peek" && action.params.path == "/etc"
    decision: deny
    reason: not /etc
  - name: by-params-whatever
    when: action.name == "tool.poke" || action.params.x == 1
    decision: deny
    reason: poke
  - name: by-session
    when: action.name == "tool.session" && context.mcp.session_id != ""
    decision: deny
    reason: sessions
  - name: by-time
    when: action.name == "tool.late" && now > timestamp("2000-01-01T00:00:00Z")
    decision: deny
    reason: late
  - name: by-role
    when: action.name == "tool.admin" && !("admin" in principal.roles)
    decision: deny
    reason_expr: '"needs admin, has " + string(action.params.x)'
  - name: shadowed
    when: action.name == "tool.shadow"
    decision: deny
    reason: shadow only
    mode: shadow
  - name: failing
    when: action.name == "tool.fail" && context.missing.key == 1
    decision: review
    reviewers: ops
    on_error: deny
    reason: fails
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root: Path = tmp_path_factory.mktemp("policies")
    (root / "screen.yaml").write_text(textwrap.dedent(POLICY))
    return load_bundle(root)


def screened(bundle, action: str, roles=(), context=None):
    req = pb.common.ActionRequest()
    req.action.name = action
    req.principal.id = "bot"
    req.principal.roles.extend(roles)
    req.context.update(context or {"mcp": {"tool": action}})
    return denied_regardless(bundle, req, VARYING, NOW)


@pytest.mark.parametrize(
    ("action", "rule", "reason"),
    [
        ("tool.wipe", "by-name", "never wiped by an agent"),
        ("tool.admin", "by-role", "rule by-role denies it whatever its arguments"),
        ("tool.fail", "failing", "rule failing fails to evaluate for it; on_error: deny"),
    ],
)
def test_a_rule_that_reads_only_what_the_screen_pins_denies_whatever(bundle, action, rule, reason):
    found = screened(bundle, action)
    assert found is not None
    assert (found.rule.name, found.reason) == (rule, reason)
    assert found.where == f"rule {rule} (screen.yaml:{found.rule.line})"


def test_a_hint_in_the_pinned_context_denies_and_its_reason_is_told(bundle):
    found = screened(bundle, "tool.any", context={"hints": {"destructive": True}})
    assert found is not None
    assert found.reason == "the hint denies tool.any"
    assert screened(bundle, "tool.any", context={"hints": {"destructive": False}}) is None


@pytest.mark.parametrize(
    "action",
    [
        "tool.peek",  # denied for some params only
        "tool.poke",  # true whatever the params, but it reads them: could go either way
        "tool.session",  # reads a varying context path
        "tool.late",  # reads now
        "tool.shadow",  # never decides
        "tool.other",  # nothing matches: the default never hides
    ],
)
def test_a_rule_that_reads_params_session_or_time_never_denies_whatever(bundle, action):
    assert screened(bundle, action) is None


def test_the_principal_is_pinned(bundle):
    assert screened(bundle, "tool.admin", roles=["admin"]) is None
    assert screened(bundle, "tool.admin", roles=["agent"]) is not None


def test_params_sent_anyway_are_not_read(bundle):
    req = pb.common.ActionRequest()
    req.action.name = "tool.peek"
    req.action.params.update({"path": "/etc"})
    assert denied_regardless(bundle, req, VARYING, NOW) is None
