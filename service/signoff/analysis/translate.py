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

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

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
    Json,
    Path,
    Symbols,
)
from signoff.analysis.tree import Call, Comprehension, Const, Ident, ListLit, Node, Other, Select

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_ORDER = {"_<_": "<", "_<=_": "<=", "_>_": ">", "_>=_": ">="}
_ARITH = {"_+_", "_-_", "_*_"}
MAX_UNROLLED = 64  # elements of a list literal a loop (all, exists, ...) is unrolled over
MAX_STEPS = 1024  # unrolled steps per expression: nested loops multiply
_NOT_STRICTLY_FALSE = ("@not_strictly_false", "__not_strictly_false__")
_OPTIONAL_SELECT = ("_?._", "_[?_]")
# lowerAscii()/upperAscii(): a Val of this sort holds the text before folding.
_FOLDED = ("lowerAscii", "upperAscii")
_ANY = z3.Star(z3.AllChar(z3.ReSort(z3.StringSort())))


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


FALSE = z3.BoolVal(False)


def _ok(sort: str, term: object) -> Val:
    return Val(sort, term, FALSE)


class Translator:
    """Translates ASTs against one set of request variables."""

    def __init__(self, symbols: Symbols) -> None:
        self.symbols = symbols
        self.locals: dict[str, Val] = {}  # loop and cel.bind variables in scope
        self.steps = 0  # loop steps unrolled so far

    @contextmanager
    def _scope(self, names: dict[str, Val]) -> Iterator[None]:
        saved = self.locals
        self.locals = {**saved, **names}
        try:
            yield
        finally:
            self.locals = saved

    def _json(self, v: Val) -> Json:
        """The JSON variables of a dyn value."""
        return v.json if v.json is not None else self.symbols.value(v.path)

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
            if node.name in self.locals:
                return self.locals[node.name]
            return self._path((node.name,))
        if isinstance(node, Select):
            return self._select(node)
        if isinstance(node, Call):
            return self._call(node)
        if isinstance(node, ListLit):
            items = tuple(self.expr(e) for e in node.elements)
            return Val("list", None, z3.Or(FALSE, *(i.err for i in items)), items=items)
        if isinstance(node, Comprehension):
            return self._loop(node)
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
        if base.sort not in ("struct", "dyn") or base.json is not None:
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
            target, needle = self.expr(node.target), self.expr(args[0])
            if target.sort in _FOLDED:
                return _folded_match(fn, target, needle)
            s, t = self.string(target), self.string(needle)
            op = {"startsWith": z3.PrefixOf, "endsWith": z3.SuffixOf, "contains": z3.Contains}
            term = op[fn](t.term, s.term) if fn != "contains" else z3.Contains(s.term, t.term)
            return Val("bool", term, z3.Or(s.err, t.err))
        if fn == "size":
            return self._size(self.expr(node.target if node.target is not None else args[0]))
        if fn in ("double", "int", "string") and node.target is None and len(args) == 1:
            return self._convert(fn, self.expr(args[0]))
        if fn in _NOT_STRICTLY_FALSE:  # a loop's condition: true unless false
            v = self.bool(self.expr(args[0]))
            return _ok("bool", z3.Or(v.err, v.term))
        if fn in ("math.@max", "math.@min"):
            return self._extreme(fn == "math.@max", args)
        if fn == "math.abs" and len(args) == 1:
            return self._abs(self.expr(args[0]))
        if fn in _OPTIONAL_SELECT:
            return self._optional_select(self.expr(args[0]), args[1])
        if fn in ("orValue", "hasValue", "value") and node.target is not None:
            return self._optional_call(fn, self.expr(node.target), args)
        if fn in _FOLDED and node.target is not None and not args:
            # Kept as the original text: only a comparison with a literal is exact.
            v = self.string(self.expr(node.target))
            return Val(fn, v.term, v.err)
        if fn in ("indexOf", "lastIndexOf", "substring", "charAt") and node.target is not None:
            return self._text_call(fn, self.string(self.expr(node.target)), args)
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
        if b.sort in _FOLDED:
            a, b = b, a
        if a.sort in _FOLDED:
            return _folded_match("==", a, b)
        if a.sort == "dyn" and b.sort == "dyn":
            raise Unsupported("comparing two untyped values")
        if b.sort == "dyn":
            a, b = b, a
        if a.sort == "dyn":
            # Heterogeneous equality: a JSON value of another kind is unequal, not an error.
            j = self._json(a)
            if b.sort in ("int", "double", "num"):
                term = z3.And(j.kind == NUM, j.num == self.number(b).term)
            elif b.sort == "string":
                term = z3.And(j.kind == STR, j.str == b.term)
            elif b.sort == "bool":
                term = z3.And(j.kind == BOOL, j.bool == b.term)
            else:
                raise Unsupported(f"comparing an untyped value with a {b.sort}")
            return Val("bool", term, err)
        if {a.sort, b.sort} <= {"int", "double", "num"}:
            return Val("bool", self.number(a).term == self.number(b).term, err)
        if a.sort == b.sort and a.sort in ("bool", "string", "strlist"):
            return Val("bool", a.term == b.term, err)  # type: ignore[operator]
        raise Unsupported(f"comparing a {a.sort} with a {b.sort}")

    def _arith(self, fn: str, a: Val, b: Val) -> Val:
        err = z3.Or(a.err, b.err)
        if fn == "_+_" and a.sort == "string" and b.sort == "string":
            return Val("string", z3.Concat(a.term, b.term), err)  # type: ignore[arg-type]
        if a.json is not None or b.json is not None:
            raise Unsupported("arithmetic on an optional's value")
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
        if v.sort in ("string", "strlist", *_FOLDED):
            return Val("int", z3.Length(v.term), v.err)  # type: ignore[arg-type]
        if v.sort == "list":
            return Val("int", z3.IntVal(len(v.items)), v.err)
        if v.sort == "dyn":
            j = self._json(v)
            ok = z3.Or(j.kind == STR, j.kind == LIST, j.kind == OBJ)
            return Val("int", j.size, z3.Or(v.err, z3.Not(ok)))
        raise Unsupported(f"size() of a {v.sort}")

    def _convert(self, fn: str, v: Val) -> Val:
        if fn == "double":
            if v.sort in ("int", "double"):
                return self.number(v)
            if v.sort == "dyn" and v.json is None:
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
                kind = self._json(v).kind
                scalar = z3.Or(kind == STR, kind == NUM, kind == BOOL)
                unknown = self.symbols.fresh(z3.BoolSort(), "string_failed")
                err = z3.Or(err, z3.And(z3.Not(scalar), unknown))
            return Val("string", self.symbols.fresh(z3.StringSort(), "text"), err)
        raise Unsupported(f"string() of a {v.sort}")

    # --- loops and cel.bind ----------------------------------------------------------

    def _loop(self, c: Comprehension) -> Val:
        """A macro's loop, unrolled over a list literal (cel.bind: over no element).

        Each step is translated with the loop variables bound to the element's value, so
        errors stay values as in the engine: `all` is false when one element is false
        even if another fails, and a cel.bind whose value fails is fine unless used."""
        rng = self.expr(c.range)
        if rng.sort != "list":
            raise Unsupported(f"a loop (all, exists, ...) over a {rng.sort}")
        if len(rng.items) > MAX_UNROLLED:
            raise Unsupported(f"a loop over more than {MAX_UNROLLED} elements")
        accu = self.expr(c.init)
        if accu.sort == "list" and rng.items:  # cel.bind of a list literal is fine
            raise Unsupported("a loop that builds a list (map, filter)")
        running: z3.BoolRef = z3.BoolVal(True)
        failed: z3.BoolRef = FALSE
        for k, item in enumerate(rng.items):
            self.steps += 1
            if self.steps > MAX_STEPS:
                raise Unsupported(f"loops of more than {MAX_STEPS} steps in all")
            bound = {c.var: item} if not c.var2 else {c.var: _ok("int", z3.IntVal(k)), c.var2: item}
            with self._scope({**bound, c.accu: accu}):
                cond = self.bool(self.expr(c.condition))
                step = self.expr(c.step)
            failed = z3.Or(failed, z3.And(running, cond.err))
            running = z3.And(running, z3.Not(cond.err), cond.term)
            accu = _merge(running, step, accu)
        with self._scope({c.accu: accu}):
            result = self.expr(c.result)
        return replace(result, err=z3.Or(rng.err, failed, result.err))

    # --- extensions: math, optional values, strings -----------------------------------

    def _extreme(self, greatest: bool, args: tuple[Node, ...]) -> Val:
        """math.greatest / math.least: numeric, strict in every argument."""
        if len(args) == 1:
            only = self.expr(args[0])
            if only.sort in ("int", "double"):
                return only
            if only.sort != "list":
                raise Unsupported(f"math.{'greatest' if greatest else 'least'}() of a {only.sort}")
            values = list(only.items)
        else:
            values = [self.expr(a) for a in args]
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

    def _abs(self, v: Val) -> Val:
        if v.sort == "int":
            x = v.term
            return Val("int", z3.If(x >= 0, x, -x), z3.Or(v.err, x == INT64_MIN))  # type: ignore[operator]
        if v.sort in ("double", "dyn"):
            n = self.number(v)
            return Val("double", z3.If(n.term >= 0, n.term, -n.term), n.err)  # type: ignore[operator]
        raise Unsupported(f"math.abs() of a {v.sort}")

    def _optional_select(self, base: Val, key: Node) -> Val:
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

    def _optional_call(self, fn: str, opt: Val, args: tuple[Node, ...]) -> Val:
        if opt.sort != "opt":
            raise Unsupported(f"{fn}() of a {opt.sort}")
        has = opt.term
        if fn == "hasValue":
            return Val("bool", has, opt.err)
        if fn == "value":
            return Val("dyn", None, z3.Or(opt.err, z3.Not(has)), opt.path)  # type: ignore[arg-type]
        default = self.expr(args[0])  # orValue: the default counts only when it is used
        inner = self.symbols.value(opt.path)
        other = self._lifted(default)
        fields = ("present", "kind", "num", "str", "bool", "size", "parsed", "unparsable")
        merged = Json(*(z3.If(has, getattr(inner, f), getattr(other, f)) for f in fields))
        err = z3.Or(opt.err, z3.And(z3.Not(has), default.err))  # type: ignore[arg-type]
        return Val("dyn", None, err, json=merged)

    def _lifted(self, v: Val) -> Json:
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

    def _text_call(self, fn: str, s: Val, args: tuple[Node, ...]) -> Val:
        """indexOf, lastIndexOf, substring, charAt: z3's string theory, with the engine's
        range errors (each checked against it in tests/unit/test_analysis_extensions.py)."""
        n = z3.Length(s.term)  # type: ignore[arg-type]
        vals = [self.expr(a) for a in args]
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


def _merge(cond: z3.BoolRef, a: Val, b: Val) -> Val:
    """`a` when `cond`, else `b` (a loop's accumulator after one step)."""
    if a.sort != b.sort or a.sort not in ("bool", "int", "double", "string"):
        raise Unsupported(f"a loop whose value is a {a.sort}")
    return Val(a.sort, z3.If(cond, a.term, b.term), z3.If(cond, a.err, b.err))  # type: ignore[arg-type]


def _folded_match(how: str, folded: Val, literal: Val) -> Val:
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
