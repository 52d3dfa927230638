"""Who acts on a review, as the review use cases see a caller: a protocol that the `auth`
package's Identity satisfies, so the desk and the batch need not import `auth`."""

from __future__ import annotations

from typing import Protocol


class Identity(Protocol):
    """What the review use cases need of an authenticated caller (see signoff.auth)."""

    id: str
    roles: frozenset[str]
    act_for_others: bool

    def can_review(self, group: str) -> bool:
        """True if the caller may act on reviews of `group`."""
        ...
