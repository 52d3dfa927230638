"""What RFC 8785 encoding costs per audit payload: before (0.1.0) and after, by path.

Payloads are what the server encodes: a decision entry's payload (the request and the
decision as `core/jsonify.py` writes them, Struct numbers as floats), a review entry's
(review.modified: the act with edited params and the requested params), an action digest's
document, a large decision payload (200 line items, ~12 KB), and two that take the special
paths (an integral float past 2**53, the 0.1.0 bug; a key above U+FFFF, UTF-16 order).

Encoders: 0.1.0's `canonical_json` (from git, the "before"), today's with orjson (what the
server runs), today's without orjson (what the client runs by default), the reference
encoder, and the same walk with msgspec instead of orjson (the alternative not taken).
All must give the same bytes (0.1.0 differs on the bug payload, as it should). The floor is
a no-op call of the same shape. Rounds alternate the encoders, so drift on a shared machine
hits all alike; medians and minimums of per-call µs. Also the entry header (17 fields),
json.dumps as before against orjson now.

    python bench/canonical.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from common import median, write

import signoff_client.canonical as canonical
from signoff import pb
from signoff.core.jsonify import decision_to_dict, request_to_dict
from signoff_client.canonical import digest_document

BEFORE = "0de91d0"  # the commit before the 0.2.0 encoder
TARGET_SECONDS = 0.04  # per encoder per round


def _request(items: int = 2) -> pb.common.ActionRequest:
    req = pb.common.ActionRequest(request_id="T-1234:b94c45c0", justification="double charge")
    req.action.name = "refund.issue"
    req.action.params.update(
        {
            "amount": 750,
            "currency": "EUR",
            "order_id": "ord-12345",
            "card_number": "[REDACTED]",
            "reason": "damaged item, customer sent photos",
            "items": [
                {"sku": f"SKU-{i:05d}", "qty": 1 + i % 3, "price": 12.5 + i, "note": "boxed"}
                for i in range(items)
            ],
        }
    )
    req.principal.id = "support-bot-7"
    req.principal.kind = "agent"
    req.principal.roles.extend(["agent", "support"])
    req.principal.tags.extend(["eu"])
    req.principal.attributes.update({"team": "support", "level": 2})
    req.resource.kind, req.resource.id = "account", "acct_42"
    req.resource.attributes.update({"tier": "gold", "region": "eu-west", "balance": 1250.75})
    req.context.update({"ticket": "T-1234", "channel": "chat", "session": "s-99"})
    return req


def _decision() -> pb.common.Decision:
    d = pb.common.Decision(
        decision_id="dec-01JEXAMPLE0000000000000000",
        request_id="T-1234:b94c45c0",
        outcome=pb.common.OUTCOME_REQUIRE_REVIEW,
        reason="refunds over 500 EUR need finance",
        reviewer_group="finance",
        review_id="rev-01JEXAMPLE0000000000000000",
        policy_version="sha256:3a9f0c1d",
    )
    d.evaluated_at.FromJsonString("2026-12-04T12:00:00.123456Z")
    d.matched_rules.add(
        file="policies/refunds.yaml",
        policy="refunds",
        rule="large-refund",
        line=14,
        decision=pb.common.RULE_DECISION_REVIEW,
        reason="over 500",
        reviewer_group="finance",
    )
    return d


def _decision_payload(items: int = 2) -> dict[str, Any]:
    """As app/decisions.py builds a decision entry's payload."""
    return {
        "request": request_to_dict(_request(items)),
        "decision": decision_to_dict(_decision()),
        "decided_by": "rule",
        "shadow": [],
    }


def payloads() -> dict[str, Any]:
    """The payloads measured, by name."""
    params = request_to_dict(_request())["action"]["params"]
    edited = {**params, "amount": 500.0}
    review = {
        "state": "MODIFIED",
        "version": 3,
        "reviewer_group": "finance",
        "action_digest": "a" * 64,
        "final_digest": "b" * 64,
        "act": {"reviewer": "alice", "roles": ["reviewer:finance"], "verdict": "MODIFY"},
        "requested_params": params,
        "actor_roles": ["reviewer:finance"],
        "review_digest": "c" * 64,
    }
    review["act"]["params"] = edited
    big_number = _decision_payload()
    big_number["request"]["action"]["params"]["amount"] = 2.0**60
    astral = _decision_payload()
    astral["request"]["context"]["\U0001f600 mood"] = "\ufb33"
    return {
        "decision entry": _decision_payload(),
        "review entry": review,
        "action digest document": digest_document(
            "refund.issue", params, {"id": "support-bot-7", "kind": "agent"}, {"id": "acct_42"}
        ),
        "decision entry, 200 items": _decision_payload(200),
        "with 2.0**60 (fixed bug)": big_number,
        "with a key above U+FFFF": astral,
    }


