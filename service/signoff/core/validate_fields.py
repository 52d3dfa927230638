"""The size bound of every request field, and the one walk that checks them (pure, no I/O).

`TABLE` maps each string, repeated, map and Struct field of every request message to a bound
class; the settings (limits.fields, max_params_bytes...) give each class its size. Sizes are
counted as stored, in canonical JSON (UTF-8, control characters as \\uXXXX), and as sent, in
protobuf; the larger counts. A test walks every request message of every RPC and fails on a
field missing here, so a new field cannot arrive unbounded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from signoff.core.jsonify import struct_to_dict, value_to_py
from signoff.errors import InvalidArgument

# Where each bound class's size is configured, for error messages and the docs.
SETTING = {
    "name": "limits.fields.name_bytes",
    "pattern": "limits.fields.pattern_bytes",
    "token": "limits.fields.token_bytes",
    "text": "limits.fields.text_bytes",
    "value": "limits.fields.value_bytes",
    "attributes": "limits.fields.attributes_bytes",
    "params": "max_params_bytes",
    "context": "max_context_bytes",
    "list": "limits.fields.list_items",
    "batch": "max_batch",
}
# Fixed-size well-known types: nothing to bound inside them.
_FIXED = {"google.protobuf.Timestamp", "google.protobuf.Duration"}
_JSONISH = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}
# No character takes more than 6 bytes escaped (\uXXXX) or encoded (4 UTF-8 bytes), and no
# Struct's JSON is more than 6 times its protobuf size: below that, nothing needs counting.
_WORST = 6


@dataclass(frozen=True)
class Bound:
    """A field's bound: `size` classes each value, `items` the count of a repeated field."""

    size: str | None
    items: str | None = None


_P = "signoff.v1."
TABLE: dict[str, Bound] = {
    # ActionRequest (Evaluate, Explain, EvaluateBatch.requests[], Screen.requests[])
    f"{_P}ActionRequest.request_id": Bound("name"),
    f"{_P}ActionRequest.justification": Bound("text"),
    f"{_P}ActionRequest.context": Bound("context"),
    f"{_P}Action.name": Bound("name"),
    f"{_P}Action.params": Bound("params"),
    f"{_P}Principal.id": Bound("name"),
    f"{_P}Principal.kind": Bound("name"),
    f"{_P}Principal.roles": Bound("name", "list"),
    f"{_P}Principal.tags": Bound("name", "list"),
    f"{_P}Principal.on_behalf_of": Bound("name"),
    f"{_P}Principal.attributes": Bound("attributes"),
    f"{_P}PrincipalClaims.kind": Bound("name"),
    f"{_P}PrincipalClaims.roles": Bound("name", "list"),
    f"{_P}PrincipalClaims.tags": Bound("name", "list"),
    f"{_P}PrincipalClaims.on_behalf_of": Bound("name"),
    f"{_P}PrincipalClaims.attributes": Bound("attributes"),
    f"{_P}Resource.kind": Bound("name"),
    f"{_P}Resource.id": Bound("name"),
    f"{_P}Resource.attributes": Bound("attributes"),
    f"{_P}EvaluateBatchRequest.requests": Bound(None, "batch"),
    f"{_P}ScreenRequest.requests": Bound(None, "batch"),
    f"{_P}ScreenRequest.varying": Bound("name", "list"),
    # ReviewService
    f"{_P}ListReviewsRequest.reviewer_groups": Bound("name", "list"),
    f"{_P}ListReviewsRequest.states": Bound(None, "list"),
    f"{_P}ListReviewsRequest.page_token": Bound("token"),
    f"{_P}ListReviewsRequest.action": Bound("pattern"),
    f"{_P}GetReviewRequest.review_id": Bound("name"),
    f"{_P}WatchReviewRequest.review_id": Bound("name"),
    f"{_P}SubmitReviewRequest.review_id": Bound("name"),
    f"{_P}SubmitReviewRequest.params": Bound("params"),
    f"{_P}SubmitReviewRequest.comment": Bound("text"),
    f"{_P}GrantSpec.bounds": Bound(None, "list"),
    f"{_P}GrantBound.path": Bound("name"),
    f"{_P}GrantBound.op": Bound("name"),
    f"{_P}GrantBound.value": Bound("value"),
    f"{_P}SubmitReviewsRequest.reviews": Bound(None, "batch"),
    f"{_P}SubmitReviewsRequest.comment": Bound("text"),
    f"{_P}ReviewRef.review_id": Bound("name"),
    f"{_P}CancelReviewRequest.review_id": Bound("name"),
    f"{_P}CancelReviewRequest.reason": Bound("text"),
    f"{_P}WatchQueueRequest.reviewer_groups": Bound("name", "list"),
    f"{_P}ListPrecedentsRequest.review_id": Bound("name"),
    f"{_P}ListGrantsRequest.reviewer_group": Bound("name"),
    f"{_P}RevokeGrantRequest.grant_id": Bound("name"),
    f"{_P}RevokeGrantRequest.reason": Bound("text"),
    # AuditService
    f"{_P}QueryAuditRequest.page_token": Bound("token"),
    f"{_P}AuditFilter.types": Bound("name", "list"),
    f"{_P}AuditFilter.action": Bound("pattern"),
    f"{_P}AuditFilter.outcomes": Bound(None, "list"),
    f"{_P}AuditFilter.principal": Bound("name"),
    f"{_P}AuditFilter.reviewer": Bound("name"),
    f"{_P}AuditFilter.reviewer_group": Bound("name"),
    f"{_P}AuditFilter.rule": Bound("name"),
    f"{_P}AuditFilter.review_state": Bound("name"),
    f"{_P}AuditFilter.policy_version": Bound("name"),
    f"{_P}AuditFilter.decision_id": Bound("name"),
    f"{_P}AuditFilter.review_id": Bound("name"),
    f"{_P}AuditFilter.request_id": Bound("name"),
    f"{_P}AddCosignatureRequest.public_key_pem": Bound("text"),
    f"{_P}Cosignature.log_key_id": Bound("name"),
    f"{_P}Cosignature.root_hash": Bound("name"),
    f"{_P}Cosignature.key_id": Bound("name"),
    f"{_P}Cosignature.signature": Bound("name"),
    # GetReceiptProof: a receipt as the server issued it (a payload of a few hundred bytes,
    # a 64-byte signature, a path of at most 64 hashes of 32 bytes)
    f"{_P}Receipt.payload": Bound("text"),
    f"{_P}Receipt.signature": Bound("name"),
    f"{_P}Receipt.key_id": Bound("name"),
    f"{_P}Receipt.path": Bound("name", "list"),
    # PolicyService
    f"{_P}GetInsightsRequest.reviewer_group": Bound("name"),
}
# A field missing from the table gets the tightest bound, so it fails loudly, not silently.
_DEFAULT = Bound("name", "list")


