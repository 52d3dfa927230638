"""Action globs: the linear matcher's meaning, its cost on hostile input, and the request caps."""

from __future__ import annotations

import itertools
import time

import pytest

from signoff.errors import InvalidArgument
from signoff.policy.globs import MAX_GLOB_LENGTH, MAX_GLOB_WILDCARDS, Glob, check


def reference(glob: str, name: str) -> bool:
    """The meaning written as a table (dynamic programming): only `*` is special."""
    # ok[j]: glob[:i] matches name[:j]
    ok = [True] + [False] * len(name)
    for c in glob:
        if c == "*":
            ok = list(itertools.accumulate(ok, lambda a, b: a or b))
        else:
            ok = [False] + [ok[j] and name[j] == c for j in range(len(name))]
    return ok[-1]


@pytest.mark.parametrize(
    ("glob", "name", "matches"),
    [
        ("refund.*", "refund.issue", True),
        ("refund.*", "refund.card.issue", True),  # `*` crosses dots
        ("refund.*", "refund.", True),  # `*` may be empty
        ("refund.*", "refund", False),
        ("*", "", True),
        ("", "", True),
        ("", "a", False),
        ("a*a", "a", False),  # head and tail may not overlap
        ("a*a", "aa", True),
        ("*ab*ab", "abab", True),
        ("*ab*ab", "aab", False),
        ("*a*b*c*", "xaxbxcx", True),
        ("*a*b*c*", "xcxbxax", False),
        ("ab*ab*ab", "abababab", True),
        ("ab*ab*ab", "ababa", False),
        ("a?b", "axb", False),  # `?` is literal
        ("a?b", "a?b", True),
        ("a[b]c", "abc", False),  # so is `[`
        ("a%b", "axb", False),
        ("a_b", "axb", False),
        ("a\\*", "a\\xyz", True),  # `\` escapes nothing
        ("REFUND.*", "refund.issue", False),  # case-sensitive
    ],
)
def test_glob_semantics(glob: str, name: str, matches: bool) -> None:
    assert Glob.of(glob).matches(name) is matches
    assert reference(glob, name) is matches


def test_the_matcher_agrees_with_the_reference_on_every_short_pattern() -> None:
    names = ["".join(p) for n in range(6) for p in itertools.product("ab.", repeat=n)]
    globs = ["".join(p) for n in range(5) for p in itertools.product("ab*", repeat=n)]
    for glob in globs:
        compiled = Glob.of(glob)
        for name in names:
            assert compiled.matches(name) is reference(glob, name), (glob, name)


def test_the_worst_glob_on_the_longest_name_costs_microseconds_not_hours() -> None:
    # With a backtracking regex, 8 stars against 200 characters is O(200^8): hours.
    name = "a" * 200
    glob = Glob.of("*a" * (MAX_GLOB_WILDCARDS - 1) + "*b")
    start = time.perf_counter()
    for _ in range(1000):
        assert not glob.matches(name)
    assert time.perf_counter() - start < 1.0  # about 2 ms on a laptop


@pytest.mark.parametrize(
    ("glob", "problem"),
    [
        ("a" * (MAX_GLOB_LENGTH + 1), f"{MAX_GLOB_LENGTH + 1} characters exceeds the"),
        ("*a" * (MAX_GLOB_WILDCARDS + 1), f"{MAX_GLOB_WILDCARDS + 1} '*' wildcards exceeds"),
        ("refund.?ssue", "'?' not allowed"),
        ("refund%", "'%' not allowed"),
        ("a[b]", "'[]' not allowed"),
        ("a\\b", "'\\\\' not allowed"),
        ("réfund.*", "'é' not allowed"),
        ("refund issue", "' ' not allowed"),
    ],
)
def test_request_globs_beyond_the_caps_or_outside_action_characters_are_refused(
    glob: str, problem: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        check("filter.action", glob)
    assert err.value.field == "filter.action"
    assert problem in err.value.message


@pytest.mark.parametrize(
    "glob",
    ["", "*", "refund.*", "a" * MAX_GLOB_LENGTH, "*a" * (MAX_GLOB_WILDCARDS - 1) + "*", "A-b_c.9"],
)
def test_globs_within_the_caps_pass(glob: str) -> None:
    assert check("action", glob) == glob
