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
Figures: bench/cel_hostile.py. Residual risk, left to policy review: an author who
concatenates input inside an expression (`xs + xs + ...`, a cel.bind that doubles, chained
replace() with long literals) can still build large values; and core CEL's linear string
functions in a loop (`xs.exists(x, s.contains(x))`, 10,000 scans of a 200 KiB string ≈
11 s) are not bounded. The parser has its own recursion limit for deeply nested
expressions (a compile error).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cel_expr_python import cel
from google.protobuf import descriptor_pool, struct_pb2

from signoff import pb
from signoff.errors import SignoffError

MAX_MACRO_LIST_ITEMS = 1000
# A program that builds lists or strings from strings (split, replace, join, format) and
# loops (any comprehension) runs only on requests whose strings are at most this long:
# split() makes at most len + 1 elements, so the lists it builds stay within the bound
# above, and each of the 10,000 iterations the budget allows costs O(this).
MAX_BUILDER_STRING_CHARS = 1000

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
_ISSUE_RE = re.compile(r"ERROR: <input>:(\d+):(\d+): ([^\n]*)")
_STATUS_RE = re.compile(r"^[A-Z_]+: |\s*\[[A-Z_]+\]$")
# Comprehensions that build their result by list concatenation: quadratic (see above).
_LIST_MACROS = {"map", "filter", "transformList"}
_LOOPS = _LIST_MACROS | {"all", "exists", "exists_one", "existsOne"}
# Member functions whose result can hold more elements or characters than their input.
_BUILDERS = {"split", "replace", "join", "format"}
# Each call's output size is linear in its input only when this argument is a literal:
# `s.replace("", t)` is len(s) * len(t), `xs.join(t)` len(xs) * len(t).
_LITERAL_ARGS = {"replace": 1, "join": 0}
_UNAVAILABLE = {"transformMap", "transformMapEntry"}


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
        try:
            if self.whole_request:
                data = {_REQUEST: activation.request, "now": activation.now}
                value = self._expression.eval(data=data)
            else:
                value = self._expression.eval(activation.cel)
        except RuntimeError as exc:
            raise CelEvalError(_clean(str(exc))) from None
        plain = value.plain_value()
        # Checking the type costs ~0.5 µs; a bool or a list (a `when`, a batch) is no error.
        if type(plain) not in _NEVER_ERRORS and value.type() == _ERROR:
            raise CelEvalError(_clean(str(value.value())))
        return plain

    def serialized(self) -> bytes:
        """The checked expression: a cel.expr.CheckedExpr in a google.protobuf.Any."""
        return bytes(self._expression.serialize())


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
    largest = longest = 0
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
    calls = _member_calls(scan(expr))
    names = {tokens[i].text for tokens, i in calls}
    for tokens, i in calls:
        _check_call(expr, tokens, i)
    macros = bool(names & _LIST_MACROS)
    # `"a,b".split(",")` (or a variable holding a literal) costs what its author wrote;
    # format() on a literal does not: its arguments come from anywhere.
    builders = {
        t[i].text
        for t, i in calls
        if t[i].text in _BUILDERS and not (t[i].text != "format" and _literal_receiver(t, i))
    }
    strings = bool(builders) and bool(names & _LOOPS)
    return_type = expression.return_type().name()
    return Program(expr, return_type, macros, expression, bounds_strings=strings)


def _member_calls(tokens: list[Token]) -> list[tuple[list[Token], int]]:
    """(tokens, index) of each `.name(` call: the functions and macros a program uses."""
    return [
        (tokens, i)
        for i, t in enumerate(tokens)
        if t.kind == "ident"
        and _prev_is_dot(tokens, i)
        and i + 1 < len(tokens)
        and tokens[i + 1].text == "("
    ]


def _literal_receiver(tokens: list[Token], index: int) -> bool:
    """Whether `.name(` at index is called on a string literal (inlined variables too)."""
    before = tokens[: index - 1]  # up to the dot
    if before and before[-1].text == ")":
        depth, start = 0, len(before) - 1
        while start >= 0:
            depth += (
                {")": 1, "(": -1}.get(before[start].text, 0) if before[start].kind == "punct" else 0
            )
            if depth == 0:
                break
            start -= 1
        if start > 0 and before[start - 1].kind == "ident" and before[start - 1].text != "in":
            return False  # a call's result: `f(x).split(",")`
        return _is_string_literal(before[start:])
    return bool(before) and _is_string_literal(before[-1:])


