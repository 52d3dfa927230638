"""Action globs mean the same on every backend and every path: only `*` is special.

The SQL that filters (SQLite GLOB, PostgreSQL LIKE) must escape what those engines treat as
wildcards (`?`, `[`, `%`, `_`, and LIKE's escape `\\`), match case-sensitively, and agree with
the linear matcher of signoff.policy.globs, which SQLite's audit queries use to resolve a narrow
glob into names. Names here are stored directly, so they may hold characters the API refuses.
"""

from __future__ import annotations

import pytest

from signoff.policy.globs import Glob
from signoff.store import AuditQuery, ReviewQuery, Store
from tests.store.reviews import open_review

NAMES = (
    *("a%b", "axb", "a_b", "aXb", "a[b]c", "abc", "a\\b", "a?b", "A.b", "a.b", "a.b.c", "ab"),
    *("b", "a" * 199 + "b", "%", "_", "[", "\\"),
)

GLOBS: list[tuple[str, list[str]]] = [
    ("a%b", ["a%b"]),  # LIKE's `%` is literal
    ("a_b", ["a_b"]),  # LIKE's `_` is literal: not axb, aXb
    ("a[b]c", ["a[b]c"]),  # GLOB's character class is literal: not abc
    ("a\\b", ["a\\b"]),  # LIKE's escape character is literal
    ("a?b", ["a?b"]),  # GLOB's `?` is literal
    ("%", ["%"]),
    ("_", ["_"]),
    ("[", ["["]),
    ("\\", ["\\"]),
    ("*%*", ["a%b", "%"]),
    ("*_*", ["a_b", "_"]),
    ("*[*", ["a[b]c", "["]),
    ("*\\*", ["a\\b", "\\"]),
    ("*?*", ["a?b"]),
    ("a*b", ["a%b", "axb", "a_b", "aXb", "a\\b", "a?b", "a.b", "ab", "a" * 199 + "b"]),
    ("A*", ["A.b"]),  # case-sensitive
    ("a.*", ["a.b", "a.b.c"]),  # `*` spans dots
    ("*.*.*", ["a.b.c"]),
    (
        "a**b*",
        [n for n in NAMES if n.startswith("a") and len(n) > 1 and "b" in n[1:]],
    ),
    ("*a*a*a*a*a*a*a*b", ["a" * 199 + "b"]),
    ("*a*a*a*a*a*a*a*c", []),
    ("x*", []),
]


@pytest.fixture
async def named(store: Store) -> Store:
    """One review (with its decision and review.opened entries) per name of NAMES."""
    for n, name in enumerate(NAMES):
        await open_review(store, n, action=name)
    return store


@pytest.mark.parametrize(("glob", "expected"), GLOBS, ids=[g for g, _ in GLOBS])
async def test_a_glob_selects_the_same_names_for_reviews_audit_and_the_matcher(
    named: Store, glob: str, expected: list[str]
) -> None:
    assert sorted(n for n in NAMES if Glob.of(glob).matches(n)) == sorted(expected)
    reviews = await named.list_reviews(ReviewQuery(action_glob=glob, limit=100))
    assert sorted(r.action_name for r in reviews) == sorted(expected)
    entries = await named.query_audit(AuditQuery(types=("decision",), action_glob=glob))
    assert sorted(e.action_name for e in entries) == sorted(expected)


WIDE = 40  # more names than sqlite_audit_query.MAX_MERGED_NAMES: SQLite filters rows by GLOB


async def test_a_broad_glob_filtered_in_sql_escapes_every_wildcard(store: Store) -> None:
    for i in range(WIDE):
        await open_review(store, 2 * i, action=f"n{i:02d}_%[\\?x")
        await open_review(store, 2 * i + 1, action=f"n{i:02d}xZ]\\?x")  # a wildcard would match
    want = sorted(f"n{i:02d}_%[\\?x" for i in range(WIDE))
    for glob in ("n*_%[\\?x", "*_%[\\?x", "n*_*%*[*\\*?x"):
        reviews = await store.list_reviews(ReviewQuery(action_glob=glob, limit=1000))
        assert sorted(r.action_name for r in reviews) == want, glob
        entries = await store.query_audit(AuditQuery(types=("decision",), action_glob=glob))
        assert sorted(e.action_name for e in entries) == want, glob
