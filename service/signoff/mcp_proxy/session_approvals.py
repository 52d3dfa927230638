""" "Approve for this session": what the human at an MCP client approved for the rest of it.

A session approval lets the proxy answer later in-band reviews for the human, without
asking again, when they are of the same MCP session, the same tool (action), the same
rules, and arguments of the same shape as the review the human approved for the session:
the same parameter paths with values of the same JSON types, as reviewers see them
(redacted). Values may differ: the policy still decides every call, and a call it sends to
a rule without `in_band` is never answered for the human.

Kept in the proxy's memory only, so it ends with the session (and with the proxy).
Signoff still checks every act, which is made with the human's token and says in its
comment which review it stands on.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

MAX_SESSIONS = 1000  # a long-running HTTP proxy forgets the oldest sessions first

Scope = tuple[str, frozenset[tuple[str, str]], frozenset[tuple[str, str]]]


def shape(params: Mapping[str, Any], prefix: str = "") -> frozenset[tuple[str, str]]:
    """The (path, JSON type) pairs of `params`: a list is one value, as for grants."""
    out: set[tuple[str, str]] = set()
    for key, value in params.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out |= shape(value, f"{path}.")
        else:
            out.add((path, _json_type(value)))
    return frozenset(out)


def scope(action: str, rules: Sequence[tuple[str, str]], params: Mapping[str, Any]) -> Scope:
    """What a session approval covers: the action, the rules that sent it to review, and
    the shape of the shown arguments."""
    return action, frozenset(rules), shape(params)


class SessionApprovals:
    """Session approvals by MCP session: scope -> the review the human approved it in."""

    def __init__(self) -> None:
        self._by_session: OrderedDict[str, dict[Scope, str]] = OrderedDict()

    def add(self, session: str, covered: Scope, review_id: str) -> None:
        """Remember that the human approved `covered` for `session` in `review_id`."""
        approvals = self._by_session.setdefault(session, {})
        self._by_session.move_to_end(session)
        approvals.setdefault(covered, review_id)
        while len(self._by_session) > MAX_SESSIONS:
            self._by_session.popitem(last=False)

    def find(self, session: str, covered: Scope) -> str | None:
        """The review whose session approval covers `covered`, if any."""
        return self._by_session.get(session, {}).get(covered)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"  # an empty object
