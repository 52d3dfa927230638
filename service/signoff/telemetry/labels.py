"""Bounded label values: agents send arbitrary action names, metrics must not grow with them."""

from __future__ import annotations

import functools

from signoff.policy import Bundle
from signoff.policy.globs import Glob

OTHER = "other"
_CACHE_SIZE = 4096


class ActionLabels:
    """The `action` label of a name: itself when a policy names it exactly, the policy's glob
    when one matches it (`refund.*`), else "other"; so at most one series per name or glob
    written in the policies."""

    def __init__(self, bundle: Bundle | None = None) -> None:
        exact: set[str] = set()
        globs: list[tuple[str, Glob]] = []
        for policy in bundle.policies if bundle else ():
            for pattern in policy.actions:
                if "*" in pattern:
                    globs.append((pattern, Glob.of(pattern)))
                else:
                    exact.add(pattern)
        self._exact = frozenset(exact)
        self._globs = tuple(globs)
        # Bounded like the policy index's cache: random names cannot grow memory.
        self.of = functools.lru_cache(maxsize=_CACHE_SIZE)(self._label)

    def _label(self, action: str) -> str:
        if action in self._exact:
            return action
        for pattern, glob in self._globs:
            if glob.matches(action):
                return pattern
        return OTHER
