"""A solver model -> the request it describes, as test-case YAML data (proto JSON names)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import z3

from signoff.analysis.symbols import BOOL, LIST, NULL, NUM, OBJ, STR, Path, Symbols

_PADDING = "pad"  # keys added so an object has the size a rule asked for


def request_data(model: z3.ModelRef, symbols: Symbols) -> dict[str, Any]:
    """The request of `model`: only the fields the policies read, the rest left unset."""
    out: dict[str, Any] = {}
    for path, var in symbols.strings.items():
        text = _text(model.eval(var, model_completion=True))
        if text:
            _put(out, path, text)
    for path, var in symbols.lists.items():
        n = model.eval(z3.Length(var), model_completion=True).as_long()  # type: ignore[attr-defined]
        items = [_text(model.eval(var[i], model_completion=True)) for i in range(n)]
        if items:
            _put(out, path, items)
    for path, j in sorted(symbols.json.items(), key=lambda kv: len(kv[0])):
        if not z3.is_true(model.eval(j.present, model_completion=True)):
            continue
        kind = model.eval(j.kind, model_completion=True).as_long()  # type: ignore[attr-defined]
        size = model.eval(j.size, model_completion=True).as_long()  # type: ignore[attr-defined]
        value: Any = None
        if kind == BOOL:
            value = z3.is_true(model.eval(j.bool, model_completion=True))
        elif kind == NUM:
            number = model.eval(j.num, model_completion=True)
            value = float(Fraction(str(number.as_fraction())))  # type: ignore[attr-defined]
        elif kind == STR:
            value = _text(model.eval(j.str, model_completion=True))
            parses = not z3.is_true(model.eval(j.unparsable, model_completion=True))
            if path in symbols.parsed and parses:
                # A string the rules read as a number: write that number as its text.
                value = _number_text(model.eval(j.parsed, model_completion=True))
                refused = symbols.int_read.get(path)
                if refused is not None and z3.is_true(model.eval(refused, model_completion=True)):
                    value = _refused_by_int(value)
        elif kind == LIST:
            value = [None] * min(size, 10_000)
        elif kind == OBJ:
            value = {}
        elif kind != NULL:
            continue
        _put(out, path, value)
    _pad_objects(model, symbols, out)
    return out


def _number_text(value: z3.ExprRef) -> str:
    number = float(Fraction(str(value.as_fraction())))  # type: ignore[attr-defined]
    return str(int(number)) if number.is_integer() else repr(number)


def _refused_by_int(text: str) -> str:
    """A number's text that int() refuses and double() reads the same: "12" -> "12.0"."""
    return text if any(c in text for c in ".eEn") else text + ".0"


def _text(value: z3.ExprRef) -> str:
    return str(value.as_string()) if hasattr(value, "as_string") else str(value)


def _put(out: dict[str, Any], path: Path, value: Any) -> None:
    node = out
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def _pad_objects(model: z3.ModelRef, symbols: Symbols, out: dict[str, Any]) -> None:
    for path, j in symbols.json.items():
        if not z3.is_true(model.eval(j.present, model_completion=True)):
            continue
        node: Any = out
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            size = model.eval(j.size, model_completion=True).as_long()  # type: ignore[attr-defined]
            i = 0
            while len(node) < min(size, 10_000):
                node.setdefault(f"{_PADDING}{i}", None)
                i += 1
