"""Translations of the CEL extensions z3 can express exactly: math.greatest/least/abs,
optional values (`.?`, orValue, hasValue, value), indexOf/lastIndexOf/substring/charAt,
and lowerAscii/upperAscii compared with a literal. Each takes translated values; the
loops (all, exists, cel.bind) need the translator itself and stay in translate.py.
"""

from __future__ import annotations

import z3

from signoff.analysis.symbols import BOOL, NUM, OBJ, STR, Json
from signoff.analysis.tree import Const, Node
from signoff.analysis.values import FALSE, INT64_MIN, Unsupported, Val, Views

FOLDED = ("lowerAscii", "upperAscii")  # a Val of these sorts holds the text before folding
_ANY = z3.Star(z3.AllChar(z3.ReSort(z3.StringSort())))


class Extensions(Views):
    """The extension functions, over values already translated."""

    def extreme(self, greatest: bool, values: list[Val]) -> Val:
        """math.greatest / math.least: numeric, strict in every argument."""
        if len(values) == 1:
            only = values[0]
            if only.sort in ("int", "double"):
                return only
            if only.sort != "list":
                raise Unsupported(f"math.{'greatest' if greatest else 'least'}() of a {only.sort}")
            values = list(only.items)
        sorts = {"double" if v.sort == "dyn" else v.sort for v in values}
        if not sorts <= {"int", "double"}:
            raise Unsupported(f"math.greatest/least() of {', '.join(sorted(sorts))}")
        # Mixed int and double: the result is whichever wins, so its type is unknown.
        sort = "int" if sorts == {"int"} else "double" if sorts == {"double"} else "num"
        terms = [v.term if sort == "int" else self.number(v).term for v in values]
        errs = [v.err if sort == "int" else self.number(v).err for v in values]
        best = terms[0]
        for t in terms[1:]:
            best = z3.If(t > best if greatest else t < best, t, best)  # type: ignore[operator]
        return Val(sort, best, z3.Or(*errs))

    def absolute(self, v: Val) -> Val:
        """math.abs."""
        if v.sort == "int":
            x = v.term
            return Val("int", z3.If(x >= 0, x, -x), z3.Or(v.err, x == INT64_MIN))  # type: ignore[operator]
        if v.sort in ("double", "dyn"):
            n = self.number(v)
            return Val("double", z3.If(n.term >= 0, n.term, -n.term), n.err)  # type: ignore[operator]
        raise Unsupported(f"math.abs() of a {v.sort}")

    def optional_select(self, base: Val, key: Node) -> Val:
        """`base.?key`: an optional, empty when the key is missing."""
        if not (isinstance(key, Const) and isinstance(key.value, str)):
            raise Unsupported("an optional index with a computed or non-string key")
        if base.sort == "opt":
            # Chained: empty stays empty; a value that is not an object fails.
            inner = self.symbols.value(base.path)
            path = (*base.path, key.value)
            child = self.symbols.value(path)
            err = z3.Or(base.err, z3.And(base.term, inner.kind != OBJ))  # type: ignore[arg-type]
            return Val("opt", z3.And(base.term, inner.kind == OBJ, child.present), err, path)  # type: ignore[arg-type]
        path, present, parent_err = self._member(base, key.value)
        return Val("opt", present, parent_err, path)

    def optional_call(self, fn: str, opt: Val, default: Val | None) -> Val:
        """hasValue(), value() or orValue(default) of an optional."""
        if opt.sort != "opt":
            raise Unsupported(f"{fn}() of a {opt.sort}")
        has = opt.term
        if fn == "hasValue":
            return Val("bool", has, opt.err)
        if fn == "value":
            return Val("dyn", None, z3.Or(opt.err, z3.Not(has)), opt.path)  # type: ignore[arg-type]
        assert default is not None  # orValue: the default counts only when it is used
        inner = self.symbols.value(opt.path)
        other = self.lifted(default)
        merged = merge_json(has, inner, other)  # type: ignore[arg-type]
        err = z3.Or(opt.err, z3.And(z3.Not(has), default.err))  # type: ignore[arg-type]
        return Val("dyn", None, err, json=merged)

    def lifted(self, v: Val) -> Json:
        """A typed value as JSON variables (an int is a number: compared, never added)."""
        if v.sort == "dyn":
            return self._json(v)
        zero, empty = z3.RealVal(0), z3.StringVal("")
        kind, num, text, flag = NUM, zero, empty, FALSE
        if v.sort == "bool":
            kind, flag = BOOL, v.term
        elif v.sort in ("int", "double", "num"):
            num = self.number(v).term
        elif v.sort == "string":
            kind, text = STR, v.term
        else:
            raise Unsupported(f"orValue() with a {v.sort}")
        size = z3.Length(text)  # type: ignore[arg-type]
        return Json(
            z3.BoolVal(True), z3.IntVal(kind), num, text, flag, size, zero, z3.BoolVal(True)
        )  # type: ignore[arg-type]

    def text_call(self, fn: str, s: Val, vals: list[Val]) -> Val:
        """indexOf, lastIndexOf, substring, charAt: z3's string theory, with the engine's
        range errors (each checked against it in tests/unit/test_analysis_extensions.py)."""
        n = z3.Length(s.term)  # type: ignore[arg-type]
        needle = self.string(vals.pop(0)) if fn.endswith("ndexOf") else None
        if any(v.sort != "int" for v in vals):
            raise Unsupported(f"{fn}() with a position that is not an int")
        err = z3.Or(s.err, *(v.err for v in vals), needle.err if needle else FALSE)
        pos = [v.term for v in vals]
        if needle is not None:
            last = fn == "lastIndexOf"
            start = pos[0] if pos else (n if last else z3.IntVal(0))
            bad = z3.Or(start < 0, start > n)  # type: ignore[operator]
            if not last:
                term = z3.IndexOf(s.term, needle.term, start)  # type: ignore[arg-type]
            else:  # the last match that starts at or before `start`
                head = z3.SubString(s.term, 0, start + z3.Length(needle.term))  # type: ignore[arg-type,operator]
                term = z3.LastIndexOf(head, needle.term)  # type: ignore[arg-type]
            return Val("int", term, z3.Or(err, bad))
        start = pos[0]
        end = pos[1] if len(pos) > 1 else (start + 1 if fn == "charAt" else n)  # type: ignore[operator]
        # charAt(size) is "", like a substring of length 0 there.
        bad = z3.Or(start < 0, start > n)  # type: ignore[operator]
        if fn == "substring" and len(pos) > 1:
            # As the engine does it (cel-expr-python 0.1.3): substring(i, size) fails
            # unless i == size, so "abc".substring(1, 3) is an error, not "bc".
            bad = z3.Or(bad, end < start, end > n, z3.And(end == n, start < end))  # type: ignore[operator]
        term = z3.SubString(s.term, start, end - start)  # type: ignore[arg-type,operator]
        return Val("string", term, z3.Or(err, bad))