def _check_call(expr: str, tokens: list[Token], index: int) -> None:
    """Raise CelError for a call the engine cannot run or whose cost it cannot bound."""
    name = tokens[index]
    if name.text in _UNAVAILABLE:
        message = f"{name.text}() is not available in this engine"
        raise CelError(*_line_column(expr, name.start), message)
    position = _LITERAL_ARGS.get(name.text)
    if position is None:
        return
    args = _arguments(tokens, index + 1)
    if position < len(args) and not _is_string_literal(args[position]):
        raise CelError(
            *_line_column(expr, (args[position] or [name])[0].start),
            f"the {('separator', 'replacement')[name.text == 'replace']} of {name.text}() "
            "must be a string literal (keeps the result linear in the input's size)",
        )


def _arguments(tokens: list[Token], open_index: int) -> list[list[Token]]:
    """The argument tokens of the call whose `(` is at open_index."""
    args: list[list[Token]] = [[]]
    depth = 0
    for tok in tokens[open_index:]:
        if tok.kind == "punct" and tok.text in "([{":
            depth += 1
            if depth == 1:
                continue
        elif tok.kind == "punct" and tok.text in ")]}":
            depth -= 1
            if depth == 0:
                break
        elif depth == 1 and tok.text == ",":
            args.append([])
            continue
        args[-1].append(tok)
    return args if args != [[]] else []


def _is_string_literal(arg: list[Token]) -> bool:
    # A variable holding a literal is inlined in parentheses: `("-")`.
    inner = [t for t in arg if t.text not in "()"]
    return len(inner) == 1 and inner[0].kind == "string" and not inner[0].text.startswith("b")


