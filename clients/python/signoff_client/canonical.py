"""RFC 8785 canonical JSON (JSON Canonicalization Scheme) and action digests.

Lives in the client package because both sides need byte-identical output: the server
hashes its audit log and review actions with it, and the client checks that what it is
about to execute is what a reviewer approved. Pure Python, standard library only; where
orjson is installed (the server depends on it, the client's ``fast`` extra adds it) the
common case is encoded in C, to the same bytes.

Rules: keys sorted by their UTF-16 code units, no whitespace, UTF-8, strings escaped
minimally, numbers as ECMAScript's Number.prototype.toString (``1.0`` -> ``1``,
``2.0**60`` -> ``1152921504606847000``, ``1e21`` -> ``1e+21``, ``1e-7`` -> ``1e-7``,
``-0.0`` -> ``0``). A number is the IEEE-754 double it denotes: a Python int past 2**53 is
written as that double if a double holds it exactly or if its digits are a double's
canonical text (``1152921504606847000``: how json.loads reads back ``2.0**60``), and
refused otherwise (``2**53 + 1``), as are NaN, infinities, lone surrogates and non-string
keys (ValueError). So canonical_json(json.loads(canonical_json(x))) == canonical_json(x).

Before signoff 0.2.0 the fast path wrote integral floats above 2**53 as their exact integer
(``2.0**60`` -> ``1152921504606846976``). `legacy_canonical_json` and `action_digests`
reproduce that form, so that what was hashed or signed then still verifies.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

try:  # Optional: the client must install without the server's dependencies.
    import orjson
except ImportError:  # pragma: no cover - exercised by the pure-Python test run
    orjson = None

# Largest integer every JSON implementation (IEEE-754 doubles) reads back exactly.
_MAX_EXACT_INT = 2**53
# Non-integral floats in [1e-4, 1e21) are written alike by repr() (json.dumps), orjson and
# ECMAScript: the shortest round-trip digits, no exponent. (orjson agrees down to 1e-5,
# repr only to 1e-4; below, and for integral floats past 2**53, the text is built here.)
_PLAIN_MIN = 1e-4
_PLAIN_MAX = 1e21


def canonical_json(value: Any) -> str:
    """Return the RFC 8785 canonical JSON text of `value` (raises ValueError if not JSON-able)."""
    if orjson is not None:
        return _orjson_bytes(value).decode("utf-8")
    try:
        text = json.dumps(
            _prepared(value),
            ensure_ascii=False,
            separators=(",", ":"),
            sort_keys=True,
            allow_nan=False,
        )
        text.encode("utf-8")  # lone surrogates fail here
        return text
    except (_SlowPath, ValueError):
        # The exact encoder below handles what the fast path cannot, and raises the
        # precise error for what is not JSON at all.
        return _exact(value)


def canonical_json_bytes(value: Any) -> bytes:
    """Return the RFC 8785 canonical JSON of `value` as UTF-8 bytes (what is hashed or signed)."""
    if orjson is not None:
        return _orjson_bytes(value)
    return canonical_json(value).encode("utf-8")


def canonical_json_plain(value: Any) -> tuple[bytes, Any]:
    """Return the canonical JSON of `value` as UTF-8 bytes, and the plain value those bytes
    read back as (what ``json.loads`` gives: dicts, lists, ints for integral numbers).

    One walk and one encoding, no parse: the fast path's own normalized copy of `value` is
    that plain value whenever it holds no pre-encoded text (a number past 2**53, below 1e-4
    or from 1e21, an object with a key above U+FFFF); only then, or off the fast path, are
    the bytes parsed back.
    """
    if orjson is not None:
        made = _fragments[0]
        try:
            prepared = _prepared(value)
            data = orjson.dumps(prepared, option=orjson.OPT_SORT_KEYS)
        except (_SlowPath, TypeError):
            data = _exact(value).encode("utf-8")
            return data, json.loads(data)
        # Another thread's fragment only sends this call to the parse as well: still right.
        if _fragments[0] == made:
            return data, prepared
        return data, json.loads(data)
    data = canonical_json(value).encode("utf-8")
    return data, json.loads(data)


class _SlowPath(Exception):
    """`value` holds something the fast path would not write as RFC 8785 does."""


def _orjson_bytes(value: Any) -> bytes:
    # Measured (bench/canonical.py): on an audit payload the walk below costs ~10 µs and
    # orjson ~1, where json.dumps took ~20 and the exact encoder ~150. orjson writes strings
    # (escapes, UTF-8), ints, booleans and null exactly as RFC 8785 does, and sorts keys by
    # code point, which is UTF-16 order unless a key holds a character above U+FFFF.
    try:
        return orjson.dumps(_prepared(value), option=orjson.OPT_SORT_KEYS)
    except (_SlowPath, TypeError):
        # Lone surrogates, non-string keys, odd types (subclasses, Mappings), very deep
        # nesting: the exact encoder writes them or raises the precise ValueError.
        return _exact(value).encode("utf-8")


def _prepared(value: Any) -> Any:
    """Return `value` as the fast encoder must see it to write RFC 8785, or raise _SlowPath.

    Integral floats become ints (``750.0`` -> ``750``). A number the fast encoder would
    write otherwise (past 2**53, below 1e-4, 1e21 and above) and an object with a key above
    U+FFFF become pre-encoded text (orjson.Fragment); without orjson (json.dumps), they
    send the whole value to the exact encoder. Hot: one call per value of every payload,
    hence the plain loops (no comprehension frames) and no extra arguments.
    """
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is float:
        if value.is_integer():
            if -_MAX_EXACT_INT <= value <= _MAX_EXACT_INT:
                return int(value)
        elif _PLAIN_MIN <= abs(value) < _PLAIN_MAX:
            return value
        return _raw(_number(value))  # ValueError for NaN and infinities
    if t is int:
        if -_MAX_EXACT_INT <= value <= _MAX_EXACT_INT:
            return value
        return _raw(_number(value))  # ValueError unless a double holds it exactly
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise _SlowPath
            if not k.isascii() and max(k) > "\uffff":
                return _raw(_utf16_object(value))
            # Strings, most of the leaves, are taken as they are, without a call.
            out[k] = v if type(v) is str else _prepared(v)
        return out
    if t is list or t is tuple:
        items = []
        for v in value:
            items.append(v if type(v) is str else _prepared(v))
        return items
    raise _SlowPath


# How many pre-encoded values `_raw` has made (canonical_json_plain: was one made?).
_fragments = [0]


def _raw(text: str) -> Any:
    """`text` as a value the fast encoder writes verbatim."""
    if orjson is None:
        raise _SlowPath
    _fragments[0] += 1
    return orjson.Fragment(text)


def _utf16_object(value: dict[Any, Any]) -> str:
    """An object whose keys need UTF-16 order, its members encoded by the fast encoder."""
    if orjson is None or not all(type(k) is str for k in value):
        raise _SlowPath
    members = []
    for key in sorted(value, key=_utf16_key):
        check_unicode(key)
        body = orjson.dumps(_prepared(value[key]), option=orjson.OPT_SORT_KEYS)
        members.append(f"{json.dumps(key, ensure_ascii=False)}:{body.decode('utf-8')}")
    return "{" + ",".join(members) + "}"


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _exact(value: Any) -> str:
    out: list[str] = []
    _encode(value, out)
    return "".join(out)


def _encode(value: Any, out: list[str]) -> None:
    """The reference encoder: slow, written from the RFC; the fast paths must equal it."""
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        check_unicode(value)
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int | float):
        out.append(_number(value))
    elif isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise ValueError("JSON object keys must be strings")
        out.append("{")
        # RFC 8785 orders keys by UTF-16 code units, which differs from code point order
        # only for characters above U+FFFF.
        for i, key in enumerate(sorted(value, key=_utf16_key)):
            if i:
                out.append(",")
            _encode(key, out)
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise ValueError(f"{type(value).__name__} is not JSON-able")


def check_unicode(text: str) -> None:
    """Raise ValueError if `text` holds a lone surrogate (not encodable as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("strings must be valid Unicode (lone surrogate)") from exc


def _number(value: int | float) -> str:
    """ECMAScript's Number.prototype.toString of the double `value` denotes."""
    if isinstance(value, int):
        if abs(value) <= _MAX_EXACT_INT:
            return str(value)
        value = _int_double(value)
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a JSON number")
    if value == 0:
        return "0"
    # repr() gives the shortest digits that round-trip, as ECMAScript does; only the layout
    # (where the point goes, when to use an exponent) differs, and is redone here.
    sign = "-" if value < 0 else ""
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    stripped = digits.rstrip("0")
    exp = int(exp_text or 0) - len(frac) + len(digits) - len(stripped)
    digits = stripped
    k = len(digits)
    n = k + exp  # value = 0.digits * 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        head = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        text = f"{head}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + text


def _int_double(value: int) -> float:
    """The double a Python int past 2**53 stands for, or ValueError if it stands for none.

    Either a double holds it exactly (``2**60``), or its digits are the canonical text of a
    double (``1152921504606847000``, which is how this encoder and JavaScript write 2.0**60,
    and what json.loads reads back as an int). Anything else (``2**53 + 1``) would be
    rounded silently by every reader, so it is refused.
    """
    try:
        double = float(value)
    except OverflowError:
        double = math.inf
    if double != value and (not math.isfinite(double) or str(value) != _number(double)):
        raise ValueError(f"integer {value} cannot be represented exactly as a JSON number")
    return double


# -- the form written before 0.2.0 ----------------------------------------------------------


def legacy_canonical_json(value: Any) -> str | None:
    """The text signoff before 0.2.0 wrote for `value`, or None where it is canonical_json's.

    The old fast path wrote an integral float of magnitude in (2**53, 1e21) as its exact
    integer (``1152921504606846976``, where ECMAScript writes ``1152921504606847000``), in a
    document holding nothing that sent it to the exact encoder (a float below 1e-4 or from
    1e21, an int past 2**53, a key above U+FFFF). Numbers are read as the doubles they
    denote, as the server saw them (Struct numbers) and as they read back from stored text
    (the old digits parse as a Python int). Both forms name the same numbers: a verifier
    that accepts either still vouches for the same content.
    """
    try:
        text = json.dumps(
            _legacy_prepared(value),
            ensure_ascii=False,
            separators=(",", ":"),
            sort_keys=True,
            allow_nan=False,
        )
        text.encode("utf-8")
    except (_SlowPath, ValueError):
        return None  # the old encoder took its exact path: the same text as today's
    return None if text == canonical_json(value) else text


def _legacy_prepared(value: Any) -> Any:
    """The old fast path's normalization (integral floats as ints), numbers as doubles."""
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is int:
        try:
            value, t = _int_double(value), float
        except ValueError:
            raise _SlowPath from None
    if t is float:
        magnitude = abs(value)
        if magnitude < _PLAIN_MAX and value.is_integer():
            return int(value)
        if _PLAIN_MIN <= magnitude < _PLAIN_MAX:
            return value
        raise _SlowPath
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str or (not k.isascii() and max(k) > "\uffff"):
                raise _SlowPath
            out[k] = _legacy_prepared(v)
        return out
    if t is list or t is tuple:
        return [_legacy_prepared(v) for v in value]
    raise _SlowPath


# -- action digests -------------------------------------------------------------------------


_PRINCIPAL_DEFAULTS: dict[str, Any] = {
    "id": "",
    "kind": "",
    "roles": [],
    "tags": [],
    "on_behalf_of": "",
    "attributes": {},
}
_RESOURCE_DEFAULTS: dict[str, Any] = {"kind": "", "id": "", "attributes": {}}


def digest_document(
    name: str,
    params: Mapping[str, Any],
    principal: Mapping[str, Any] | None = None,
    resource: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The document an action digest is computed over (see `action_digest`)."""
    return {
        "action": name,
        "params": dict(params),
        "principal": {k: (principal or {}).get(k, d) for k, d in _PRINCIPAL_DEFAULTS.items()},
        "resource": {k: (resource or {}).get(k, d) for k, d in _RESOURCE_DEFAULTS.items()},
    }


def action_digest(
    name: str,
    params: Mapping[str, Any],
    principal: Mapping[str, Any] | None = None,
    resource: Mapping[str, Any] | None = None,
) -> str:
    """Hex SHA-256 of the canonical JSON of an action: what a reviewer approves.

    The document is ``{"action": name, "params": ..., "principal": {id, kind, roles, tags,
    on_behalf_of, attributes}, "resource": {kind, id, attributes}}`` with every field
    present (missing ones take their empty default, unknown keys are ignored), so client
    and server hash the same bytes whatever they left unset.
    """
    doc = digest_document(name, params, principal, resource)
    return hashlib.sha256(canonical_json_bytes(doc)).hexdigest()


def action_digests(
    name: str,
    params: Mapping[str, Any],
    principal: Mapping[str, Any] | None = None,
    resource: Mapping[str, Any] | None = None,
) -> tuple[str, ...]:
    """The digests a server may have computed for this action: today's, then pre-0.2.0's.

    A second digest exists only for an action holding an integral number above 2**53 (see
    `legacy_canonical_json`); a review opened or a receipt signed by an older server carries
    that one. Check a stored digest with ``in``, compute a new one with `action_digest`.
    """
    doc = digest_document(name, params, principal, resource)
    digests = (hashlib.sha256(canonical_json_bytes(doc)).hexdigest(),)
    legacy = legacy_canonical_json(doc)
    if legacy is None:
        return digests
    return (*digests, hashlib.sha256(legacy.encode("utf-8")).hexdigest())
