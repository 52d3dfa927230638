"""Mask sensitive request fields (a policy's `redact` paths) before they are stored or shown."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import struct_pb2
from google.protobuf.message import Message

from signoff import pb

MASK = "[REDACTED]"
_CLAIMABLE = frozenset(pb.common.PrincipalClaims.DESCRIPTOR.fields_by_name)


def redact(request: pb.common.ActionRequest, paths: Iterable[str]) -> pb.common.ActionRequest:
    """Return a copy of `request` with every value at `paths` replaced by "[REDACTED]".

    A path is dotted from `action.`, `principal.`, `resource.` or `context.`, e.g.
    `action.params.card_number`. Inside a Struct, a numeric segment indexes a list and any
    other segment applies to every element of a list (`action.params.cards.number`).
    A whole Struct value (a map or list) is replaced by the mask. Paths that do not exist
    in this request are ignored: redaction never adds fields.
    """
    copy = pb.common.ActionRequest()
    copy.CopyFrom(request)
    for path in paths:
        segments = path.split(".")
        _mask_message(copy, segments)
        if segments[0] == "principal" and len(segments) > 1 and segments[1] in _CLAIMABLE:
            # What the caller sent for a field is kept under principal.claimed (see
            # auth/principals.py): a path that hides the field hides the claim too.
            _mask_message(copy, ["principal", "claimed", *segments[1:]])
    return copy


def _mask_message(message: Message, segments: list[str]) -> None:
    name, rest = segments[0], segments[1:]
    field = message.DESCRIPTOR.fields_by_name.get(name)
    if field is None:
        return
    is_repeated = getattr(field, "is_repeated", None)
    repeated = is_repeated if is_repeated is not None else field.label == field.LABEL_REPEATED
    if field.message_type is None:
        if rest or field.type != field.TYPE_STRING:
            return  # a scalar has no children; only strings can hold the mask
        if repeated:
            values = getattr(message, name)
            values[:] = [MASK] * len(values)
        elif getattr(message, name):
            setattr(message, name, MASK)
        return
    if repeated or not message.HasField(name):
        return
    child = getattr(message, name)
    if isinstance(child, struct_pb2.Struct):
        if rest:
            _mask_struct(child, rest)
        else:
            child.Clear()
            child["redacted"] = MASK  # the whole map: keep it a map, say why it is empty
    elif rest:
        _mask_message(child, rest)


def _mask_struct(struct: struct_pb2.Struct, segments: list[str]) -> None:
    key, rest = segments[0], segments[1:]
    if key not in struct.fields:
        return
    _mask_value(struct.fields[key], rest)


def _mask_value(value: struct_pb2.Value, segments: list[str]) -> None:
    if not segments:
        value.string_value = MASK
        return
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        _mask_struct(value.struct_value, segments)
    elif kind == "list_value":
        items = value.list_value.values
        if segments[0].isdigit():
            if int(segments[0]) < len(items):
                _mask_value(items[int(segments[0])], segments[1:])
        else:
            for item in items:
                _mask_value(item, segments)
