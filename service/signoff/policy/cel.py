"""The CEL engine behind one small interface: compile (parse + check), then evaluate.

This is the only module that imports `cel_expr_python` (Google's C++ CEL). The environment
is declared once: `action`, `principal`, `resource` are the proto messages, `context` is
`map(string, dyn)` and `now` a timestamp. `vars.<name>` never reaches the engine: the
loader inlines variables before compiling (see load.py).

Measured with cel-expr-python 0.1.3 (the numbers behind the choices below):

- Numbers: JSON numbers in a Struct are doubles. `action.params.amount > 500` and
  `vars.amount > 500` (double vs int) and `count == 3` are true/false as an author
  expects: comparisons and equality across int, uint and double are numeric, as the CEL
  spec says (see _numeric_comparisons). Arithmetic does not mix types
  (`vars.amount + 1` is a type error: write `1.0` or `double(...)`).

- One `Activation` per request, reused by every rule: 2 µs per rule instead of 8 µs when
  the data dict is converted on each `eval`. `context` is passed as the request's `Struct`
  message itself: as fast as a dict once in an Activation, and no conversion.
- Faster still, one eval per policy (`combine`, a rule batch in bundle.py): every eval
  costs ~1.5 µs before any work, and each variable's message is converted on its first use
  in an activation (~2 µs each). A batch reads the whole request as one variable, from a
  plain data dict: the refund policy's 7 evals (~27 µs) became 1 (~12 µs).
- Unset sub-messages are passed as their proto3 default instances (Python returns one for
  an unset field), so `has(resource.attributes.tier)` is false, never an error.
- Evaluation errors come back two ways: a `Value` of type ERROR (missing key, no matching
  overload, division by zero) or a `RuntimeError` (iteration budget). Both become
  `CelEvalError`.

Runaway CEL. The engine has a fixed iteration budget of 10,000 comprehension iterations
per evaluation, shared by nested comprehensions; the binding exposes no RuntimeOptions and
its YAML env config has no limits section, so it cannot be changed. A triple-nested
`all()` over 1,000 elements stops with "Iteration budget exceeded" after ~2 ms. But
`map()` and `filter()` build their result by list concatenation (`@result + [x]`), so they
are quadratic in the number of kept elements: 1,000 elements take ~14 ms, 5,000 ~0.45 s,
9,999 ~4.5 s, all within the budget. So a program that uses `map`/`filter` refuses to run
(CelEvalError) when any list in the request has more than MAX_MACRO_LIST_ITEMS elements;
the worst case is then about 10 maps of 1,000 (the budget) ≈ 0.15 s. transformList
(two-variable map) is as quadratic and gets the same guard.

Extensions (strings, math, optional, bindings, two-variable macros; see EXTENSIONS). A
function that builds more than it reads from a string (split, replace, join, format) is
linear per call, but a loop can call it 10,000 times on a 256 KiB string, and split()'s
list escapes the list guard above. So a program that loops and calls one of them (split
and replace on a string literal excepted) refuses requests with a string longer than
MAX_BUILDER_STRING_CHARS: 10,000 splits of 1,000 characters ≈ 0.45 s, and a split list
fed to map() is within the list bound. replace()'s replacement and join()'s separator
must be literals (a load error otherwise): `s.replace("", t)` is len(s) * len(t) long.
Figures: bench/cel_hostile.py.

The cost bound (cost.py). Core CEL's string functions are linear too, and so is reading a
request string (the engine copies it): in a loop, `xs.exists(x, s.contains(x))` scanned a
200 KiB string 10,000 times in 11 s. The engine offers no cost limit, tracker or interrupt
(cel-cpp's comprehension and cost options are not exposed by the binding), so compile()
keeps the work inside each loop (cost.shape) and eval() prices it on the request before
running, refusing more than MAX_EVAL_COST (a CelEvalError naming the loops and paths). A
program without loops has no shape and pays nothing. Residual risk, left to policy
review: values an expression builds (`s + s`, a cel.bind of a concatenation, chained
replace() with long literals) count as the largest value they come from, a factor the
author wrote. The parser has its own recursion limit for deeply nested expressions (a
compile error).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cel_expr_python import cel
from google.protobuf import descriptor_pool, struct_pb2

from signoff import pb
from signoff.errors import SignoffError
from signoff.policy import celtext, cost

# The source-text helpers moved to celtext; the loader still reads them here.
from signoff.policy.celtext import Inlined as Inlined
from signoff.policy.celtext import RefError as RefError
from signoff.policy.celtext import Span as Span
from signoff.policy.celtext import Token as Token
from signoff.policy.celtext import enclose as enclose
from signoff.policy.celtext import enclosed as enclosed
from signoff.policy.celtext import inline as inline
from signoff.policy.celtext import prev_is_dot, scan
from signoff.policy.celtext import var_refs as var_refs

MAX_MACRO_LIST_ITEMS = 1000
# A program that builds lists or strings from strings (split, replace, join, format) and
# loops (any comprehension) runs only on requests whose strings are at most this long:
# split() makes at most len + 1 elements, so the lists it builds stay within the bound
# above, and each of the 10,000 iterations the budget allows costs O(this).
MAX_BUILDER_STRING_CHARS = 1000
# What an evaluation that loops may read: per loop iteration, per call or field read in the
# loop, the characters or elements it can touch (cost.py). The worst scan measured costs
# ~1.4 ns a unit (10,000 contains() of 200 KiB in 11 s beside a 10,000-element list),
# so this is ~15-35 ms of the worst; a loop over 100 items of short strings costs ~30,000.
# A constant like the two above: it is the engine's speed, not a deployment's choice.
MAX_EVAL_COST = 10_000_000

_VARIABLES = {
    "action": cel.Type(pb.common.Action.DESCRIPTOR.full_name),
    "principal": cel.Type(pb.common.Principal.DESCRIPTOR.full_name),
    "resource": cel.Type(pb.common.Resource.DESCRIPTOR.full_name),
    "context": cel.Type.Map(cel.Type.STRING, cel.Type.DYN),
    "now": cel.Type.TIMESTAMP,
}


def _numeric_comparisons() -> cel.CelExtension:
    # The C++ runtime compares int, uint and double with each other (as the CEL spec asks),
    # but its type checker only declares same-type overloads, so `vars.amount > 500` with a
    # double variable fails to compile ("no matching overload for '_>_' applied to
    # '(double, int)'"). Declaring the missing overloads in a checker-only environment
    # fixes the check; the checked program is then planned by the runtime environment,
    # whose built-in overloads run it. Adding them to one env fails: "already registered".
    t = cel.Type
    pairs = [(t.DOUBLE, t.INT, "double_int64"), (t.INT, t.DOUBLE, "int64_double")]
    pairs += [(t.DOUBLE, t.UINT, "double_uint64"), (t.UINT, t.DOUBLE, "uint64_double")]
    pairs += [(t.INT, t.UINT, "int64_uint64"), (t.UINT, t.INT, "uint64_int64")]
    ops = {"_<_": "less", "_<=_": "less_equals", "_>_": "greater", "_>=_": "greater_equals"}
    ops |= {"_==_": "equals", "_!=_": "not_equals"}
    decls = [
        cel.FunctionDecl(op, [cel.Overload(f"{name}_{sig}", t.BOOL, [a, b]) for a, b, sig in pairs])
        for op, name in ops.items()
    ]
    return cel.CelExtension("signoff_numeric_comparisons", decls)


# The extensions (cel-expr-python 0.1.3 enables them by name in its YAML env config; the
# `ext` classes offer no two-variable macros). Not enabled: lists (`lists.range(n)` builds
# n elements from one int), sets, regex, encoders. transformMap/transformMapEntry parse but
# fail at evaluation in this engine ("No overload ... cel.@mapInsert"): refused at compile.
EXTENSIONS = ("strings", "math", "optional", "bindings", "two-var-comprehensions")
_CONFIG_YAML = "extensions:\n" + "".join(f"  - name: {name}\n" for name in EXTENSIONS)


def _env(variables: dict[str, Any], check: bool) -> Any:
    config = cel.NewEnvConfigFromYaml(_CONFIG_YAML)
    extensions = [_numeric_comparisons()] if check else []
    env = cel.NewEnv(
        descriptor_pool.Default(), config=config, variables=variables, extensions=extensions
    )
    if not check:
        # The binding sets up Python -> CEL value conversion on an env's first compile; a
        # program only deserialized into a fresh env reports "Non-CEL value type for 'now'".
        env.compile("true")
    return env


# Declared once, immutable, shared by every bundle: like a compiled regex, not state.
_CHECK_ENV = _env(_VARIABLES, check=True)
_RUN_ENV = _env(_VARIABLES, check=False)
# Batches (see combine) read the request as one message: the engine converts each
# variable's message on its first use in an eval (~2 µs each), one message costs about
# what one of the four does. Authors never see this name: every expression in a batch
# was first compiled on its own, in the environments above, which do not declare it.
_REQUEST = "__request"
_REQUEST_FIELDS = {"action", "principal", "resource", "context"}
_BATCH_VARIABLES = {**_VARIABLES, _REQUEST: cel.Type(pb.common.ActionRequest.DESCRIPTOR.full_name)}
_BATCH_CHECK_ENV = _env(_BATCH_VARIABLES, check=True)
_BATCH_RUN_ENV = _env(_BATCH_VARIABLES, check=False)
_ERROR = cel.Type.ERROR
_NEVER_ERRORS = (bool, list)  # Python types of plain values that no ERROR value has
# Results plain_value() converts whatever the value: no optional can hide inside them.
_PLAIN_TYPES = {"BOOL", "STRING", "INT", "UINT", "DOUBLE", "BYTES", "TIMESTAMP", "DURATION"}
_ISSUE_RE = re.compile(r"ERROR: <input>:(\d+):(\d+): ([^\n]*)")
_STATUS_RE = re.compile(r"^[A-Z_]+: |\s*\[[A-Z_]+\]$")


class CelError(SignoffError):
    """A compile error at 1-based (line, column) of the expression; `more` holds the rest."""

    def __init__(
        self, line: int, column: int, message: str, more: tuple[CelError, ...] = ()
    ) -> None:
        super().__init__(f"{line}:{column}: {message}")
        self.line = line
        self.column = column
        self.message = message
        self.more = more


class CelEvalError(SignoffError):
    """An expression failed to evaluate for this request."""


@dataclass(frozen=True)
class Program:
    """A compiled, type-checked expression, reusable across requests."""

    expr: str
    return_type: str
    uses_list_macros: bool
    _expression: Any = field(repr=False, compare=False)
    whole_request: bool = False  # reads the request as one variable (a batch)
    bounds_strings: bool = False  # builds lists/strings from strings inside a loop
    plain: bool = True  # of a type plain_value() converts safely (see _shown)
    cost: Any = None  # cost.Shape: the work inside its loops; None without loops

    def eval(self, activation: Activation) -> Any:
        """Evaluate against a request; return a plain Python value or raise CelEvalError."""
        if self.uses_list_macros and activation.largest_list() > MAX_MACRO_LIST_ITEMS:
            raise CelEvalError(
                f"a list in the request has {activation.largest_list()} elements; map() and "
                f"filter() run only on lists of at most {MAX_MACRO_LIST_ITEMS} "
                "(use exists() or all(), which are linear)"
            )
        if self.bounds_strings and activation.longest_string() > MAX_BUILDER_STRING_CHARS:
            raise CelEvalError(
                f"a string in the request has {activation.longest_string()} characters; an "
                "expression that loops and calls split(), replace(), join() or format() runs "
                f"only on strings of at most {MAX_BUILDER_STRING_CHARS}"
            )
        if self.cost:
            self._check_cost(activation)
        try:
            if self.whole_request:
                data = {_REQUEST: activation.request, "now": activation.now}
                value = self._expression.eval(data=data)
            else:
                value = self._expression.eval(activation.cel)
        except RuntimeError as exc:
            raise CelEvalError(_clean(str(exc))) from None
        if not self.plain:
            return _shown(value)
        try:
            plain = value.plain_value()
        except (TypeError, SystemError):  # an optional in a list: never a crash
            return _shown(value)
        # Checking the type costs ~0.5 µs; a bool or a list (a `when`, a batch) is no error.
        if type(plain) not in _NEVER_ERRORS and value.type() == _ERROR:
            raise CelEvalError(_clean(str(value.value())))
        return plain

    def serialized(self) -> bytes:
        """The checked expression: a cel.expr.CheckedExpr in a google.protobuf.Any."""
        return bytes(self._expression.serialize())

    def _check_cost(self, activation: Activation) -> None:
        """Refuse, before it runs, an evaluation whose loops could cost over MAX_EVAL_COST."""
        found = cost.over(self.cost, activation.request, activation.sizes, MAX_EVAL_COST)
        if found is not None:
            raise CelEvalError(
                f"on this request the loops of this expression could read {found.total:,} "
                f"characters or elements, over the limit of {MAX_EVAL_COST:,}: "
                f"{cost.describe(found)}; loop over fewer or smaller values, or keep "
                "string functions on large values out of loops"
            )


class Activation:
    """The CEL variables of one request; build once, evaluate every rule against it."""

    def __init__(self, request: pb.common.ActionRequest, now: dt.datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.request = request
        self.now = now
        self._cel: Any = None
        self._largest: int | None = None
        self._longest: int | None = None
        self.sizes: dict[Any, Any] = {}  # cost.bound's, per request path

    @property
    def cel(self) -> Any:
        """The engine's activation, built on first use: a batch does not need it."""
        if self._cel is None:
            r = self.request
            self._cel = _RUN_ENV.Activation(
                {
                    "action": r.action,
                    "principal": r.principal,
                    "resource": r.resource,
                    "context": r.context,
                    "now": self.now,
                }
            )
        return self._cel

    def largest_list(self) -> int:
        """Length of the longest list anywhere in the request (computed once, on demand)."""
        if self._largest is None:
            r = self.request
            p, claimed = r.principal, r.principal.claimed
            structs = [r.action.params, p.attributes, claimed.attributes]
            structs += [r.resource.attributes, r.context]
            lists = (p.tags, p.roles, claimed.tags, claimed.roles)
            self._largest = max(*map(len, lists), *(_sizes_in(s)[0] for s in structs))
        return self._largest

    def longest_string(self) -> int:
        """Length in characters of the longest string anywhere in the request (keys too)."""
        if self._longest is None:
            r = self.request
            p, claimed = r.principal, r.principal.claimed
            structs = [r.action.params, p.attributes, claimed.attributes]
            structs += [r.resource.attributes, r.context]
            strings = [r.action.name, p.id, p.kind, p.on_behalf_of, claimed.kind]
            strings += [claimed.on_behalf_of, r.resource.kind, r.resource.id]
            strings += [*p.tags, *p.roles, *claimed.tags, *claimed.roles]
            self._longest = max(*map(len, strings), *(_sizes_in(s)[1] for s in structs))
        return self._longest


