"""CEL source text, before the engine sees it: tokens, variable inlining, member calls.

The loader finds `vars.<name>` with scan() and inlines variables (inline, enclosed); cel.py
spots the member calls whose cost it bounds (calls; see cel.py's doc for the figures).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Comprehensions that build their result by list concatenation: quadratic (see cel.py).
LIST_MACROS = frozenset({"map", "filter", "transformList"})
LOOPS = LIST_MACROS | {"all", "exists", "exists_one", "existsOne"}
# Member functions whose result can hold more elements or characters than their input.
BUILDERS = frozenset({"split", "replace", "join", "format"})
# Each call's output size is linear in its input only when this argument is a literal:
# `s.replace("", t)` is len(s) * len(t), `xs.join(t)` len(xs) * len(t).
_LITERAL_ARGS = {"replace": 1, "join": 0}
# The engine parses these but cannot run them ("No overload ... cel.@mapInsert").
_UNAVAILABLE = {"transformMap", "transformMapEntry"}


# --- member calls ---------------------------------------------------------------------


class CallError(Exception):
    """A call refused at `offset` of the expression."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


@dataclass(frozen=True)
class Calls:
    """The `.name(` calls of an expression: every name, and the builders whose cost
    depends on the request (split and replace on a string literal cost what is written)."""

    names: frozenset[str]
    builders: frozenset[str]


def calls(expr: str) -> Calls:
    """The member calls of `expr`; raise CallError for one that cannot run or be bounded."""
    found = _member_calls(scan(expr))
    for tokens, i in found:
        _check_call(tokens, i)
    # format() on a literal is not bounded by it: its arguments come from anywhere.
    builders = {
        t[i].text
        for t, i in found
        if t[i].text in BUILDERS and not (t[i].text != "format" and _literal_receiver(t, i))
    }
    return Calls(frozenset(t[i].text for t, i in found), frozenset(builders))


def _member_calls(tokens: list[Token]) -> list[tuple[list[Token], int]]:
    """(tokens, index) of each `.name(` call: the functions and macros a program uses."""
    return [
        (tokens, i)
        for i, t in enumerate(tokens)
        if t.kind == "ident"
        and prev_is_dot(tokens, i)
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


def _check_call(tokens: list[Token], index: int) -> None:
    """Raise CallError for a call the engine cannot run or whose cost it cannot bound."""
    name = tokens[index]
    if name.text in _UNAVAILABLE:
        raise CallError(name.start, f"{name.text}() is not available in this engine")
    position = _LITERAL_ARGS.get(name.text)
    if position is None:
        return
    args = _arguments(tokens, index + 1)
    if position < len(args) and not _is_string_literal(args[position]):
        raise CallError(
            (args[position] or [name])[0].start,
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
    if len(inner) != 1 or inner[0].kind != "string":
        return False
    prefix = inner[0].text[: len(inner[0].text) - len(inner[0].text.lstrip("rRbB"))]
    return "b" not in prefix.lower()  # b"..." is bytes


# --- lexical scan ---------------------------------------------------------------------
# Just enough of CEL's lexer to find identifiers outside string literals and comments:
# the loader uses it to find `vars.<name>`, and calls() the member calls.


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


def prev_is_dot(tokens: list[Token], index: int) -> bool:
    """Whether the token at index follows a dot (a field or a member call, not a name)."""
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