def _before() -> Callable[[Any], str]:
    """canonical_json as of BEFORE, loaded from git."""
    repo = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "show", f"{BEFORE}:clients/python/signoff_client/canonical.py"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("canonical_before", f.name)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    Path(f.name).unlink()
    return module.canonical_json


def _pure(value: Any) -> str:
    saved, canonical.orjson = canonical.orjson, None
    try:
        return canonical.canonical_json(value)
    finally:
        canonical.orjson = saved


def encoders() -> dict[str, Callable[[Any], object]]:
    """The encoders measured, by name; each returns the canonical text or bytes."""
    out: dict[str, Callable[[Any], object]] = {
        "floor (no-op call)": lambda v: None,
        "0.1.0 canonical_json": _before(),
        "now, orjson (server)": canonical.canonical_json_bytes,
        "now, pure Python (client default)": _pure,
        "reference encoder": canonical._exact,
    }
    try:
        import msgspec

        enc = msgspec.json.Encoder(order="sorted")

        def walk_msgspec(value: Any) -> bytes:
            # Same walk; msgspec has no Fragment, so this is valid only for payloads that
            # need none (it is checked against the others before it is timed).
            saved, canonical.orjson = canonical.orjson, None
            try:
                return enc.encode(canonical._prepared(value))
            finally:
                canonical.orjson = saved

        out["walk + msgspec (not taken)"] = walk_msgspec
    except ImportError:
        pass
    return out


def _per_call_us(fn: Callable[[Any], object], value: Any, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn(value)
    return (time.perf_counter() - started) / calls * 1e6


def _text(result: object) -> str:
    return result.decode() if isinstance(result, bytes) else str(result)


def measure(rounds: int) -> dict[str, Any]:
    """Check every encoder agrees, then time each on each payload."""
    rows: list[dict[str, Any]] = []
    encs = encoders()
    for name, value in payloads().items():
        expected = canonical._exact(value)
        usable: dict[str, Callable[[Any], object]] = {}
        notes: dict[str, str] = {}
        for ename, fn in encs.items():
            if "floor" in ename:
                usable[ename] = fn
                continue
            try:
                got = _text(fn(value))
            except Exception as exc:  # an encoder that cannot is noted, not timed
                notes[ename] = f"fails: {type(exc).__name__}"
                continue
            if got != expected:
                notes[ename] = "different bytes"
                if "0.1.0" not in ename:
                    continue  # only the old encoder is timed although it is wrong
            usable[ename] = fn
        calls = {e: _calls(fn, value) for e, fn in usable.items()}
        runs: dict[str, list[float]] = {e: [] for e in usable}
        for _ in range(rounds):
            for ename, fn in usable.items():
                runs[ename].append(_per_call_us(fn, value, calls[ename]))
        rows.append(
            {
                "payload": name,
                "bytes": len(expected.encode()),
                "median_us": {e: round(median(xs), 2) for e, xs in runs.items()},
                "min_us": {e: round(min(xs), 2) for e, xs in runs.items()},
                "notes": notes,
            }
        )
    return {"rounds": rounds, "rows": rows, "header": _header(rounds)}


def _calls(fn: Callable[[Any], object], value: Any) -> int:
    started = time.perf_counter()
    n = 0
    while time.perf_counter() - started < 0.01:
        fn(value)
        n += 1
    return max(10, int(n * TARGET_SECONDS / 0.01))


def _header(rounds: int) -> dict[str, float]:
    """The 17-field entry header: json.dumps as 0.1.0 wrote it, orjson now."""
    obj = {k: "x" * 20 for k in "abcdefghijklmnop"} | {"rules": ["r1", "r2"], "seq": 123456}
    old: Callable[[Any], object] = lambda o: json.dumps(  # noqa: E731
        o, ensure_ascii=False, separators=(",", ":"), sort_keys=True
    ).encode("utf-8")
    new: Callable[[Any], object] = lambda o: orjson.dumps(o, option=orjson.OPT_SORT_KEYS)  # noqa: E731
    assert old(obj) == new(obj)
    runs: dict[str, list[float]] = {"json.dumps (0.1.0)": [], "orjson (now)": []}
    for _ in range(rounds):
        runs["json.dumps (0.1.0)"].append(_per_call_us(old, obj, 20_000))
        runs["orjson (now)"].append(_per_call_us(new, obj, 20_000))
    return {k: round(median(v), 2) for k, v in runs.items()}


def main() -> int:
    """Run, print a table, write results/canonical.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    result = measure(args.rounds)
    path = write("canonical", result)
    for row in result["rows"]:
        print(f"\n{row['payload']} ({row['bytes']} bytes): median / min µs per call")
        for ename, us in row["median_us"].items():
            note = row["notes"].get(ename, "")
            print(f"  {ename:<36} {us:9.2f} {row['min_us'][ename]:9.2f}  {note}")
        for ename, note in row["notes"].items():
            if ename not in row["median_us"]:
                print(f"  {ename:<36} {'-':>9} {'-':>9}  {note}")
    print(f"\nentry header, median µs: {result['header']}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