def _sizes_in(struct: struct_pb2.Struct) -> tuple[int, int]:
    """(longest list, longest string or key) in a Struct."""
    largest = 0
    stack: list[struct_pb2.Value] = list(struct.fields.values())
    longest = max(map(len, struct.fields), default=0)
    while stack:
        value = stack.pop()
        kind = value.WhichOneof("kind")
        if kind == "string_value":
            longest = max(longest, len(value.string_value))
        elif kind == "list_value":
            largest = max(largest, len(value.list_value.values))
            stack.extend(value.list_value.values)
        elif kind == "struct_value":
            fields = value.struct_value.fields
            longest = max(longest, *map(len, fields)) if fields else longest
            stack.extend(fields.values())
    return largest, longest


def compile(expr: str) -> Program:
    """Parse and type-check `expr`; raise CelError with the first error's position."""
    try:
        checked = _CHECK_ENV.compile(expr)
        expression = _RUN_ENV.deserialize(checked.serialize())
    except RuntimeError as exc:
        raise _compile_error(str(exc)) from None
    try:
        calls = celtext.calls(expr)
    except celtext.CallError as exc:
        raise CelError(*_line_column(expr, exc.offset), exc.message) from None
    macros = bool(calls.names & celtext.LIST_MACROS)
    strings = bool(calls.builders) and bool(calls.names & celtext.LOOPS)
    return_type = expression.return_type().name()
    plain = return_type in _PLAIN_TYPES
    program = Program(expr, return_type, macros, expression, bounds_strings=strings, plain=plain)
    return _costed(program)


