"""The compiled, immutable policy bundle: what requests are evaluated against.

A reload builds a new Bundle and swaps one reference; nothing here is mutated after load
(the index's lookup cache is the one exception, and it only memoises a pure function).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from signoff.policy.cel import Program, combine

if TYPE_CHECKING:
    from signoff.policy.index import Applicable, PolicyIndex

Decision = Literal["allow", "review", "deny"]


@dataclass(frozen=True)
class PolicyError:
    """One problem in a policy file, at a 1-based line and column of that file."""

    file: str
    line: int
    column: int
    rule: str
    message: str

    def __str__(self) -> str:
        # line 0: the problem has no position (e.g. the directory itself is missing).
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.rule}: {self.message}" if self.rule else f"{where}: {self.message}"


class BundleError(Exception):
    """The bundle was rejected whole; `errors` lists every problem found, in file order."""

    def __init__(self, errors: Sequence[PolicyError]) -> None:
        self.errors = list(errors)
        lines = "\n".join(str(e) for e in self.errors)
        super().__init__(f"{len(self.errors)} error(s) in the policy bundle:\n{lines}")


@dataclass(frozen=True)
class CompiledVariable:
    """A policy variable, compiled on its own (with its dependencies inlined) for Explain."""

    name: str
    expr: str
    line: int
    program: Program


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to evaluate; its programs have the policy's variables inlined."""

    file: str
    policy: str
    name: str
    line: int
    when: str  # as written
    when_program: Program
    decision: Decision
    reason: str | None
    reason_expr: str | None  # as written
    reason_program: Program | None
    reviewers: str | None
    approvals: int
    timeout: dt.timedelta | None
    on_timeout: str
    on_error: Literal["review", "deny", "ignore"]
    shadow: bool
    grants: bool = False  # reviewers may grant standing approvals (model.Rule.allows_grants)
    # ... without bounds on every number (model.Rule.allows_unbounded_grants)
    unbounded_grants: bool = False


@dataclass(frozen=True)
class CompiledPolicy:
    """One policy file: its rules in file order."""

    file: str
    name: str
    description: str
    actions: tuple[str, ...]  # empty: applies to every action (a file without `actions`)
    variables: tuple[CompiledVariable, ...]
    rules: tuple[CompiledRule, ...]
    redact: tuple[str, ...]
    batch: RuleBatch | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class RuleBatch:
    """A policy's rules in one program: one eval per request instead of one per rule.

    Each eval costs ~1.5 µs before any work, and the request's messages are converted for
    CEL once per Activation, so one list-valued program is much cheaper than one program
    per rule. Element i is rule i's `when`, except for a rule in `with_reason`: there it is
    `when ? reason_expr : false` (a string-typed reason_expr, evaluated only on a match,
    as rule by rule). The batch fails whenever one of its parts would fail (or when the
    comprehensions share out the iteration budget): then decide.py goes rule by rule.
    """

    program: Program
    with_reason: tuple[bool, ...]


def rule_batch(rules: Sequence[CompiledRule]) -> RuleBatch | None:
    """The batch of `rules`, or None when there is nothing to gain (or it does not compile)."""
    if len(rules) < 2 and not any(r.reason_program for r in rules):
        return None
    exprs, with_reason = [], []
    for rule in rules:
        reason = rule.reason_program
        combined = reason is not None and reason.return_type == "STRING"
        when = rule.when_program.expr
        exprs.append(f"({when}) ? dyn({reason.expr}) : false" if combined and reason else when)
        with_reason.append(combined)
    macros = any(
        p is not None and p.uses_list_macros
        for r in rules
        for p in (r.when_program, r.reason_program)
    )
    program = combine(exprs, macros)
    return None if program is None else RuleBatch(program, tuple(with_reason))


@dataclass(frozen=True)
class Bundle:
    """Every policy of a directory, in bundle order (files by relative path)."""

    directory: Path
    version: str
    policies: tuple[CompiledPolicy, ...]
    index: PolicyIndex = field(repr=False)
    warnings: tuple[str, ...] = ()

    @property
    def files(self) -> tuple[str, ...]:
        """Relative paths of the policy files, in bundle order."""
        return tuple(p.file for p in self.policies)

    @property
    def rule_count(self) -> int:
        """Number of rules in the bundle, shadow rules included."""
        return sum(len(p.rules) for p in self.policies)

    @property
    def actions(self) -> tuple[str, ...]:
        """Action names and globs the bundle covers, sorted; `*` when a file applies to all."""
        covered = {a for p in self.policies for a in (p.actions or ("*",))}
        return tuple(sorted(covered))

    def policies_for(self, action_name: str) -> tuple[CompiledPolicy, ...]:
        """The policies whose `actions` match `action_name`, in bundle order."""
        return self.index.policies_for(action_name)

    def applicable(self, action_name: str) -> Applicable:
        """What applies to `action_name`: its policies, their files and redact paths."""
        return self.index.applicable(action_name)


def content_version(files: Sequence[tuple[str, bytes]]) -> str:
    """Return "sha256:<hex>" over the sorted (relative path, content) pairs."""
    digest = hashlib.sha256()
    for rel, content in sorted(files):
        # Length-prefixed so that moving bytes between a path and a content changes the hash.
        name = rel.encode()
        digest.update(b"%d:%s\0%d:" % (len(name), name, len(content)))
        digest.update(content)
    return "sha256:" + digest.hexdigest()


def git_suffix(directory: Path) -> str:
    """Return "+git:<commit>[-dirty]" when `directory` is in a git work tree, else "".

    The commit is the last one that touched the directory, not HEAD: commits elsewhere in
    the repository must not change the version of unchanged policies.
    """
    try:
        head = _git(directory, "log", "-1", "--format=%h", "--abbrev=12", "--", ".")
        if not head:
            return ""
        status = _git(directory, "status", "--porcelain", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return ""  # no git binary, or it hung: the content hash alone still identifies
    return f"+git:{head}" + ("-dirty" if status else "")


def _git(directory: Path, *args: str) -> str | None:
    result = subprocess.run(
        ["git", "-C", str(directory), *args],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None