def needs_bound(fd: FieldDescriptor) -> bool:
    """True for the fields the table must cover: strings, bytes, repeated, maps, Structs."""
    mt = fd.message_type
    if fd.is_repeated:
        return True
    if mt is not None:
        return mt.full_name in _JSONISH
    return fd.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)


def unbounded_fields(root: Descriptor) -> list[str]:
    """The fields reachable from `root` that need a bound and have none in TABLE."""
    missing: list[str] = []
    seen: set[str] = set()
    stack = [root]
    while stack:
        d = stack.pop()
        if d.full_name in seen:
            continue
        seen.add(d.full_name)
        for fd in d.fields:
            if needs_bound(fd) and fd.full_name not in TABLE:
                missing.append(fd.full_name)
            mt = fd.message_type
            if mt is not None and mt.full_name not in _JSONISH | _FIXED:
                stack.append(mt)
    return missing


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    size: str | None  # the bound class of each value, None: not counted
    items: str | None  # the bound class of the count, for repeated fields and maps
    kind: int  # _NESTED, _TEXT, _JSON or _OTHER
    presence: bool


_NESTED, _TEXT, _JSON, _OTHER = range(4)
# Descriptor lookups (full_name, GetOptions) and ListFields cost microseconds each in upb:
# each message type's plan is made once, and fields are read by name.
_PLANS: dict[Descriptor, tuple[_Field, ...]] = {}


def _plan(d: Descriptor) -> tuple[_Field, ...]:
    plan = _PLANS.get(d)
    if plan is None:
        plan = _PLANS[d] = tuple(_field(fd) for fd in d.fields)
    return plan


def _field(fd: FieldDescriptor) -> _Field:
    mt = fd.message_type
    bound = TABLE.get(fd.full_name, _DEFAULT)
    if mt is None:
        text = fd.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)
        kind = _TEXT if text else _OTHER
    elif mt.full_name in _JSONISH:
        kind = _JSON
    elif mt.full_name in _FIXED or mt.GetOptions().map_entry:
        # No request has a map today: its entries are counted, not walked (the table would
        # need key and value classes).
        kind = _OTHER
    else:
        kind = _NESTED
    return _Field(
        name=fd.name,
        size=bound.size,
        items=bound.items if fd.is_repeated else None,
        kind=kind,
        # Singular messages are read only when set: reading an unset one is wasted work.
        presence=mt is not None and not fd.is_repeated,
    )