def merge_json(cond: z3.BoolRef, a: Json, b: Json) -> Json:
    """The JSON variables of `cond ? a : b`."""
    fields = ("present", "kind", "num", "str", "bool", "size", "parsed", "unparsable")
    return Json(*(z3.If(cond, getattr(a, f), getattr(b, f)) for f in fields))


def folded_match(how: str, folded: Val, literal: Val) -> Val:
    """`s.lowerAscii() == "abc"` (or startsWith, endsWith, contains a literal) as a regular
    expression over `s`: each letter of the literal matches either case of it in `s`.

    Exact: lowerAscii changes only A-Z, so a literal with an uppercase letter never
    matches a lowered text (and the other way round for upperAscii)."""
    if literal.sort != "string" or not z3.is_string_value(literal.term):
        raise Unsupported(f"{folded.sort}() compared with anything but a string literal")
    text = literal.term.as_string()  # type: ignore[attr-defined]
    pieces: list[z3.ReRef] = []
    for ch in text:
        lower, upper = ch.lower(), ch.upper()
        if not ch.isascii() or not ch.isalpha():
            pieces.append(z3.Re(z3.StringVal(ch)))
        elif ch != (lower if folded.sort == "lowerAscii" else upper):
            return Val("bool", FALSE, folded.err)  # a letter the folded text cannot hold
        else:
            pieces.append(z3.Union(z3.Re(lower), z3.Re(upper)))
    wrap = {"==": (), "startsWith": (1,), "endsWith": (0,), "contains": (0, 1)}[how]
    parts = ([_ANY] if 0 in wrap else []) + pieces + ([_ANY] if 1 in wrap else [])
    regex = z3.Re("") if not parts else parts[0] if len(parts) == 1 else z3.Concat(*parts)
    return Val("bool", z3.InRe(folded.term, regex), z3.Or(folded.err, literal.err))  # type: ignore[arg-type]