def _costed(program: Program) -> Program:
    """`program` with the terms of its loops (cost.shape); as is when it has none."""
    found = cost.shape(program.serialized())
    return program if found is None else dataclasses.replace(program, cost=found)


def check_typed(expr: str, declared: dict[str, str]) -> str:
    """Type-check `expr` with extra identifiers of the given types (see params.rewrite) and
    return its type's name; raise CelError at the first problem. Nothing here is run."""
    env = _typed_env(tuple(sorted(declared.items())))
    try:
        return str(env.compile(expr).return_type().name())
    except RuntimeError as exc:
        raise _compile_error(str(exc)) from None


def _cel_type(name: str) -> Any:
    if name.startswith("list:"):
        return cel.Type.List(_cel_type(name.removeprefix("list:")))
    simple = {"double": cel.Type.DOUBLE, "string": cel.Type.STRING, "bool": cel.Type.BOOL}
    if name == "map":
        return cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
    return simple.get(name, cel.Type.DYN)


# A checker environment costs ~1 ms to build; the files of a bundle share a few schemas.
@functools.lru_cache(maxsize=64)
def _typed_env(declared: tuple[tuple[str, str], ...]) -> Any:
    return _env({**_VARIABLES, **{n: _cel_type(t) for n, t in declared}}, check=True)


