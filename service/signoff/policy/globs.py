"""Action-name globs: `*` matches any run of characters (dots included); nothing else is special.

Callers choose these patterns (auditors' QueryAudit/ExportAudit filters, ListReviews), and a
backtracking engine makes `*a*a*a*a*a*b` against a 200-character name cost hours under the
GIL (issue 19: one auditor froze every call for 80 s). So no glob ever becomes a regular
expression: `Glob.matches` splits the pattern at its stars and places each literal piece at
its leftmost occurrence with `str.find`, which is exact for star-only patterns (a leftmost
placement never rules out a later one) and costs O(len(name) * pieces) with no backtracking.
Where a store filters in SQL, globs become SQLite GLOB / PostgreSQL LIKE with every other
special character escaped (store/sqlite_reviews.sqlite_glob, store/postgres_query.like_pattern);
both engines abandon a star once the rest cannot match, so they are linear in practice too.

Request globs are also bounded (`check`): at most MAX_GLOB_LENGTH characters and
MAX_GLOB_WILDCARDS stars, made of action-name characters, refused as INVALID_ARGUMENT naming
the field. Matching is case-sensitive on both backends, like action names.
"""

from __future__ import annotations

from dataclasses import dataclass

from signoff.errors import InvalidArgument

# An action name has at most 200 characters (validate.MAX_ACTION_NAME) and every literal
# character of a glob must appear in the name, so 256 leaves room for the stars.
MAX_GLOB_LENGTH = 256
# More stars than this add nothing a person means ("*a*b*c*" has 4) and only cost per row.
MAX_GLOB_WILDCARDS = 8
# The characters of action names (validate.ACTION_NAME_RE) plus the star.
_GLOB_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-*")


def check(field: str, glob: str) -> str:
    """Return `glob` if it is a bounded action-name glob, else raise InvalidArgument(field)."""
    if len(glob) > MAX_GLOB_LENGTH:
        raise InvalidArgument(
            field, f"{len(glob)} characters exceeds the {MAX_GLOB_LENGTH}-character glob limit"
        )
    stars = glob.count("*")
    if stars > MAX_GLOB_WILDCARDS:
        raise InvalidArgument(
            field, f"{stars} '*' wildcards exceeds the limit of {MAX_GLOB_WILDCARDS} per glob"
        )
    bad = sorted(set(glob) - _GLOB_CHARS)
    if bad:
        raise InvalidArgument(
            field,
            f"{glob!r} is not an action name glob: {''.join(bad)!r} not allowed "
            "(letters, digits, '.', '_', '-' and the wildcard '*')",
        )
    return glob


@dataclass(frozen=True, slots=True)
class Glob:
    """A compiled glob: its literal pieces between stars."""

    pattern: str
    pieces: tuple[str, ...]

    @classmethod
    def of(cls, pattern: str) -> Glob:
        """Compile `pattern` (any text: only `*` is special)."""
        return cls(pattern, tuple(pattern.split("*")))

    def matches(self, name: str) -> bool:
        """Whether the whole of `name` matches, in O(len(name) * pieces) without backtracking."""
        pieces = self.pieces
        if len(pieces) == 1:
            return name == pieces[0]
        head, tail = pieces[0], pieces[-1]
        if len(name) < len(head) + len(tail) or not name.startswith(head):
            return False
        if not name.endswith(tail):
            return False
        pos, end = len(head), len(name) - len(tail)
        for piece in pieces[1:-1]:
            found = name.find(piece, pos, end)
            if found < 0:
                return False
            pos = found + len(piece)
        return True
