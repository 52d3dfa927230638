"""CEL results as JSON-like data, for explanations: what `vars.<name>` came to.

The Explanation carries each value as a `google.protobuf.Value`, so types JSON lacks
become strings: timestamps in RFC 3339, durations as `"1.5s"`, and bytes as the CEL
literal that would produce them (`b"h\\xc3\\xa9"`), so a policy author reads them in the
language they wrote (the engine hands bytes back as `bytearray`, whose repr is Python's).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

# Escapes CEL reads in a double-quoted bytes literal; other bytes outside printable ASCII
# are written \xHH.
_ESCAPES = {
    ord("\\"): "\\\\",
    ord('"'): '\\"',
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}
# Exactly what bytes_literal writes, and nothing else.
_LITERAL = re.compile(r'b"(?:[ !#-\[\]-~]|\\[\\"nrt]|\\x[0-9a-f]{2})*"')


def bytes_literal(value: bytes | bytearray) -> str:
    """`value` as a CEL bytes literal: b"..." with escapes, reading back as the same bytes."""
    out = []
    for byte in value:
        if byte in _ESCAPES:
            out.append(_ESCAPES[byte])
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return f'b"{"".join(out)}"'


def is_bytes_literal(text: str) -> bool:
    """Whether `text` has the form bytes_literal writes (a string value may, by chance)."""
    return _LITERAL.fullmatch(text) is not None


def to_json(value: Any) -> Any:
    """Convert a CEL result to JSON-like data (timestamps, durations, bytes as strings)."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, bytes | bytearray):
        return bytes_literal(value)
    if isinstance(value, Message):
        return json_format.MessageToDict(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)  # a CEL type value, e.g. type(x)
