"""The action index: exact names, globs, catch-all files, bundle order, cached lookups."""

from __future__ import annotations

import time

import pytest

from signoff.policy import CompiledPolicy, PolicyIndex
from signoff.policy.globs import Glob
from signoff.policy.load import load_bundle


def policy(file: str, *actions: str) -> CompiledPolicy:
    return CompiledPolicy(file, file.removesuffix(".yaml"), "", actions, (), (), ())


@pytest.mark.parametrize(
    ("glob", "name", "matches"),
    [
        ("refund.*", "refund.issue", True),
        ("refund.*", "refund.card.issue", True),  # `*` crosses dots
        ("refund.*", "refund", False),
        ("refund.*", "refunds.issue", False),
        ("*.send", "email.send", True),
        ("*", "anything.at.all", True),
        ("db.migrate", "db.migrate", True),
        ("db.migrate", "dbxmigrate", False),  # the dot is literal
        ("refund*", "refunds.issue", True),
    ],
)
def test_glob_semantics(glob, name, matches):
    assert Glob.of(glob).matches(name) is matches


def test_lookup_merges_exact_globs_and_catch_all_in_bundle_order():
    policies = [
        policy("a.yaml", "refund.*"),
        policy("b.yaml"),  # no actions: applies to all
        policy("c.yaml", "refund.issue", "email.send"),
        policy("d.yaml", "email.*"),
    ]
    index = PolicyIndex(policies)
    assert [p.file for p in index.policies_for("refund.issue")] == ["a.yaml", "b.yaml", "c.yaml"]
    assert [p.file for p in index.policies_for("email.send")] == ["b.yaml", "c.yaml", "d.yaml"]
    assert [p.file for p in index.policies_for("db.migrate")] == ["b.yaml"]


def test_lookups_are_cached_and_bounded():
    index = PolicyIndex([policy("a.yaml", "refund.*")], cache_size=2)
    first = index.policies_for("refund.issue")
    assert index.policies_for("refund.issue") is first  # the cached tuple, no rematch
    for name in ("x.a", "x.b", "x.c"):
        index.policies_for(name)
    assert index._cached.cache_info().currsize == 2


def test_a_large_bundle_only_evaluates_the_applicable_policies(tmp_path):
    # 1,000 action names x 10 rules = 10,000 rules; a decision touches 10 of them.
    for i in range(1000):
        rules = "".join(
            f"  - {{name: r{j}, when: 'action.params.n > {j}', decision: allow, reason: x}}\n"
            for j in range(10)
        )
        (tmp_path / f"p{i:04}.yaml").write_text(
            f"name: p{i}\nactions: [svc{i}.act]\nrules:\n{rules}"
        )
    bundle = load_bundle(tmp_path)
    assert bundle.rule_count == 10_000
    (found,) = bundle.policies_for("svc500.act")
    assert (found.name, len(found.rules)) == ("p500", 10)
    assert bundle.policies_for("svc1000.act") == ()


def test_a_pathological_policy_glob_costs_linear_time_on_long_agent_names():
    # A backtracking regex takes seconds per name here (hours with a few more stars); each
    # name is a cache miss, so an agent could send new ones forever.
    index = PolicyIndex([policy("a.yaml", "*a*a*a*a*b")])
    start = time.perf_counter()
    for n in range(3):
        assert index.policies_for("a" * (200 - n)) == ()
    assert index.policies_for("a" * 199 + "b")[0].file == "a.yaml"
    assert time.perf_counter() - start < 1.0
