"""The compiled, immutable policy bundle: what requests are evaluated against.

A reload builds a new Bundle and swaps one reference; nothing here is mutated after load
(the index's lookup cache is the one exception, and it only memoises a pure function).
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from signoff.policy.compiled import (
    BundleError,
    CompiledPolicy,
    CompiledRule,
    CompiledVariable,
    Decision,
    PolicyError,
    RuleBatch,
    rule_batch,
)
from signoff.policy.index import Applicable, PolicyIndex
from signoff.policy.params import ParamSchema


@dataclass(frozen=True)
class Bundle:
    """Every policy of a directory, in bundle order (files by relative path)."""

    directory: Path
    version: str
    policies: tuple[CompiledPolicy, ...]
    index: PolicyIndex = field(repr=False)
    warnings: tuple[str, ...] = ()

    @functools.cached_property
    def params(self) -> tuple[ParamSchema, ...]:
        """Every action schema of the bundle (params.check_request picks a request's)."""
        return tuple(s for p in self.policies for s in p.params)

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


__all__ = [
    "Bundle",
    "BundleError",
    "CompiledPolicy",
    "CompiledRule",
    "CompiledVariable",
    "Decision",
    "PolicyError",
    "RuleBatch",
    "content_version",
    "git_suffix",
    "rule_batch",
]
