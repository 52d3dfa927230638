"""Action name -> applicable policies, so decision time does not grow with the bundle.

Exact names are a dict lookup. Globs are matched once per action name and the answer is
cached (bounded LRU), so after the first request for a name every lookup is O(1) whatever
the number of policies: 10,000 rules over 1,000 action names decide as fast as 10 rules.
A cache miss costs one linear-time glob match per glob policy (signoff.policy.globs: no regex,
so an author's `*a*a*a*b` cannot backtrack on a long name); action names are validated by the API
(at most 200 characters), and the bound keeps random names from growing memory.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from signoff.policy.compiled import CompiledPolicy
from signoff.policy.globs import Glob

DEFAULT_CACHE_SIZE = 8192


@dataclass(frozen=True)
class Applicable:
    """What applies to one action name: the policies, their files and redact paths."""

    policies: tuple[CompiledPolicy, ...]
    files: tuple[str, ...]
    redact: tuple[str, ...]  # in bundle order, without repeats


class PolicyIndex:
    """Finds the policies that apply to an action name, in bundle order."""

    def __init__(
        self, policies: Sequence[CompiledPolicy], cache_size: int = DEFAULT_CACHE_SIZE
    ) -> None:
        self._policies = tuple(policies)
        self._exact: dict[str, list[int]] = {}
        self._globs: list[tuple[int, Glob]] = []
        self._universal: list[int] = []
        for position, policy in enumerate(self._policies):
            if not policy.actions:
                self._universal.append(position)
                continue
            for pattern in policy.actions:
                if "*" in pattern:
                    self._globs.append((position, Glob.of(pattern)))
                else:
                    self._exact.setdefault(pattern, []).append(position)
        # Per instance, so two bundles (before and after a reload) never share answers.
        self._cached = functools.lru_cache(maxsize=cache_size)(self._lookup)

    def policies_for(self, action_name: str) -> tuple[CompiledPolicy, ...]:
        """The policies whose `actions` match `action_name` (or that apply to all)."""
        return self._cached(action_name).policies

    def applicable(self, action_name: str) -> Applicable:
        """The policies for `action_name` with what every evaluation derives from them."""
        return self._cached(action_name)

    def _lookup(self, action_name: str) -> Applicable:
        positions = set(self._universal)
        positions.update(self._exact.get(action_name, ()))
        positions.update(p for p, glob in self._globs if glob.matches(action_name))
        policies = tuple(self._policies[p] for p in sorted(positions))
        redact = tuple(dict.fromkeys(path for p in policies for path in p.redact))
        return Applicable(policies, tuple(p.file for p in policies), redact)
