"""Request validation: every rejection names the field and the limit (pure, no I/O)."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

from google.protobuf import struct_pb2

from signoff import pb
from signoff.errors import InvalidArgument
from signoff.limits.fields import FieldLimitSettings

# Dotted segments of letters, digits, '_' and '-': what globs in policy files can match.
ACTION_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
MAX_ACTION_NAME = 200
MAX_ID = 200
MAX_JUSTIFICATION = 16 * 1024
PRINCIPAL_KINDS = ("", "agent", "user", "service")


@dataclass(frozen=True)
class Limits:
    """Size limits applied to every request."""

    max_params_bytes: int = 256 * 1024
    max_context_bytes: int = 256 * 1024
    max_depth: int = 20
    max_batch: int = 100
    fields: FieldLimitSettings = dataclasses.field(default_factory=FieldLimitSettings)
    page_bytes: int = 2 << 20  # a read page's byte budget (FieldLimitSettings.budgets)
    entry_bytes: int = 1 << 20  # the largest audit entry or stored review

    @property
    def sizes(self) -> dict[str, int]:
        """Bound class -> size, for the field table (validate_fields.TABLE)."""
        f = self.fields
        return {
            "name": f.name_bytes,
            "pattern": f.pattern_bytes,
            "token": f.token_bytes,
            "text": f.text_bytes,
            "value": f.value_bytes,
            "attributes": f.attributes_bytes,
            "params": self.max_params_bytes,
            "context": self.max_context_bytes,
            "list": f.list_items,
            "batch": self.max_batch,
        }


def validate_request(req: pb.common.ActionRequest, limits: Limits, prefix: str = "") -> None:
    """Raise InvalidArgument naming the first bad field of an ActionRequest."""
    name = req.action.name
    if not name:
        raise InvalidArgument(f"{prefix}action.name", "is required, e.g. 'refund.issue'")
    if len(name) > MAX_ACTION_NAME:
        raise InvalidArgument(
            f"{prefix}action.name", f"{len(name)} characters exceeds the {MAX_ACTION_NAME} limit"
        )
    if not ACTION_NAME_RE.match(name):
        raise InvalidArgument(
            f"{prefix}action.name",
            f"{name!r} is not a dotted name (letters, digits, '_', '-' separated by single dots)",
        )
    if len(req.request_id) > MAX_ID:
        raise InvalidArgument(f"{prefix}request_id", f"longer than {MAX_ID} characters")
    if req.principal.kind not in PRINCIPAL_KINDS:
        raise InvalidArgument(
            f"{prefix}principal.kind",
            f"{req.principal.kind!r} is not one of agent, user, service",
        )
    if len(req.justification) > MAX_JUSTIFICATION:
        raise InvalidArgument(
            f"{prefix}justification", f"longer than {MAX_JUSTIFICATION // 1024} KiB"
        )
    _check_size(f"{prefix}action.params", req.action.params, limits.max_params_bytes)
    _check_size(f"{prefix}context", req.context, limits.max_context_bytes)
    for field, struct in (
        ("action.params", req.action.params),
        ("context", req.context),
        ("principal.attributes", req.principal.attributes),
        ("resource.attributes", req.resource.attributes),
    ):
        _check_values(f"{prefix}{field}", struct, limits.max_depth)


def validate_batch(reqs: list[pb.common.ActionRequest], limits: Limits) -> None:
    """Validate a batch: its size, then every request (the field names the index)."""
    if not reqs:
        raise InvalidArgument("requests", "is empty")
    if len(reqs) > limits.max_batch:
        raise InvalidArgument(
            "requests", f"{len(reqs)} requests exceeds the batch limit of {limits.max_batch}"
        )
    for i, r in enumerate(reqs):
        validate_request(r, limits, prefix=f"requests[{i}].")


def check_struct(field: str, struct: struct_pb2.Struct, max_bytes: int, max_depth: int) -> None:
    """Raise InvalidArgument if a Struct is too large, too deep or holds non-finite numbers."""
    _check_size(field, struct, max_bytes)
    _check_values(field, struct, max_depth)


def _check_size(field: str, struct: struct_pb2.Struct, limit: int) -> None:
    size = struct.ByteSize()
    if size > limit:
        raise InvalidArgument(
            field, f"{_kib(size)} exceeds the {_kib(limit)} limit; send a reference instead"
        )


def _kib(n: int) -> str:
    return f"{n / 1024:.0f} KiB" if n >= 1024 else f"{n} bytes"


def _check_values(field: str, struct: struct_pb2.Struct, limit: int) -> None:
    # Iterative walk: a recursive one is what hostile nesting is designed to break.
    # NaN and infinities have no JSON form, so the audit log could not record them.
    stack: list[tuple[struct_pb2.Value | struct_pb2.Struct, int]] = [(struct, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise InvalidArgument(field, f"nested deeper than the {limit}-level limit")
        if isinstance(node, struct_pb2.Struct):
            stack.extend((v, depth) for v in node.fields.values())
            continue
        kind = node.WhichOneof("kind")
        if kind == "number_value" and not math.isfinite(node.number_value):
            raise InvalidArgument(field, f"contains {node.number_value}, which JSON cannot carry")
        if kind == "struct_value":
            stack.append((node.struct_value, depth + 1))
        elif kind == "list_value":
            stack.extend((v, depth + 1) for v in node.list_value.values)