def check_fields(msg: Message, sizes: Mapping[str, int], prefix: str = "") -> None:
    """Raise InvalidArgument naming the first field of `msg` over its bound."""
    # The hot path of every call: a value small enough that no encoding could take it over
    # its bound is never encoded.
    for info in _plan(msg.DESCRIPTOR):
        name = info.name
        if info.presence and not msg.HasField(name):
            continue
        value = getattr(msg, name)
        kind = info.kind
        if info.items is not None:
            if len(value) > sizes[info.items]:
                limit = sizes[info.items]
                raise InvalidArgument(
                    f"{prefix}{name}",
                    f"{len(value)} entries exceeds the limit of {limit} ({SETTING[info.items]})",
                )
            if kind == _OTHER:
                continue
            for i, item in enumerate(value):
                if kind == _NESTED or _maybe_over(kind, item, info, sizes):
                    _check_value(f"{prefix}{name}[{i}]", info, item, sizes)
        elif kind == _NESTED:
            check_fields(value, sizes, f"{prefix}{name}.")
        elif kind != _OTHER and _maybe_over(kind, value, info, sizes):
            _check_value(f"{prefix}{name}", info, value, sizes)


def _maybe_over(kind: int, value: Any, info: _Field, sizes: Mapping[str, int]) -> bool:
    if info.size is None:
        return False
    n = len(value) if kind == _TEXT else value.ByteSize()
    return n * _WORST > sizes[info.size]


def _check_value(path: str, info: _Field, value: object, sizes: Mapping[str, int]) -> None:
    if info.kind == _NESTED:
        assert isinstance(value, Message)
        check_fields(value, sizes, f"{path}.")
        return
    if info.size is None:
        return
    limit = sizes[info.size]
    n = encoded_size(value, limit)
    if n is not None:
        raise InvalidArgument(
            path, f"{_human(n)} encoded exceeds the {_human(limit)} limit ({SETTING[info.size]})"
        )


def encoded_size(value: object, limit: int) -> int | None:
    """The larger of the protobuf and the canonical JSON size of `value` if it exceeds
    `limit`, else None (small values are not encoded at all)."""
    if isinstance(value, str):
        if len(value) * _WORST <= limit:
            return None
        n = len(json.dumps(value, ensure_ascii=False).encode()) - 2
    elif isinstance(value, bytes):
        n = len(value)
    elif isinstance(value, struct_pb2.Struct | struct_pb2.Value | struct_pb2.ListValue):
        wire = value.ByteSize()
        if wire * _WORST <= limit:
            return None
        if isinstance(value, struct_pb2.Struct):
            py: object = struct_to_dict(value)
        elif isinstance(value, struct_pb2.Value):
            py = value_to_py(value)
        else:
            py = [value_to_py(v) for v in value.values]
        text = json.dumps(py, ensure_ascii=False, separators=(",", ":"))
        n = max(wire, len(text.encode()))
    else:
        return None
    return n if n > limit else None


def _human(n: int) -> str:
    return f"{n / 1024:.0f} KiB" if n >= 10 * 1024 else f"{n} bytes"


def reference(sizes: Mapping[str, int]) -> str:
    """docs/request-limits.md: the table, each bound with its setting and default size."""
    lines = [
        "# Request field limits",
        "",
        "<!-- Generated from service/signoff/core/validate_fields.py (TABLE); do not edit. "
        "tests/unit/test_field_bounds.py fails when this file is stale; regenerate with",
        "     python -c 'from signoff.core.validate_fields import write_reference; "
        "write_reference()' -->",
        "",
        "Every string, list and Struct of every request is bounded. Sizes are encoded bytes: "
        "the larger of the protobuf size and the canonical JSON the audit log stores, where a "
        "control character takes 6 bytes (`\\u0001`). A request over a bound is refused with "
        "INVALID_ARGUMENT naming the field, its bound and the setting. Besides these, an audit "
        "entry may not exceed `limits.fields.max_audit_entry_bytes` and a page of a read "
        "stops at `limits.fields.max_page_bytes` (see configuration.md).",
        "",
        "| Field | Bound | Setting | Default |",
        "|---|---|---|---|",
    ]
    for key, bound in TABLE.items():
        field = key.removeprefix(_P)
        for cls, what in ((bound.items, "entries"), (bound.size, "bytes")):
            if cls is not None:
                label = what if what == "entries" else "bytes each" if bound.items else what
                lines.append(f"| `{field}` | {label} | `{SETTING[cls]}` | {sizes[cls]:,} |")
    return "\n".join(lines) + "\n"


def write_reference() -> None:
    """Regenerate docs/request-limits.md from the table and the default settings."""
    from pathlib import Path

    from signoff.core.validate import Limits

    path = Path(__file__).resolve().parents[3] / "docs" / "request-limits.md"
    path.write_text(reference(Limits().sizes))