def _shown(value: Any) -> Any:
    """`value` as plain Python, element by element; CelEvalError for an error or an optional.

    The binding cannot convert optional values (`context.?x`): plain_value() raises for one
    and crashes the process (SIGSEGV, cel-expr-python 0.1.3) for a map holding one. Only a
    variable's value can be one (a rule's `when` is a bool, its reason a string), and
    variables are evaluated one by one for traces only, so this walk is off the hot path.
    """
    try:
        kind = value.type()
        name = kind.name()
        if kind == _ERROR:
            message = _clean(str(value.value()))
        elif name.startswith("LIST"):
            return [_shown(v) for v in value.value()]
        elif name.startswith("MAP"):
            return {k: _shown(v) for k, v in value.value().items()}
        else:
            return value.plain_value()
    except (TypeError, RuntimeError, SystemError):
        message = "an optional value cannot be shown: read it with .orValue(...) or .value()"
    raise CelEvalError(message)


def _line_column(expr: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of `offset`, as the engine reports positions."""
    line_start = expr.rfind("\n", 0, offset) + 1
    return expr.count("\n", 0, offset) + 1, offset - line_start + 1


def combine(
    exprs: Sequence[str], uses_list_macros: bool, bounds_strings: bool = False, plain: bool = True
) -> Program | None:
    """One program whose value is the list of the expressions' values; None if they do
    not compile together (the parser's limits). A list is an error as soon as one element
    is, and comprehensions share one iteration budget: callers fall back to the
    expressions one by one when it fails."""
    text = "[" + ", ".join(f"({_whole_request(e)})" for e in exprs) + "]"
    try:
        expression = _BATCH_RUN_ENV.deserialize(_BATCH_CHECK_ENV.compile(text).serialize())
    except RuntimeError:
        return None
    return_type = expression.return_type().name()
    return _costed(
        Program(text, return_type, uses_list_macros, expression, True, bounds_strings, plain=plain)
    )


def _whole_request(expr: str) -> str:
    """`expr` with the variables action, principal, resource, context read from _REQUEST.

    Only free identifiers are replaced (not fields: `x.action`). A macro that binds one of
    these names (`xs.exists(action, ...)`) no longer compiles, so it gets no batch.
    """
    parts, pos = [], 0
    tokens = scan(expr)
    for i, tok in enumerate(tokens):
        if tok.kind == "ident" and tok.text in _REQUEST_FIELDS and not prev_is_dot(tokens, i):
            parts += [expr[pos : tok.start], f"{_REQUEST}.{tok.text}"]
            pos = tok.end
    return "".join(parts) + expr[pos:]


def _compile_error(text: str) -> CelError:
    issues = [
        CelError(int(m[1]), int(m[2]), m[3].replace(" (in container '')", "").strip())
        for m in _ISSUE_RE.finditer(text)
    ]
    if not issues:
        return CelError(1, 1, _clean(text))
    first = issues[0]
    return CelError(first.line, first.column, first.message, tuple(issues[1:]))


def _clean(text: str) -> str:
    # Engine messages carry absl status codes ("INVALID_ARGUMENT: ... [INVALID_ARGUMENT]")
    # that mean nothing to a policy author.
    text = _STATUS_RE.sub("", text.strip())
    if text.startswith("Expression recursion limit exceeded"):
        # The author counts the parentheses they wrote; inlining adds some (see enclosed).
        text += " (nesting levels, counting the parentheses that inline each variable)"
    return text
