"""CEL (the subset policies use) -> z3 terms, with CEL's errors modelled exactly.

Every translated expression is a value and an error condition: `a.b` on a missing key, a
number where a string was needed, an int overflow are errors, and the engine turns a rule's
error into its `on_error` effect, so the analysis must know exactly when they happen.
`&&` and `||` absorb an error when the other side decides (false, resp. true), as in CEL.

Doubles are modelled as reals (no rounding, no NaN or infinity: JSON carries neither);
every counterexample is re-checked by the real engine, so this can only cost a finding,
never invent one. A construct outside the subset raises `Unsupported`, and the caller says
"not analysed" instead of guessing. The typed views live in values.py, the extension
functions in extensions.py; the loops (all, exists, cel.bind) are unrolled here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import z3

from signoff.analysis.extensions import FOLDED, Extensions, folded_match, merge_json
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
from signoff.analysis.tree import Call, Comprehension, Const, Ident, ListLit, Node, Other, Select
from signoff.analysis.values import FALSE, INT64_MAX, INT64_MIN, Unsupported, Val, ok

__all__ = ["Translator", "Unsupported", "Val"]

_ORDER = {"_<_": "<", "_<=_": "<=", "_>_": ">", "_>=_": ">="}
_ARITH = {"_+_", "_-_", "_*_"}
MAX_UNROLLED = 64  # elements of a list literal a loop (all, exists, ...) is unrolled over
MAX_STEPS = 1024  # unrolled steps per expression: nested loops multiply
_NOT_STRICTLY_FALSE = ("@not_strictly_false", "__not_strictly_false__")
_OPTIONAL_SELECT = ("_?._", "_[?_]")


class Translator(Extensions):
    """Translates ASTs against one set of request variables."""

    def __init__(self, symbols: Symbols) -> None:
        super().__init__(symbols)
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
            return ok("bool", z3.BoolVal(value))
        if isinstance(value, int):
            return ok("int", z3.IntVal(value))
        if isinstance(value, float):
            return ok("double", z3.RealVal(value))
        if isinstance(value, str):
            return ok("string", z3.StringVal(value))
        if isinstance(value, Other):
            raise Unsupported(value.what)
        raise Unsupported("null")

    def _path(self, path: Path) -> Val:
        if path in STRING_FIELDS:
            return ok("string", self.symbols.string(path))
        if path in LIST_FIELDS:
            return ok("strlist", self.symbols.strlist(path))
        if path in STRUCT_ROOTS:
            return Val("struct", None, FALSE, path)
        if path in MESSAGES:
            return Val("msg", None, FALSE, path)
        if path == ("now",):
            raise Unsupported("`now` (time)")
        raise Unsupported(f"the field {'.'.join(path)}")

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
            return ok("bool", self.symbols.string(path) != z3.StringVal(""))
        if path in LIST_FIELDS:
            return ok("bool", z3.Length(self.symbols.strlist(path)) > 0)
        if path in STRUCT_ROOTS or path in MESSAGES:
            # Set or not is not tied to its contents: the solver may choose.
            return ok("bool", self.symbols.fresh(z3.BoolSort(), "has_" + "_".join(path)))
        raise Unsupported(f"has() of the field {'.'.join(path)}")

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
            err = z3.Or(c.err, z3.If(c.term, a.err, b.err))
            if "dyn" in (a.sort, b.sort):
                # A JSON value on one side: the result is JSON of either side's kind (a
                # string where a number was expected fails only where it is used).
                merged = merge_json(c.term, self.lifted(a), self.lifted(b))  # type: ignore[arg-type]
                return Val("dyn", None, err, json=merged)
            a, b = self._unify(a, b)
            term = z3.If(c.term, a.term, b.term)  # type: ignore[arg-type]
            return Val(a.sort, term, err)
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
            if target.sort in FOLDED:
                return folded_match(fn, target, needle)
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
            return ok("bool", z3.Or(v.err, v.term))
        if fn in ("math.@max", "math.@min"):
            return self.extreme(fn == "math.@max", [self.expr(a) for a in args])
        if fn == "math.abs" and len(args) == 1:
            return self.absolute(self.expr(args[0]))
        if fn in _OPTIONAL_SELECT:
            return self.optional_select(self.expr(args[0]), args[1])
        if fn in ("orValue", "hasValue", "value") and node.target is not None:
            default = self.expr(args[0]) if args else None
            return self.optional_call(fn, self.expr(node.target), default)
        if fn in FOLDED and node.target is not None and not args:
            # Kept as the original text: only a comparison with a literal is exact.
            v = self.string(self.expr(node.target))
            return Val(fn, v.term, v.err)
        if fn in ("indexOf", "lastIndexOf", "substring", "charAt") and node.target is not None:
            target = self.string(self.expr(node.target))
            return self.text_call(fn, target, [self.expr(a) for a in args])
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
        if {a.sort, b.sort} <= {"int", "double"}:
            raise Unsupported("a conditional mixing int and double")
        raise Unsupported(f"a conditional between {a.sort} and {b.sort}")

    def _equal(self, a: Val, b: Val) -> Val:
        err = z3.Or(a.err, b.err)
        if b.sort in FOLDED:
            a, b = b, a
        if a.sort in FOLDED:
            return folded_match("==", a, b)
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
            raise Unsupported("arithmetic on a computed JSON value (orValue, a conditional)")
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
        if v.sort in ("string", "strlist", *FOLDED):
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
            if v.sort == "dyn" and v.json is None:
                return self._int_of_json(v)
            if v.sort != "double":
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

    def _int_of_json(self, v: Val) -> Val:
        """int() of a JSON value: a number truncates (failing out of range), a bool is 0 or
        1, a string parses. Like double(), a string's number is not tied to its text: it
        is the path's parsed number when whole, and whether int() accepts the text is free
        (int("12.0") fails where double() does not), so every real outcome is a model."""
        j = self.symbols.value(v.path)
        self.symbols.parsed.add(v.path)
        key = "int_unparsable\0" + ".".join(v.path)
        refused = self.symbols.opaque(z3.BoolSort(), "int_unparsable", key)
        self.symbols.int_read[v.path] = refused  # type: ignore[assignment]
        x = self.number(Val("double", j.num, FALSE)).term
        truncated = z3.If(x >= 0, z3.ToInt(x), -z3.ToInt(-x))  # type: ignore[operator]
        parsed = z3.ToInt(j.parsed)  # type: ignore[arg-type]
        whole = z3.And(z3.Not(j.unparsable), z3.IsInt(j.parsed))  # type: ignore[arg-type]
        term = z3.If(j.kind == NUM, truncated, z3.If(j.kind == BOOL, z3.If(j.bool, 1, 0), parsed))
        in_range = z3.And(parsed >= INT64_MIN, parsed <= INT64_MAX)
        err = z3.Or(
            v.err,
            z3.And(j.kind == NUM, z3.Or(x <= INT64_MIN - 1, x >= INT64_MAX + 1)),  # type: ignore[operator]
            z3.And(j.kind == STR, z3.Or(refused, z3.Not(whole), z3.Not(in_range))),  # type: ignore[arg-type]
            z3.Not(z3.Or(j.kind == NUM, j.kind == BOOL, j.kind == STR)),
        )
        return Val("int", term, err)

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
            bound = {c.var: item} if not c.var2 else {c.var: ok("int", z3.IntVal(k)), c.var2: item}
            with self._scope({**bound, c.accu: accu}):
                cond = self.bool(self.expr(c.condition))
                step = self.expr(c.step)
            failed = z3.Or(failed, z3.And(running, cond.err))
            running = z3.And(running, z3.Not(cond.err), cond.term)
            accu = _merge(running, step, accu)
        with self._scope({c.accu: accu}):
            result = self.expr(c.result)
        return replace(result, err=z3.Or(rng.err, failed, result.err))


def _merge(cond: z3.BoolRef, a: Val, b: Val) -> Val:
    """`a` when `cond`, else `b` (a loop's accumulator after one step)."""
    if a.sort != b.sort or a.sort not in ("bool", "int", "double", "string"):
        raise Unsupported(f"a loop whose value is a {a.sort}")
    return Val(a.sort, z3.If(cond, a.term, b.term), z3.If(cond, a.err, b.err))  # type: ignore[arg-type]
