"""Build `signoff.v1.ActionRequest` messages from what callers pass, checking types first."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from google.protobuf import struct_pb2

from signoff_client import _struct
from signoff_client._gen import common_pb2
from signoff_client.errors import InvalidArgument
from signoff_client.models import Principal, Request, Resource


def new_request_id() -> str:
    """Return a fresh idempotency key (a random UUID)."""
    return str(uuid.uuid4())


def as_request(value: Request | Mapping[str, Any], path: str) -> Request:
    """Return `value` as a Request; a mapping takes the keyword names of `evaluate`."""
    if isinstance(value, Request):
        return value
    if not isinstance(value, Mapping):
        raise InvalidArgument(
            f"expected a Request or a mapping, got {type(value).__name__}", field=path
        )
    _check_keys(value, {f.name for f in fields(Request)}, path)
    if "action" not in value:
        raise InvalidArgument("required", field=_field(path, "action"))
    return Request(**value)


def to_proto(req: Request, path: str = "", *, with_id: bool = True) -> common_pb2.ActionRequest:
    """Return the ActionRequest for `req`; a missing request_id is generated if `with_id`."""
    if not isinstance(req.action, str):
        raise InvalidArgument(
            f"expected a str, got {type(req.action).__name__}", field=_field(path, "action.name")
        )
    _check_str(req.justification, _field(path, "justification"))
    request_id = req.request_id
    if request_id is not None:
        _check_str(request_id, _field(path, "request_id"))
    if not request_id and with_id:
        request_id = new_request_id()
    return common_pb2.ActionRequest(
        request_id=request_id or "",
        action=common_pb2.Action(
            name=req.action,
            params=_optional_struct(req.params, _field(path, "action.params")),
        ),
        principal=_principal(req.principal, _field(path, "principal")),
        resource=_resource(req.resource, _field(path, "resource")),
        context=_optional_struct(req.context, _field(path, "context")),
        justification=req.justification,
    )


def _principal(value: object, path: str) -> common_pb2.Principal | None:
    if value is None or isinstance(value, common_pb2.Principal):
        return value
    if isinstance(value, str):
        return common_pb2.Principal(id=value)
    if isinstance(value, Mapping):
        _check_keys(value, {f.name for f in fields(Principal)}, path)
        value = Principal(**value)
    if not isinstance(value, Principal):
        raise InvalidArgument(
            f"expected a str, Principal or mapping, got {type(value).__name__}", field=path
        )
    for name in ("id", "kind", "on_behalf_of"):
        _check_str(getattr(value, name), _field(path, name))
    return common_pb2.Principal(
        id=value.id,
        kind=value.kind,
        roles=_strings(value.roles, _field(path, "roles")),
        tags=_strings(value.tags, _field(path, "tags")),
        on_behalf_of=value.on_behalf_of,
        attributes=_optional_struct(value.attributes, _field(path, "attributes")),
    )


def _resource(value: object, path: str) -> common_pb2.Resource | None:
    if value is None or isinstance(value, common_pb2.Resource):
        return value
    if isinstance(value, Mapping):
        _check_keys(value, {f.name for f in fields(Resource)}, path)
        value = Resource(**value)
    if not isinstance(value, Resource):
        raise InvalidArgument(
            f"expected a Resource or mapping, got {type(value).__name__}", field=path
        )
    _check_str(value.kind, _field(path, "kind"))
    _check_str(value.id, _field(path, "id"))
    return common_pb2.Resource(
        kind=value.kind,
        id=value.id,
        attributes=_optional_struct(value.attributes, _field(path, "attributes")),
    )


def _optional_struct(value: Mapping[str, Any] | None, path: str) -> struct_pb2.Struct | None:
    # Unset rather than empty: the message stays as small as what the caller said (the
    # server presents both the same way to CEL).
    return None if value is None else _struct.to_struct(value, path)


def _strings(value: object, path: str) -> list[str]:
    # A bare string is a Sequence of characters: roles="admin" would become five roles.
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidArgument(f"expected a list of str, got {type(value).__name__}", field=path)
    for i, item in enumerate(value):
        _check_str(item, f"{path}[{i}]")
    return list(value)


def _check_str(value: object, path: str) -> None:
    if not isinstance(value, str):
        raise InvalidArgument(f"expected a str, got {type(value).__name__}", field=path)


def _check_keys(value: Mapping[Any, Any], allowed: set[str], path: str) -> None:
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise InvalidArgument(
            f"unknown key {unknown[0]!r} (expected one of {', '.join(sorted(allowed))})",
            field=path,
        )


def _field(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