def _line_column(expr: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of `offset`, as the engine reports positions."""
    line_start = expr.rfind("\n", 0, offset) + 1
    return expr.count("\n", 0, offset) + 1, offset - line_start + 1


def combine(
    exprs: Sequence[str], uses_list_macros: bool, bounds_strings: bool = False
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
    return Program(
        text, return_type, uses_list_macros, expression, True, bounds_strings=bounds_strings
    )


def _whole_request(expr: str) -> str:
    """`expr` with the variables action, principal, resource, context read from _REQUEST.

    Only free identifiers are replaced (not fields: `x.action`). A macro that binds one of
    these names (`xs.exists(action, ...)`) no longer compiles, so it gets no batch.
    """
    parts, pos = [], 0
    tokens = scan(expr)
    for i, tok in enumerate(tokens):
        if tok.kind == "ident" and tok.text in _REQUEST_FIELDS and not _prev_is_dot(tokens, i):
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


# --- lexical scan ---------------------------------------------------------------------
# Just enough of CEL's lexer to find identifiers outside string literals and comments:
# the loader uses it to find `vars.<name>` and this module to spot map()/filter().


@dataclass(frozen=True)
class Token:
    """A lexical token: kind is ident, string, punct or number; start/end are offsets."""

    kind: str
    text: str
    start: int
    end: int


_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_RE = re.compile(r"[0-9][0-9a-fA-FxXuU.eE]*")
_STRING_PREFIXES = {"r", "b", "rb", "br"}


def scan(expr: str) -> list[Token]:
    """Split a CEL expression into tokens, skipping whitespace and comments."""
    tokens: list[Token] = []
    i, n = 0, len(expr)
    while i < n:
        ch = expr[i]
        if ch.isspace():
            i += 1
        elif expr.startswith("//", i):
            newline = expr.find("\n", i)
            i = n if newline < 0 else newline
        elif ch in "'\"":
            end = _string_end(expr, i, raw=False)
            tokens.append(Token("string", expr[i:end], i, end))
            i = end
        elif match := _IDENT_RE.match(expr, i):
            end = match.end()
            word = match.group()
            if word.lower() in _STRING_PREFIXES and end < n and expr[end] in "'\"":
                end = _string_end(expr, end, raw="r" in word.lower())
                tokens.append(Token("string", expr[i:end], i, end))
            else:
                tokens.append(Token("ident", word, i, end))
            i = end
        elif match := _NUMBER_RE.match(expr, i):
            tokens.append(Token("number", match.group(), i, match.end()))
            i = match.end()
        else:
            tokens.append(Token("punct", ch, i, i + 1))
            i += 1
    return tokens


def _string_end(expr: str, start: int, raw: bool) -> int:
    quote = expr[start] * 3 if expr.startswith(expr[start] * 3, start) else expr[start]
    i = start + len(quote)
    while i < len(expr):
        if not raw and expr[i] == "\\":
            i += 2
        elif expr.startswith(quote, i):
            return i + len(quote)
        elif expr[i] == "\n" and len(quote) == 1:
            return i  # unterminated; the engine reports it
        else:
            i += 1
    return len(expr)


def _prev_is_dot(tokens: list[Token], index: int) -> bool:
    return index > 0 and tokens[index - 1].text == "."


# --- variable inlining ----------------------------------------------------------------
# `vars.<name>` is replaced by `(<expression>)` before compiling; the spans map engine
# columns in the inlined text back to the text the author wrote.


@dataclass(frozen=True)
class Span:
    """`vars.name` at [orig_start, orig_end) became [start, end) of the expanded text."""

    start: int
    end: int
    orig_start: int
    orig_end: int


@dataclass(frozen=True)
class Inlined:
    """An expression with its variables inlined, and where each one came from."""

    text: str
    spans: tuple[Span, ...]

    def original_offset(self, offset: int) -> int:
        """Map an offset of the expanded text to the author's text."""
        shift = 0
        for span in self.spans:
            if offset < span.start:
                break
            if offset < span.end:
                return span.orig_start  # inside an inlined variable: point at the reference
            shift = span.end - span.orig_end
        return offset - shift


def enclosed(expr: str) -> str:
    """`expr` as it is inlined: in parentheses, unless one pair encloses it already.

    Each pair is a level of the parser's nesting limit (32): adding one to a variable that
    is a parenthesized group already would put one at the limit out of every rule's reach.
    """
    if _is_enclosed(expr):
        return expr
    # A trailing `// comment` would swallow the closing parenthesis: end its line first.
    return f"({expr}\n)" if _ends_in_comment(expr) else f"({expr})"


def enclose(inlined: Inlined) -> Inlined:
    """`inlined` as enclosed() would inline it, its spans still mapping to the author's text."""
    if _is_enclosed(inlined.text):
        return inlined
    shifted = (Span(s.start + 1, s.end + 1, s.orig_start, s.orig_end) for s in inlined.spans)
    # The opening parenthesis maps to the start of the author's text.
    return Inlined(enclosed(inlined.text), (Span(0, 1, 0, 0), *shifted))


def _ends_in_comment(expr: str) -> bool:
    tokens = scan(expr)
    return len(expr.rstrip()) > (tokens[-1].end if tokens else 0)


def _is_enclosed(expr: str) -> bool:
    tokens = scan(expr)
    # The text must begin and end with the pair: a comment after it would swallow whatever
    # follows the variable where it is inlined.
    if not tokens or tokens[0].start != len(expr) - len(expr.lstrip()):
        return False
    if tokens[-1].end != len(expr.rstrip()) or (tokens[0].text, tokens[-1].text) != ("(", ")"):
        return False
    depth = 0
    for i, tok in enumerate(tokens):
        if tok.kind != "punct":
            continue
        depth += {"(": 1, ")": -1}.get(tok.text, 0)
        if depth == 0:
            return i == len(tokens) - 1  # the first parenthesis closes only at the end
    return False


class RefError(Exception):
    """A misuse of `vars` at `offset` of the author's text."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


def var_refs(expr: str) -> list[tuple[int, int, str]]:
    """(start, end, name) of every `vars.<name>`; raise RefError on any other use of vars."""
    tokens = scan(expr)
    refs = []
    for i, tok in enumerate(tokens):
        if tok.kind != "ident" or tok.text != "vars" or (i and tokens[i - 1].text == "."):
            continue
        if i + 2 < len(tokens) and tokens[i + 1].text == "." and tokens[i + 2].kind == "ident":
            refs.append((tok.start, tokens[i + 2].end, tokens[i + 2].text))
        else:
            raise RefError(tok.start, "use a variable as vars.<name>")
    return refs


def inline(expr: str, refs: list[tuple[int, int, str]], values: dict[str, str]) -> Inlined:
    """Replace each `vars.<name>` at `refs` by `(values[name])` (see enclosed)."""
    parts: list[str] = []
    spans: list[Span] = []
    pos = length = 0
    for start, end, name in refs:
        parts.append(expr[pos:start])
        length += start - pos
        inlined = enclosed(values[name])
        spans.append(Span(length, length + len(inlined), start, end))
        parts.append(inlined)
        length += len(inlined)
        pos = end
    parts.append(expr[pos:])
    return Inlined("".join(parts), tuple(spans))
