"""CEL (the subset policies use) -> z3 terms, with CEL's errors modelled exactly.

Every translated expression is a value and an error condition: `a.b` on a missing key, a
number where a string was needed, an int overflow are errors, and the engine turns a rule's
error into its `on_error` effect, so the analysis must know exactly when they happen.
`&&` and `||` absorb an error when the other side decides (false, resp. true), as in CEL.

Doubles are modelled as reals (no rounding, no NaN or infinity: JSON carries neither);
every counterexample is re-checked by the real engine, so this can only cost a finding,
never invent one. A construct outside the subset raises `Unsupported`, and the caller says
"not analysed" instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass

import z3

from signoff.analysis.symbols import (
    BOOL,
    LIST,
    LIST_FIELDS,
    MESSAGES,
    NUM,
    OBJ,
    STR,
    STRING_FIELDS,
    STRUCT_ROOTS,
    Path,
    Symbols,
)
from signoff.analysis.tree import Call, Const, Ident, ListLit, Node, Other, Select

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_ORDER = {"_<_": "<", "_<=_": "<=", "_>_": ">", "_>=_": ">="}
_ARITH = {"_+_", "_-_", "_*_"}


class Unsupported(Exception):
    """An expression outside the analysed subset; the message names the construct."""


@dataclass(frozen=True)
class Val:
    """A translated value: its sort, its term, and when evaluating it fails."""

    sort: str  # bool | int | double | string | strlist | dyn | struct | msg | list
    term: object
    err: z3.BoolRef
    path: Path = ()
    items: tuple[Val, ...] = ()


FALSE = z3.BoolVal(False)


def _ok(sort: str, term: object) -> Val:
    return Val(sort, term, FALSE)


class Translator:
    """Translates ASTs against one set of request variables."""

    def __init__(self, symbols: Symbols) -> None:
        self.symbols = symbols

    def condition(self, node: Node) -> tuple[z3.BoolRef, z3.BoolRef]:
        """(true without error, fails) of a boolean expression such as a rule's `when`."""
        v = self.bool(self.expr(node))
        return z3.And(z3.Not(v.err), v.term), v.err

    def fails(self, node: Node) -> z3.BoolRef:
        """When an expression fails (a reason_expr: only its failure matters)."""
        return self.expr(node).err

    # --- expressions ---------------------------------------------------------------

    def expr(self, node: Node) -> Val:
        """Translate one expression."""
        if isinstance(node, Const):
            return self._const(node.value)
        if isinstance(node, Ident):
            return self._path((node.name,))
        if isinstance(node, Select):
            return self._select(node)
        if isinstance(node, Call):
            return self._call(node)
        if isinstance(node, ListLit):
            items = tuple(self.expr(e) for e in node.elements)
            return Val("list", None, z3.Or(FALSE, *(i.err for i in items)), items=items)
        assert isinstance(node, Other)
        raise Unsupported(node.what)

    def _const(self, value: object) -> Val:
        if isinstance(value, bool):
            return _ok("bool", z3.BoolVal(value))
        if isinstance(value, int):
            return _ok("int", z3.IntVal(value))
        if isinstance(value, float):
            return _ok("double", z3.RealVal(value))
        if isinstance(value, str):
            return _ok("string", z3.StringVal(value))
        if isinstance(value, Other):
            raise Unsupported(value.what)
        raise Unsupported("null")

    def _path(self, path: Path) -> Val:
        if path in STRING_FIELDS:
            return _ok("string", self.symbols.string(path))
        if path in LIST_FIELDS:
            return _ok("strlist", self.symbols.strlist(path))
        if path in STRUCT_ROOTS:
            return Val("struct", None, FALSE, path)
        if path in MESSAGES:
            return Val("msg", None, FALSE, path)
        if path == ("now",):
            raise Unsupported("`now` (time)")
        raise Unsupported(f"the field {'.'.join(path)}")

    def _member(self, base: Val, key: str) -> tuple[Path, z3.BoolRef, z3.BoolRef]:
        """(path, present, error selecting the parent) of `base.key` on a struct or JSON."""
        if base.sort == "msg":
            raise Unsupported("a message field outside the request's fields")
        if base.sort not in ("struct", "dyn"):
            raise Unsupported(f"selecting a field of a {base.sort}")
        path = (*base.path, key)
        v = self.symbols.value(path)
        parent_err = base.err
        if base.sort == "dyn":
            parent_err = z3.Or(base.err, self.symbols.value(base.path).kind != OBJ)
        return path, v.present, parent_err

    def _select(self, node: Select) -> Val:
        base = self.expr(node.operand)
        if base.sort == "msg":
            if node.test_only:
                return self._has_field((*base.path, node.field))
            return self._path((*base.path, node.field))
        path, present, parent_err = self._member(base, node.field)
        if node.test_only:
            return Val("bool", present, parent_err)
        return Val("dyn", None, z3.Or(parent_err, z3.Not(present)), path)

    def _has_field(self, path: Path) -> Val:
        """`has()` of a message field: proto3 presence (non-empty, for scalars and lists)."""
        if path in STRING_FIELDS:
            return _ok("bool", self.symbols.string(path) != z3.StringVal(""))
        if path in LIST_FIELDS:
            return _ok("bool", z3.Length(self.symbols.strlist(path)) > 0)
        if path in STRUCT_ROOTS or path in MESSAGES:
            # Set or not is not tied to its contents: the solver may choose.
            return _ok("bool", self.symbols.fresh(z3.BoolSort(), "has_" + "_".join(path)))
        raise Unsupported(f"has() of the field {'.'.join(path)}")

    # --- typed views ---------------------------------------------------------------

    def bool(self, v: Val) -> Val:
        """`v` where a bool is required (a JSON value of another kind fails)."""
        if v.sort == "bool":
            return v
        if v.sort == "dyn":
            j = self.symbols.value(v.path)
            return Val("bool", j.bool, z3.Or(v.err, j.kind != BOOL))
        raise Unsupported(f"a {v.sort} used as a condition")

    def string(self, v: Val) -> Val:
        """`v` where a string is required."""
        if v.sort == "string":
            return v
        if v.sort == "dyn":
            j = self.symbols.value(v.path)
            return Val("string", j.str, z3.Or(v.err, j.kind != STR))
        raise Unsupported(f"a {v.sort} used as a string")

    def number(self, v: Val) -> Val:
        """`v` as a real (ints and doubles compare numerically in CEL)."""
        if v.sort == "int":
            return Val("double", z3.ToReal(v.term), v.err)  # type: ignore[arg-type]
        if v.sort == "double":
            return v
        if v.sort == "dyn":
            j = self.symbols.value(v.path)
            return Val("double", j.num, z3.Or(v.err, j.kind != NUM))
        raise Unsupported(f"a {v.sort} used as a number")

    # --- calls ---------------------------------------------------------------------

    def _call(self, node: Call) -> Val:
        fn, args = node.function, node.args
        if fn in ("_&&_", "_||_"):
            return self._logic(fn == "_&&_", [self.bool(self.expr(a)) for a in args])
        if fn == "!_":
            v = self.bool(self.expr(args[0]))
            return Val("bool", z3.Not(v.term), v.err)
        if fn == "_?_:_":
            c = self.bool(self.expr(args[0]))
            a, b = self.expr(args[1]), self.expr(args[2])
            a, b = self._unify(a, b)
            term = z3.If(c.term, a.term, b.term)  # type: ignore[arg-type]
            return Val(a.sort, term, z3.Or(c.err, z3.If(c.term, a.err, b.err)))
        if fn in ("_==_", "_!=_"):
            eq = self._equal(self.expr(args[0]), self.expr(args[1]))
            return eq if fn == "_==_" else Val("bool", z3.Not(eq.term), eq.err)
        if fn in _ORDER:
            a, b = self.number(self.expr(args[0])), self.number(self.expr(args[1]))
            x, y = a.term, b.term
            term = {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[_ORDER[fn]]  # type: ignore[operator]
            return Val("bool", term, z3.Or(a.err, b.err))
        if fn in _ARITH:
            return self._arith(fn, self.expr(args[0]), self.expr(args[1]))
        if fn == "-_":
            v = self.expr(args[0])
            if v.sort not in ("int", "double"):
                raise Unsupported(f"negating a {v.sort}")
            err = z3.Or(v.err, v.term == INT64_MIN) if v.sort == "int" else v.err  # type: ignore[operator]
            return Val(v.sort, -v.term, err)  # type: ignore[operator]
        if fn == "@in":
            return self._in(self.expr(args[0]), self.expr(args[1]))
        if fn == "_[_]":
            base, key = self.expr(args[0]), args[1]
            if not (isinstance(key, Const) and isinstance(key.value, str)):
                raise Unsupported("indexing with a computed or non-string key")
            path, present, parent_err = self._member(base, key.value)
            return Val("dyn", None, z3.Or(parent_err, z3.Not(present)), path)
        if fn in ("startsWith", "endsWith", "contains") and node.target is not None:
            s, t = self.string(self.expr(node.target)), self.string(self.expr(args[0]))
            op = {"startsWith": z3.PrefixOf, "endsWith": z3.SuffixOf, "contains": z3.Contains}
            term = op[fn](t.term, s.term) if fn != "contains" else z3.Contains(s.term, t.term)
            return Val("bool", term, z3.Or(s.err, t.err))
        if fn == "size":
            return self._size(self.expr(node.target if node.target is not None else args[0]))
        if fn in ("double", "int", "string") and node.target is None and len(args) == 1:
            return self._convert(fn, self.expr(args[0]))
        raise Unsupported(f"the function {fn.strip('_@!') or fn}()")

    def _logic(self, conj: bool, vs: list[Val]) -> Val:
        # The decisive value (false for &&, true for ||) of any side wins over errors.
        decisive = [z3.And(z3.Not(v.err), v.term if not conj else z3.Not(v.term)) for v in vs]
        err = z3.And(z3.Or(*(v.err for v in vs)), z3.Not(z3.Or(*decisive)))
        term = z3.And(*(v.term for v in vs)) if conj else z3.Or(*(v.term for v in vs))
        return Val("bool", term, err)

    def _unify(self, a: Val, b: Val) -> tuple[Val, Val]:
        if a.sort == b.sort and a.sort in ("bool", "int", "double", "string"):
            return a, b
        if {a.sort, b.sort} <= {"int", "double", "dyn"} and "dyn" not in (a.sort, b.sort):
            raise Unsupported("a conditional mixing int and double")
        for want in ("bool", "string", "double", "int"):
            if want in (a.sort, b.sort) and "dyn" in (a.sort, b.sort):
                view = {"bool": self.bool, "string": self.string}.get(want, self.number)
                return view(a), view(b)
        raise Unsupported(f"a conditional between {a.sort} and {b.sort}")

    def _equal(self, a: Val, b: Val) -> Val:
        err = z3.Or(a.err, b.err)
        if a.sort == "dyn" and b.sort == "dyn":
            raise Unsupported("comparing two untyped values")
        if b.sort == "dyn":
            a, b = b, a
        if a.sort == "dyn":
            # Heterogeneous equality: a JSON value of another kind is unequal, not an error.
            j = self.symbols.value(a.path)
            if b.sort in ("int", "double"):
                term = z3.And(j.kind == NUM, j.num == self.number(b).term)
            elif b.sort == "string":
                term = z3.And(j.kind == STR, j.str == b.term)
            elif b.sort == "bool":
                term = z3.And(j.kind == BOOL, j.bool == b.term)
            else:
                raise Unsupported(f"comparing an untyped value with a {b.sort}")
            return Val("bool", term, err)
        if {a.sort, b.sort} <= {"int", "double"}:
            return Val("bool", self.number(a).term == self.number(b).term, err)
        if a.sort == b.sort and a.sort in ("bool", "string", "strlist"):
            return Val("bool", a.term == b.term, err)  # type: ignore[operator]
        raise Unsupported(f"comparing a {a.sort} with a {b.sort}")

    def _arith(self, fn: str, a: Val, b: Val) -> Val:
        err = z3.Or(a.err, b.err)
        if fn == "_+_" and a.sort == "string" and b.sort == "string":
            return Val("string", z3.Concat(a.term, b.term), err)  # type: ignore[arg-type]
        if "dyn" in (a.sort, b.sort):
            # Struct numbers are doubles: with an int the engine finds no overload.
            other = b if a.sort == "dyn" else a
            if other.sort == "int":
                return Val("int", self.symbols.fresh(z3.IntSort(), "arith"), z3.BoolVal(True))
            a, b = self.number(a), self.number(b)
        if a.sort != b.sort or a.sort not in ("int", "double"):
            raise Unsupported(f"arithmetic on {a.sort} and {b.sort}")
        x, y = a.term, b.term
        term = {"_+_": x + y, "_-_": x - y, "_*_": x * y}[fn]  # type: ignore[operator]
        if a.sort == "int":
            err = z3.Or(err, term < INT64_MIN, term > INT64_MAX)
        return Val(a.sort, term, z3.Or(err, a.err, b.err))

    def _in(self, elem: Val, coll: Val) -> Val:
        if coll.sort == "list":
            eqs = [self._equal(elem, item) for item in coll.items]
            term = z3.Or(FALSE, *(e.term for e in eqs))
            return Val("bool", term, z3.Or(coll.err, *(e.err for e in eqs)))
        if coll.sort == "strlist":
            s = self.string(elem)
            return Val("bool", z3.Contains(coll.term, z3.Unit(s.term)), z3.Or(s.err, coll.err))  # type: ignore[arg-type]
        raise Unsupported(f"`in` on a {coll.sort}")

    def _size(self, v: Val) -> Val:
        if v.sort in ("string", "strlist"):
            return Val("int", z3.Length(v.term), v.err)  # type: ignore[arg-type]
        if v.sort == "list":
            return Val("int", z3.IntVal(len(v.items)), v.err)
        if v.sort == "dyn":
            j = self.symbols.value(v.path)
            ok = z3.Or(j.kind == STR, j.kind == LIST, j.kind == OBJ)
            return Val("int", j.size, z3.Or(v.err, z3.Not(ok)))
        raise Unsupported(f"size() of a {v.sort}")

    def _convert(self, fn: str, v: Val) -> Val:
        if fn == "double":
            if v.sort in ("int", "double"):
                return self.number(v)
            if v.sort == "dyn":
                # double("12.5") parses: a string's value is not modelled, only that it may work.
                j = self.symbols.value(v.path)
                self.symbols.parsed.add(v.path)
                term = z3.If(j.kind == NUM, j.num, j.parsed)
                bad = z3.And(j.kind != NUM, z3.Or(j.kind != STR, j.unparsable))
                return Val("double", term, z3.Or(v.err, bad))
            raise Unsupported(f"double() of a {v.sort}")
        if fn == "int":
            if v.sort == "int":
                return v
            if v.sort != "double":  # int("12") parses strings: not modelled
                raise Unsupported(f"int() of a {v.sort}")
            n, x = v, v.term
            term = z3.If(x >= 0, z3.ToInt(x), -z3.ToInt(-x))  # type: ignore[operator]
            return Val("int", term, z3.Or(n.err, x <= INT64_MIN - 1, x >= INT64_MAX + 1))  # type: ignore[operator]
        if v.sort == "string":
            return v
        if v.sort in ("int", "double", "bool", "dyn"):
            # Only a reason's failure is ever needed from string(): its text is not modelled.
            err = v.err
            if v.sort == "dyn":
                # Which JSON kinds string() accepts is not modelled: the solver may choose.
                kind = self.symbols.value(v.path).kind
                scalar = z3.Or(kind == STR, kind == NUM, kind == BOOL)
                unknown = self.symbols.fresh(z3.BoolSort(), "string_failed")
                err = z3.Or(err, z3.And(z3.Not(scalar), unknown))
            return Val("string", self.symbols.fresh(z3.StringSort(), "text"), err)
        raise Unsupported(f"string() of a {v.sort}")
