"""An audit record is encoded once, when it is built (`AuditRecord.frame`, `payload_json`,
`rules_json`, `time_text`); the store only splices in seq and prev_hash. These tests hold that
encoding to the one it replaced, byte for byte, over a spread of records: the hashes of
entries already stored depend on it.

`_old_canonical_bytes` and `_old_payload` are the code of core/audit.py before the change
(the whole header encoded per seal; the payload read back through json.loads).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import signoff_client.canonical as canonical
from signoff import pb
from signoff.core.audit import (
    ENCODING_VERSION,
    GENESIS,
    AuditEntry,
    AuditRecord,
    canonical_bytes,
    entry_hash,
    entry_size,
    format_time,
    seal,
    verify_chain,
)
from signoff.core.jsonify import decision_to_dict, request_view
from signoff.store.rows import SQLITE
from signoff.store.sqlite.audit import audit_row
from signoff_client.canonical import canonical_json, canonical_json_plain
from tests.unit.test_canonical_rfc8785 import _DOCS, _KEYS, _TEXT


def _old_canonical_bytes(record: AuditRecord, *, seq: int, prev_hash: str) -> bytes:
    obj = {
        "action_name": record.action_name,
        "actor": record.actor,
        "decision_id": record.decision_id,
        "outcome": record.outcome,
        "policy_version": record.policy_version,
        "prev_hash": prev_hash,
        "principal": record.principal,
        "request_id": record.request_id,
        "review_id": record.review_id,
        "review_state": record.review_state,
        "reviewer": record.reviewer,
        "reviewer_group": record.reviewer_group,
        "rules": list(record.rules),
        "seq": seq,
        "time": format_time(record.time),
        "type": record.type,
        "v": ENCODING_VERSION,
    }
    head = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    cut = head.index(b',"policy_version":')
    payload = canonical_json(record.payload).encode("utf-8")
    return b"".join((head[:cut], b',"payload":', payload, head[cut:]))


def _old_payload(payload: Any) -> Any:
    return json.loads(canonical_json(payload))


def _same_types(a: Any, b: Any) -> bool:
    """Equal, and of the same JSON types all the way down (1 and 1.0 are not the same)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_types(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_types(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _check(record: AuditRecord, seq: int, prev_hash: str) -> None:
    new = canonical_bytes(record, seq=seq, prev_hash=prev_hash)
    assert new == _old_canonical_bytes(record, seq=seq, prev_hash=prev_hash)
    # And the RFC's reference encoder, over the whole object at once.
    whole = {
        **{k: getattr(record, k) for k in ("action_name", "actor", "decision_id", "outcome")},
        **{k: getattr(record, k) for k in ("policy_version", "principal", "request_id")},
        **{k: getattr(record, k) for k in ("review_id", "review_state", "reviewer")},
        "reviewer_group": record.reviewer_group,
        "payload": record.payload,
        "prev_hash": prev_hash,
        "rules": list(record.rules),
        "seq": seq,
        "time": format_time(record.time),
        "type": record.type,
        "v": ENCODING_VERSION,
    }
    assert new == canonical._exact(whole).encode("utf-8")
    digest = hashlib.sha256(prev_hash.encode("ascii") + new).hexdigest()
    assert entry_hash(record, seq=seq, prev_hash=prev_hash) == digest
    assert _same_types(record.payload, _old_payload(record.payload))
    assert record.payload_json == canonical_json(record.payload)
    assert record.rules_json == canonical_json(list(record.rules))
    assert record.time_text == format_time(record.time)
    assert entry_size(record) == len(canonical_bytes(record, seq=0, prev_hash="0" * 64)) + 20


_RUN = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_HEADER_TEXT = _TEXT | st.sampled_from(["", "réfund", "払い戻し", "\U0001f600", 'a"b\\c\n'])


@_RUN
@given(
    payload=st.dictionaries(_KEYS, _DOCS, max_size=6),
    strings=st.lists(_HEADER_TEXT, min_size=10, max_size=10),
    rules=st.lists(_HEADER_TEXT, max_size=4),
    seq=st.integers(1, 2**53),  # past 2**53 RFC 8785 has no exact number for it
    micros=st.integers(0, 10**6 - 1),
)
def test_the_encoding_is_byte_identical_to_the_old_path(
    payload: dict[str, Any], strings: list[str], rules: list[str], seq: int, micros: int
) -> None:
    record = AuditRecord(
        type="review.approved",
        time=dt.datetime(2026, 12, 5, 1, 2, 3, micros, tzinfo=dt.timezone(dt.timedelta(hours=5))),
        actor=strings[0],
        request_id=strings[1],
        decision_id=strings[2],
        review_id=strings[3],
        action_name=strings[4],
        outcome="REQUIRE_REVIEW",
        principal=strings[5],
        reviewer=strings[6],
        reviewer_group=strings[7],
        review_state=strings[8],
        rules=tuple(rules),
        policy_version=strings[9],
        payload=payload,
    )
    _check(record, seq, hashlib.sha256(str(seq).encode()).hexdigest())


def _refund(amount: float, note: str) -> pb.common.ActionRequest:
    req = pb.common.ActionRequest(request_id="T-1:b94c45c0", justification=note)
    req.action.name = "refund.issue"
    req.action.params.update({"amount": amount, "card_number": "4111 1111", "note": note})
    req.principal.id = "support-bot"
    req.principal.tags.extend(["eu", "tier-1"])
    req.resource.kind, req.resource.id = "account", "acct_42"
    req.context.update({"ticket": "T-1234", "nested": {"xs": [1.0, 2.5, -0.0]}})
    return req


@pytest.mark.parametrize(
    ("amount", "note", "paths"),
    [
        (120.0, "double charge", ()),
        (750.0, "remboursé deux fois — ça arrive", ("action.params.card_number",)),
        (2.0**60, "払い戻し \U0001f600 \x00\x1f", ("action.params.card_number", "context.ticket")),
        (1e-7, 'quotes " and \\ and \u2028', ("action.params",)),
    ],
)
def test_decision_records_redacted_or_not_encode_as_before(
    amount: float, note: str, paths: tuple[str, ...]
) -> None:
    view = request_view(_refund(amount, note), paths)
    decision = pb.common.Decision(
        decision_id="d-1", request_id="T-1:b94c45c0", outcome=pb.common.OUTCOME_AUTO_ALLOW
    )
    decision.evaluated_at.FromDatetime(dt.datetime(2026, 12, 5, 0, 0, 1, 5))
    decision.matched_rules.add(rule="small-refund", reason="Petit remboursement ✓")
    record = AuditRecord(
        type="decision",
        time=dt.datetime(2026, 12, 5, 0, 0, 1, 5, tzinfo=dt.UTC),
        actor="support-bot",
        request_id="T-1:b94c45c0",
        decision_id="d-1",
        action_name="refund.issue",
        outcome="AUTO_ALLOW",
        principal="support-bot",
        rules=("small-refund", "réfund-shadow"),
        policy_version="sha256:" + "ab" * 32,
        payload={"request": view.shown_plain, "decision": decision_to_dict(decision)},
    )
    if paths:
        assert "4111 1111" not in record.payload_json
    _check(record, 7, GENESIS)
    # Sealed, stored as a SQLite row and read back: the same entry, and it verifies.
    entry = seal(record, seq=1, prev_hash=GENESIS)
    back = SQLITE.entry(audit_row(entry))
    assert back == entry
    assert back.hash == entry.hash
    assert verify_chain([back]).ok


@_RUN
@given(_DOCS)
def test_the_plain_value_is_what_the_bytes_read_back_as(doc: Any) -> None:
    data, plain = canonical_json_plain(doc)
    assert data == canonical_json(doc).encode("utf-8")
    assert _same_types(plain, json.loads(data))


def test_the_plain_value_does_not_share_the_callers_containers() -> None:
    payload = {"xs": [1.0, {"y": 2}], "t": (3, 4.5)}
    record = AuditRecord(
        type="decision", time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), payload=payload
    )
    payload["xs"][1]["y"] = 99  # type: ignore[index]
    assert record.payload == {"xs": [1, {"y": 2}], "t": [3, 4.5]}
    assert _same_types(record.payload, {"xs": [1, {"y": 2}], "t": [3, 4.5]})


def test_an_entry_read_back_keeps_its_hash_and_frame() -> None:
    entry = seal(
        AuditRecord(
            type="decision",
            time=dt.datetime(999, 1, 1, tzinfo=dt.UTC),  # year padded by hand
            payload={"big": 2.0**60, "k\U0001f600": 1},
            rules=("a", "b"),
        ),
        seq=3,
        prev_hash="f" * 64,
    )
    back = AuditEntry(
        **{k: getattr(entry, k) for k in ("type", "time", "rules", "seq", "prev_hash", "hash")},
        payload=json.loads(entry.payload_json),
    )
    assert back.frame == entry.frame
    assert back.time_text == "0999-01-01T00:00:00.000000Z"
    assert verify_chain([back], "f" * 64, 3).ok


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-7, minutes=-30))])
    )
)
def test_times_are_formatted_as_strftime_did(t: dt.datetime) -> None:
    u = t.astimezone(dt.UTC)
    assert format_time(t) == f"{u.year:04d}" + u.strftime("-%m-%dT%H:%M:%S.%fZ")
