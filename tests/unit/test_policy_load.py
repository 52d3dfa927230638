"""Loading a policy directory: every bad input has its exact file:line:column and message."""

from __future__ import annotations

import datetime as dt
import subprocess
import textwrap
from pathlib import Path

import pytest

from signoff.policy import BundleError, load_bundle

GOOD = """\
name: refunds
actions: ["refund.*"]
variables:
  amount: double(action.params.amount)
rules:
  - name: large
    when: vars.amount > 500
    decision: review
    reviewers: finance
    reason: big
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def errors_of(root: Path, files: dict[str, str]) -> list[str]:
    with pytest.raises(BundleError) as info:
        load_bundle(write(root, files))
    return [str(e) for e in info.value.errors]


def rule(body: str, variables: str = "") -> str:
    """A policy file whose one rule `r` is `body` (from line 4 when there are no variables)."""
    head = "name: p\nvariables:\n" + variables if variables else "name: p\n"
    return head + "rules:\n  - name: r\n" + textwrap.indent(textwrap.dedent(body), "    ")


def test_good_bundle_loads(tmp_path):
    bundle = load_bundle(write(tmp_path, {"refunds.yaml": GOOD}))
    assert bundle.files == ("refunds.yaml",)
    assert bundle.rule_count == 1
    assert bundle.actions == ("refund.*",)
    policy = bundle.policies[0]
    assert (policy.rules[0].name, policy.rules[0].line, policy.rules[0].when) == (
        "large",
        6,
        "vars.amount > 500",
    )
    assert policy.variables[0].name == "amount"
    assert bundle.version.startswith("sha256:")
    assert not bundle.warnings


@pytest.mark.parametrize(
    ("extra", "allowed"),
    [
        ("", True),  # one approval: grants allowed by default
        ("approvals: 2\n", False),  # two or more: forbidden unless said otherwise
        ("approvals: 2\ngrants: true\n", True),
        ("grants: false\n", False),
        ("grants: unbounded\n", True),
        ("approvals: 2\ngrants: unbounded\n", True),  # an explicit yes, like true
    ],
)
def test_rule_grants_default_and_override(tmp_path, extra, allowed):
    body = "when: 'true'\ndecision: review\nreviewers: f\nreason: x\n" + extra
    bundle = load_bundle(write(tmp_path, {"p.yaml": rule(body)}))
    compiled = bundle.policies[0].rules[0]
    assert compiled.grants is allowed
    # Bound-less grants only when the rule says so in words.
    assert compiled.unbounded_grants is ("unbounded" in extra)


@pytest.mark.parametrize(("extra", "in_band"), [("", ""), ("in_band: requester\n", "requester")])
def test_rule_in_band_loads(tmp_path, extra, in_band):
    body = "when: 'true'\ndecision: review\nreviewers: f\nreason: x\napprovals: 1\n" + extra
    bundle = load_bundle(write(tmp_path, {"p.yaml": rule(body)}))
    assert bundle.policies[0].rules[0].in_band == in_band


# Each case: the file text, then the exact error lines (file:line:column: rule: message).
BAD = {
    "malformed yaml": (
        "name: p\nrules: [\n",
        ["p.yaml:3:1: invalid YAML: "],  # libyaml or PyYAML wording,
    ),
    "not a mapping": ("- a\n- b\n", ["p.yaml:1:1: a policy file is a YAML mapping"]),
    "empty file": ("", ["p.yaml:1:1: empty file"]),
    "unknown top-level key": (
        "name: p\nrules: []\nrulez: []\n",
        ["p.yaml:3:1: unknown key 'rulez'"],
    ),
    "missing rules": ("name: p\n", ["p.yaml:1:1: missing required key 'rules'"]),
    "bad policy name": ("name: Bad Name\nrules: []\n", ["p.yaml:1:7: name: invalid name"]),
    "duplicate key": ("name: p\nname: q\nrules: []\n", ["p.yaml:2:1: duplicate key 'name'"]),
    "unknown rule key": (
        rule("when: 'true'\ndecision: allow\nreason: x\nwhen_not: x\n"),
        ["p.yaml:7:5: r: unknown key 'when_not'"],
    ),
    "missing when": (
        rule("decision: allow\nreason: x\n"),
        ["p.yaml:3:5: r: missing required key 'when'"],
    ),
    "bad decision": (
        rule("when: 'true'\ndecision: maybe\nreason: x\n"),
        ["p.yaml:5:15: r: decision: Input should be 'allow', 'review' or 'deny'"],
    ),
    "bad duration": (
        rule("when: 'true'\ndecision: review\nreviewers: f\nreason: x\ntimeout: 3x\n"),
        ["p.yaml:8:14: r: timeout: invalid duration '3x'"],
    ),
    "zero duration": (
        rule("when: 'true'\ndecision: review\nreviewers: f\nreason: x\ntimeout: 0m\n"),
        ["p.yaml:8:14: r: timeout: invalid duration '0m': must be longer than zero"],
    ),
    "reviewers missing on review": (
        rule("when: 'true'\ndecision: review\nreason: x\n"),
        ["p.yaml:3:5: r: reviewers: required when decision is review"],
    ),
    "reviewers on allow": (
        rule("when: 'true'\ndecision: allow\nreviewers: f\nreason: x\n"),
        ["p.yaml:6:16: r: reviewers: only allowed when decision is review"],
    ),
    "reason and reason_expr": (
        rule("when: 'true'\ndecision: allow\nreason: x\nreason_expr: '\"y\"'\n"),
        ["p.yaml:7:18: r: reason_expr: give exactly one of reason"],
    ),
    "no reason": (
        rule("when: 'true'\ndecision: allow\n"),
        ["p.yaml:3:5: r: reason: give exactly one of reason"],
    ),
    "approvals zero": (
        rule("when: 'true'\ndecision: review\nreviewers: f\nreason: x\napprovals: 0\n"),
        ["p.yaml:8:16: r: approvals: Input should be greater than or equal to 1"],
    ),
    "in_band on allow": (
        rule("when: 'true'\ndecision: allow\nreason: x\nin_band: requester\n"),
        ["p.yaml:7:14: r: in_band: only allowed when decision is review"],
    ),
    "in_band on deny": (
        rule("when: 'true'\ndecision: deny\nreason: x\nin_band: requester\n"),
        ["p.yaml:7:14: r: in_band: only allowed when decision is review"],
    ),
    "in_band with two approvals": (
        rule(
            "when: 'true'\ndecision: review\nreviewers: f\nreason: x\n"
            "approvals: 2\nin_band: requester\n"
        ),
        ["p.yaml:9:14: r: in_band: not allowed with approvals: 2"],
    ),
    "in_band unknown value": (
        rule("when: 'true'\ndecision: review\nreviewers: f\nreason: x\nin_band: agent\n"),
        ["p.yaml:8:14: r: in_band: Input should be 'requester'"],
    ),
    "grants on allow": (
        rule("when: 'true'\ndecision: allow\nreason: x\ngrants: false\n"),
        ["p.yaml:7:13: r: grants: only allowed when decision is review"],
    ),
    "grants not a bool": (
        rule("when: 'true'\ndecision: review\nreviewers: f\nreason: x\ngrants: 'yes'\n"),
        ["p.yaml:8:13: r: grants: must be true, false or unbounded, not 'yes'"],
    ),
    "bad on_timeout": (
        rule("when: 'true'\ndecision: review\nreviewers: f\nreason: x\non_timeout: later\n"),
        ["p.yaml:8:17: r: on_timeout: invalid on_timeout 'later'"],
    ),
    "bad on_error": (
        rule("when: 'true'\ndecision: allow\nreason: x\non_error: panic\n"),
        ["p.yaml:7:15: r: on_error: Input should be 'review', 'deny' or 'ignore'"],
    ),
    "bad mode": (
        rule("when: 'true'\ndecision: allow\nreason: x\nmode: dry\n"),
        ["p.yaml:7:11: r: mode: Input should be 'enforce' or 'shadow'"],
    ),
    "duplicate rule names": (
        "name: p\nrules:\n"
        "  - {name: r, when: 'true', decision: allow, reason: x}\n"
        "  - {name: r, when: 'true', decision: allow, reason: x}\n",
        ["p.yaml:4:12: r: duplicate rule name 'r'"],
    ),
    "glob with a space": (
        "name: p\nactions: ['refund issue']\nrules: []\n",
        ["p.yaml:2:11: actions[0]: invalid action glob 'refund issue'"],
    ),
    "glob with a question mark": (
        "name: p\nactions: ['refund.?']\nrules: []\n",
        ["p.yaml:2:11: actions[0]: invalid action glob 'refund.?'"],
    ),
    "glob with an empty segment": (
        "name: p\nactions: ['refund..*']\nrules: []\n",
        ["p.yaml:2:11: actions[0]: invalid action glob 'refund..*'"],
    ),
    "empty actions": (
        "name: p\nactions: []\nrules: []\n",
        ["p.yaml:2:10: actions: List should have at least 1 item"],
    ),
    "bad redact path": (
        "name: p\nrules: []\nredact: [params.card]\n",
        ["p.yaml:3:10: redact[0]: invalid redact path 'params.card'"],
    ),
    "redacting who asked": (
        "name: p\nrules: []\nredact: [action.params.x, principal.on_behalf_of]\n",
        ["p.yaml:3:27: redact[1]: redact path 'principal.on_behalf_of' cannot be masked"],
    ),
    "redacting the requester": (
        "name: p\nrules: []\nredact: [principal.id]\n",
        ["p.yaml:3:10: redact[0]: redact path 'principal.id' cannot be masked"],
    ),
    "redacting whom the agent claims to act for": (
        "name: p\nrules: []\nredact: [principal.claimed.on_behalf_of]\n",
        ["p.yaml:3:10: redact[0]: redact path 'principal.claimed.on_behalf_of' cannot be masked"],
    ),
    "redacting the action name": (
        "name: p\nrules: []\nredact: [action.name]\n",
        ["p.yaml:3:10: redact[0]: redact path 'action.name' cannot be masked"],
    ),
    "cel syntax error in a plain scalar": (
        rule("when: action.name ==\ndecision: allow\nreason: x\n"),
        ["p.yaml:4:25: r: when: Syntax error"],
    ),
    "cel unknown identifier": (
        rule("when: amount > 1\ndecision: allow\nreason: x\n"),
        ["p.yaml:4:11: r: when: undeclared reference to 'amount'"],
    ),
    "cel unknown field": (
        rule("when: action.nme == 'x'\ndecision: allow\nreason: x\n"),
        ["p.yaml:4:17: r: when: undefined field 'nme'"],
    ),
    "cel type error: string when": (
        rule('when: action.params.amount + "x"\ndecision: allow\nreason: x\n'),
        ["p.yaml:4:11: r: when: must be a bool expression, this one is string"],
    ),
    "cel type error: int reason_expr": (
        rule("when: 'true'\ndecision: allow\nreason_expr: 1 + 2\n"),
        ["p.yaml:6:18: r: reason_expr: must be a string expression, this one is int"],
    ),
    "cel type error: no overload": (
        rule("when: action.name > 1\ndecision: allow\nreason: x\n"),
        ["p.yaml:4:23: r: when: found no matching overload for '_>_'"],
    ),
    "cel error in a single-quoted scalar": (
        rule("when: 'action.name == foo'\ndecision: allow\nreason: x\n"),
        ["p.yaml:4:27: r: when: undeclared reference to 'foo'"],
    ),
    "cel error in a literal block": (
        rule("when: |\n  action.name == 'x' &&\n    foo\ndecision: allow\nreason: x\n"),
        ["p.yaml:6:9: r: when: undeclared reference to 'foo'"],
    ),
    "cel error in a double-quoted scalar with escapes: scalar start": (
        rule('when: "\\u0061ction.name == foo"\ndecision: allow\nreason: x\n'),
        ["p.yaml:4:11: r: when: undeclared reference to 'foo'"],
    ),
    "missing variable": (
        rule("when: vars.nope > 1\ndecision: allow\nreason: x\n", "  a: '1'\n"),
        ["p.yaml:6:11: r: when: unknown variable 'vars.nope' (defined: a)"],
    ),
    "vars used without a name": (
        rule("when: size(vars) > 1\ndecision: allow\nreason: x\n", "  a: '1'\n"),
        ["p.yaml:6:16: r: when: use a variable as vars.<name>"],
    ),
    "variable cycle": (
        rule("when: vars.a > 1\ndecision: allow\nreason: x\n", "  a: vars.b\n  b: vars.a + 1\n"),
        ["p.yaml:4:6: variables.b: variable cycle: a -> b -> a"],
    ),
    "variable with its own error": (
        rule("when: vars.a > 1\ndecision: allow\nreason: x\n", "  a: action.nme\n"),
        ["p.yaml:3:12: variables.a: undefined field 'nme'"],
    ),
    "type error through a variable points into the rule": (
        rule("when: vars.a + 'x' == 'y'\ndecision: allow\nreason: x\n", "  a: '1'\n"),
        ["p.yaml:6:18: r: when: found no matching overload for '_+_'"],
    ),
    "exponential variable expansion": (
        rule(
            "when: size(vars.v9) > 0\ndecision: allow\nreason: x\n",
            "  v0: '\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"'\n"
            + "".join(
                f"  v{i + 1}: vars.v{i} + vars.v{i} + vars.v{i} + vars.v{i}\n" for i in range(9)
            ),
        ),
        # 76453 as written, plus the pair of parentheses that inline it (cel.enclosed).
        ["p.yaml:8:7: variables.v5: expands to 76455 characters with its variables inlined"],
    ),
    "yaml boolean where a name belongs": (
        "name: p\nrules:\n  - {name: no, when: 'true', decision: allow, reason: x}\n",
        ["p.yaml:3:12: rules[0]: name: Input should be a valid string (YAML reads yes/no"],
    ),
    "schema and cel errors are reported together": (
        "name: p\nrules:\n"
        "  - {name: a, when: 'true', decision: maybe, reason: x}\n"
        "  - {name: b, when: 'nope', decision: allow, reason: x}\n",
        [
            "p.yaml:3:39: a: decision: Input should be",
            "p.yaml:4:22: b: when: undeclared reference to 'nope'",
        ],
    ),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_policy_file(tmp_path, case):
    text, expected = BAD[case]
    errors = errors_of(tmp_path, {"p.yaml": text})
    assert len(errors) == len(expected), errors
    for error, prefix in zip(errors, expected, strict=True):
        assert error.startswith(prefix), (error, prefix)


def test_duplicate_policy_names_name_both_files(tmp_path):
    errors = errors_of(tmp_path, {"a.yaml": GOOD, "sub/b.yml": GOOD})
    assert errors == [
        "sub/b.yml:1:7: duplicate policy name 'refunds': also defined in a.yaml",
    ]


def test_errors_from_every_file_are_collected(tmp_path):
    errors = errors_of(tmp_path, {"a.yaml": "name: a\n", "b.yaml": "- x\n"})
    assert [e.split(":")[0] for e in errors] == ["a.yaml", "b.yaml"]


def test_nonexistent_directory_is_an_error(tmp_path):
    with pytest.raises(BundleError) as info:
        load_bundle(tmp_path / "nope")
    assert str(info.value.errors[0]).endswith("nope: no such policy directory")


def test_empty_directory_is_an_empty_bundle_with_a_warning(tmp_path):
    bundle = load_bundle(write(tmp_path, {"cases_test.yaml": "cases: []\n", "README.md": "x"}))
    assert bundle.policies == ()
    assert "no policy files" in bundle.warnings[0]
    assert bundle.policies_for("refund.issue") == ()


def test_files_load_at_any_depth_in_path_order_skipping_tests_and_hidden(tmp_path):
    files = {
        "z.yaml": GOOD.replace("refunds", "z"),
        "a/b/c.yml": GOOD.replace("refunds", "c"),
        "a/b/c_test.yml": "cases: []\n",
        "m_test.yaml": "cases: []\n",
        ".hidden/x.yaml": "not: [valid",
    }
    bundle = load_bundle(write(tmp_path, files))
    assert bundle.files == ("a/b/c.yml", "z.yaml")


def test_version_is_a_content_hash(tmp_path):
    first = load_bundle(write(tmp_path / "one", {"refunds.yaml": GOOD}))
    same = load_bundle(write(tmp_path / "two", {"refunds.yaml": GOOD}))
    other = load_bundle(write(tmp_path / "three", {"refunds.yaml": GOOD + "description: x\n"}))
    assert first.version == same.version != other.version
    assert "+git" not in first.version


def test_version_names_the_git_commit_and_dirty_state(tmp_path):
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    write(tmp_path, {"refunds.yaml": GOOD})
    git("init", "-q")
    git("-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x")
    clean = load_bundle(tmp_path).version
    assert "+git:" in clean
    assert not clean.endswith("-dirty")
    (tmp_path / "refunds.yaml").write_text(GOOD + "description: x\n")
    assert load_bundle(tmp_path).version.endswith("-dirty")


def test_shadow_and_defaults_reach_the_compiled_rule(tmp_path):
    text = rule("when: 'true'\ndecision: review\nreviewers: f\nreason: x\nmode: shadow\n")
    compiled = load_bundle(write(tmp_path, {"p.yaml": text})).policies[0].rules[0]
    assert compiled.shadow
    assert (compiled.approvals, compiled.on_timeout, compiled.on_error) == (1, "deny", "review")
    assert compiled.timeout is None


def test_example_policies_load():
    bundle = load_bundle(Path(__file__).parents[2] / "policies")
    assert {p.name for p in bundle.policies} == {"refunds", "db-migrations", "email", "mcp-tools"}
    assert bundle.policies_for("refund.issue")[0].redact == ("action.params.card_number",)


# -- variables at the parser's nesting limit (32 levels) --------------------------------------


def _decide(bundle) -> str:
    from signoff import pb
    from signoff.core.decide import DefaultDecision, evaluate

    req = pb.common.ActionRequest()
    req.action.name = "a.b"
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return evaluate(bundle, req, now, DefaultDecision("deny")).outcome


def _deep(n: int) -> str:
    return "(" * n + "1" + ")" * n


@pytest.mark.parametrize(
    "variable",
    [
        _deep(32),  # one parenthesized group: inlined as it is
        "1 + " + _deep(31),  # wrapped when inlined: 32 levels with the pair
    ],
)
def test_a_variable_at_the_nesting_limit_loads_and_works_in_a_rule(tmp_path, variable):
    bundle = load_bundle(
        write(
            tmp_path,
            {
                "p.yaml": rule(
                    "when: vars.x > 0\ndecision: allow\nreason: ok\n", f'  x: "{variable}"\n'
                )
            },
        )
    )
    assert _decide(bundle) == "allow"


def test_a_variable_past_the_limit_once_inlined_is_refused_where_it_is_defined(tmp_path):
    # 32 levels as written (it would compile on its own), 33 inlined in parentheses.
    variable = "1 + " + _deep(32)
    errors = errors_of(
        tmp_path,
        {"p.yaml": rule("when: vars.x > 0\ndecision: allow\nreason: ok\n", f'  x: "{variable}"\n')},
    )
    assert errors == [
        "p.yaml:3:7: variables.x: Expression recursion limit exceeded. limit: 32 "
        "(nesting levels, counting the parentheses that inline each variable)"
    ]


@pytest.mark.parametrize(
    ("variable", "outcome"),
    [
        ("(false) || (true)", "deny"),  # two groups, not one: !(...) must cover both
        ("(false || true)", "deny"),
        ("(false) || true // (note)", "deny"),  # a comment after the last ')'
        ('(")") == ")"', "deny"),  # a parenthesis in a string is not one
        ("(false)", "allow"),
    ],
)
def test_a_variable_is_wrapped_unless_one_pair_encloses_it(tmp_path, variable, outcome):
    body = "when: '!vars.x'\ndecision: allow\nreason: ok\n"
    # A block scalar keeps the text as written, the // comment included (and a newline).
    bundle = load_bundle(write(tmp_path, {"p.yaml": rule(body, f"  x: |-\n    {variable}\n")}))
    assert _decide(bundle) == outcome
