"""A translated CEL value (`Val`), and the typed views every translation step shares.

Split from translate.py so the extension functions (extensions.py) can use the views
without the recursive translator.
"""

from __future__ import annotations

from dataclasses import dataclass

import z3

from signoff.analysis.symbols import BOOL, NUM, OBJ, STR, Json, Path, Symbols

FALSE = z3.BoolVal(False)
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


class Unsupported(Exception):
    """An expression outside the analysed subset; the message names the construct."""


@dataclass(frozen=True)
class Val:
    """A translated value: its sort, its term, and when evaluating it fails."""

    # bool | int | double | num (int or double, which one unknown: math.greatest(1, x)) |
    # string | strlist | dyn | struct | msg | list | opt (an optional: `term` is whether
    # it has a value, `path` where that value is)
    sort: str
    term: object
    err: z3.BoolRef
    path: Path = ()
    items: tuple[Val, ...] = ()
    # A dyn that is no single path (`x.?a.orValue(1.0)`): its JSON variables, computed.
    json: Json | None = None


def ok(sort: str, term: object) -> Val:
    """A value that never fails."""
    return Val(sort, term, FALSE)


class Views:
    """`v` where a bool, a string or a number is required, and JSON member selection."""

    def __init__(self, symbols: Symbols) -> None:
        self.symbols = symbols

    def _json(self, v: Val) -> Json:
        """The JSON variables of a dyn value."""
        return v.json if v.json is not None else self.symbols.value(v.path)

    def _member(self, base: Val, key: str) -> tuple[Path, z3.BoolRef, z3.BoolRef]:
        """(path, present, error selecting the parent) of `base.key` on a struct or JSON."""
        if base.sort == "msg":
            raise Unsupported("a message field outside the request's fields")
        if base.sort not in ("struct", "dyn") or base.json is not None:
            raise Unsupported(f"selecting a field of a {base.sort}")
        path = (*base.path, key)
        v = self.symbols.value(path)
        parent_err = base.err
        if base.sort == "dyn":
            parent_err = z3.Or(base.err, self.symbols.value(base.path).kind != OBJ)
        return path, v.present, parent_err

    def bool(self, v: Val) -> Val:
        """`v` where a bool is required (a JSON value of another kind fails)."""
        if v.sort == "bool":
            return v
        if v.sort == "dyn":
            j = self._json(v)
            return Val("bool", j.bool, z3.Or(v.err, j.kind != BOOL))
        raise Unsupported(f"a {v.sort} used as a condition")

    def string(self, v: Val) -> Val:
        """`v` where a string is required."""
        if v.sort == "string":
            return v
        if v.sort == "dyn":
            j = self._json(v)
            return Val("string", j.str, z3.Or(v.err, j.kind != STR))
        raise Unsupported(f"a {v.sort} used as a string")

    def number(self, v: Val) -> Val:
        """`v` as a real (ints and doubles compare numerically in CEL)."""
        if v.sort == "int":
            return Val("double", z3.ToReal(v.term), v.err)  # type: ignore[arg-type]
        if v.sort in ("double", "num"):
            return Val("double", v.term, v.err)
        if v.sort == "dyn":
            j = self._json(v)
            return Val("double", j.num, z3.Or(v.err, j.kind != NUM))
        raise Unsupported(f"a {v.sort} used as a number")
