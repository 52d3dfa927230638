"""A short-lived cache of the active standing approvals per action and rule.

Every decision that a review rule decides looks for a grant, and almost always finds none;
reading the store each time costs a reader-thread round trip per such decision. A cached
read is safe both ways: a stale grant that is no longer usable fails the store's atomic use
(and is dropped here), and a grant too new to be cached only means one more review.
"""

from __future__ import annotations

import datetime as dt
import time

from signoff.app.audit.guard import checked_grants
from signoff.store.base import Store
from signoff.store.grants_sql import GrantRecord

Key = tuple[str, str, str, str]
# Distinct (action, group, policy, rule) keys between two clears; past it, start over.
MAX_KEYS = 4096


class ActiveGrants:
    """`Store.active_grants`, reused for `ttl` seconds per (action, group, policy, rule)."""

    def __init__(self, store: Store, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
        self._read: dict[Key, tuple[float, list[GrantRecord]]] = {}

    async def get(
        self, action_name: str, group: str, policy: str, rule: str, now: dt.datetime
    ) -> list[GrantRecord]:
        """The grants active at `now`, newest first, from a read at most `ttl` seconds old."""
        key = (action_name, group, policy, rule)
        cached = self._read.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            # Expiry is judged at `now`; uses and revocations by the atomic use.
            return [g for g in cached[1] if g.expires_at > now]
        read_at = time.monotonic()
        # A row changed in the database (a wider scope, more uses, a revocation undone) is
        # left out here, before it is cached: it allows nothing (chain_guard).
        found = await checked_grants(
            self.store, await self.store.active_grants(action_name, group, policy, rule, now)
        )
        if self.ttl > 0:
            if len(self._read) >= MAX_KEYS:
                self._read.clear()
            self._read[key] = (read_at, found)
        return found

    def clear(self) -> None:
        """Forget every read: the next lookup goes to the store."""
        self._read.clear()
