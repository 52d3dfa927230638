"""How many times one decision does the same work: request -> dict conversions, canonical
JSON builds, json.dumps / json.loads calls, strftime calls and Decision serializations, per
outcome (issue 21 item 4's list), counted on `Signoff.evaluate` in process.

Counted with a profile hook (`sys.setprofile`), not by patching product code: a Python
function is counted by its code object, a C function or method (orjson.dumps,
datetime.strftime, Decision.SerializeToString) by its name and, for methods, the type it is
bound to. The app is built as `decision_inproc.py` builds it (SQLite store, the example
policies, signed receipts); warm-up decisions run first, so one-off work (caches, the first
statement) is not counted.

`PYTHONPATH=<old tree>/service:<old tree>/clients/python python bench/decision_counts.py`
counts an older tree the same way (the script imports nothing of this tree but the bench's
own helpers).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from decision_inproc import CASES, WHO, app_on, issuer, request

import signoff

WARMUP = 20
COUNTED = 50

# Python functions, by code name (and file, to tell two `canonical_json`s apart if any).
PY_FUNCTIONS = {
    "request_to_dict": "request -> dict",
    "canonical_json": "canonical JSON: canonical_json",
    "canonical_json_bytes": "canonical JSON: canonical_json_bytes",
    "canonical_json_plain": "canonical JSON: canonical_json_plain",
    "canonical_bytes": "audit entry bytes assembled",
    "format_time": "time formatted (format_time)",
    "dumps": "json.dumps",
    "loads": "json.loads",
}
# With BENCH_WHERE=1 each count also names its caller (file:function).
WHERE = os.environ.get("BENCH_WHERE") == "1"
# C functions and methods: (name, bound-to type name or "" for a module function).
C_FUNCTIONS = {
    ("dumps", ""): "orjson.dumps",
    ("loads", ""): "orjson.loads",
    ("strftime", "datetime"): "strftime",
    ("SerializeToString", "Decision"): "Decision serialized",
    ("FromString", ""): "FromString",
}


def counter() -> tuple[Counter[str], Any]:
    """A Counter and the profile function that fills it."""
    counts: Counter[str] = Counter()

    def profile(frame: Any, what: str, arg: Any) -> None:
        if what == "call":
            code = frame.f_code
            label = PY_FUNCTIONS.get(code.co_name)
            if label is None:
                return
            if code.co_name in ("dumps", "loads") and not code.co_filename.endswith(
                "json/__init__.py"
            ):
                return
            counts[label + _where(frame.f_back)] += 1
        elif what == "c_call":
            owner = getattr(arg, "__self__", None)
            kind = "" if owner is None or isinstance(owner, type(sys)) else type(owner).__name__
            module = getattr(arg, "__module__", "") or ""
            if kind == "" and arg.__name__ in ("dumps", "loads") and module != "orjson":
                return
            label = C_FUNCTIONS.get((arg.__name__, kind))
            if label is not None:
                counts[label + _where(frame.f_back)] += 1

    return counts, profile


def _where(frame: Any) -> str:
    if not WHERE or frame is None:
        return ""
    return f" <- {Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}"


async def count(root: Path) -> dict[str, dict[str, float]]:
    """Per case, the mean count of each kind of work per decision."""
    app, store = app_on(root / "signoff.db", issuer())
    await store.open()
    out: dict[str, dict[str, float]] = {}
    serial = iter(range(10**9))
    try:
        await app.start()
        for case, amount in CASES.items():
            for _ in range(WARMUP):
                await app.evaluate(WHO, request(amount, next(serial)))
            reqs = [request(amount, next(serial)) for _ in range(COUNTED)]
            counts, profile = counter()
            sys.setprofile(profile)
            try:
                for req in reqs:
                    await app.evaluate(WHO, req)
            finally:
                sys.setprofile(None)
            out[case] = {k: round(v / COUNTED, 2) for k, v in sorted(counts.items())}
    finally:
        await store.close()
    return out


def main() -> int:
    """Print the counts per decision for each outcome (of the tree `signoff` comes from)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(count(Path(tmp)))
    print(f"tree: {Path(signoff.__file__).parent}")
    labels = sorted({k for row in result.values() for k in row})
    print(f"{'per decision':<24}" + "".join(f"{c:>16}" for c in result))
    for label in labels:
        print(f"{label:<24}" + "".join(f"{result[c].get(label, 0):>16}" for c in result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
