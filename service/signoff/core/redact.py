"""Mask sensitive request fields (a policy's `redact` paths) before they are stored or shown."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

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
    return masked(request, paths) or _copy(request)


def masked(
    request: pb.common.ActionRequest, paths: Iterable[str]
) -> pb.common.ActionRequest | None:
    """The redacted copy of `request`, or None when it holds no value at any of `paths`.

    None means the redacted request would equal `request`: nothing to hide, so the caller
    may show texts computed from the real request (see decide.py).
    """
    copy: pb.common.ActionRequest | None = None
    for path in _with_claims(paths):
        segments, struct_of, key, whole = _parse(path)
        if struct_of is not None:
            if key not in struct_of(request).fields:
                continue  # the common case, decided in a dict lookup: no value there
            if whole:  # the path ends at the key: mask its value, no walk
                copy = copy or _copy(request)
                struct_of(copy).fields[key].string_value = MASK
                continue
        if copy is None:
            if not _mask_message(request, segments, dry=True):
                continue
            copy = _copy(request)
        _mask_message(copy, segments, dry=False)
    return copy


def _with_claims(paths: Iterable[str]) -> Iterable[str]:
    """`paths`, each followed by its twin under principal.claimed if it has one."""
    for path in paths:
        yield path
        if claim := _claim_path(path):
            yield claim


@functools.lru_cache(maxsize=1024)
def _claim_path(path: str) -> str | None:
    # What the caller sent for a principal field is kept under principal.claimed (see
    # auth/principals.py): a path that hides the field hides the claim too.
    head, _, rest = path.partition(".")
    if head == "principal" and rest.partition(".")[0] in _CLAIMABLE:
        return f"principal.claimed.{rest}"
    return None


# The Structs a path may start with; `context` is one itself.
_StructOf = Callable[[pb.common.ActionRequest], struct_pb2.Struct]
_STRUCT_ROOTS: dict[str, _StructOf] = {
    "action.params": lambda r: r.action.params,
    "principal.attributes": lambda r: r.principal.attributes,
    "resource.attributes": lambda r: r.resource.attributes,
    "context": lambda r: r.context,
}


@functools.lru_cache(maxsize=1024)
def _parse(path: str) -> tuple[list[str], _StructOf | None, str, bool]:
    """(segments, Struct, key, whole): for a path into a top-level Struct, that Struct, the
    key under it, and whether the path ends there; (segments, None, "", False) otherwise.

    Paths come from the policy files (a bounded set), requests from callers: the cache
    turns the check most decisions need (no such key) into one dict lookup.
    """
    segments = path.split(".")
    for depth in (2, 1):
        root = ".".join(segments[:depth])
        if root in _STRUCT_ROOTS and len(segments) > depth:
            return segments, _STRUCT_ROOTS[root], segments[depth], len(segments) == depth + 1
    return segments, None, "", False


def _copy(request: pb.common.ActionRequest) -> pb.common.ActionRequest:
    copy = pb.common.ActionRequest()
    copy.CopyFrom(request)
    return copy


# Each function below returns whether a value lies at the path; with `dry` it only looks
# (the request is the caller's and must not change), otherwise it masks what it finds.


def _mask_message(message: Message, segments: list[str], dry: bool) -> bool:
    name, rest = segments[0], segments[1:]
    field = message.DESCRIPTOR.fields_by_name.get(name)
    if field is None:
        return False
    is_repeated = getattr(field, "is_repeated", None)
    repeated = is_repeated if is_repeated is not None else field.label == field.LABEL_REPEATED
    if field.message_type is None:
        if rest or field.type != field.TYPE_STRING:
            return False  # a scalar has no children; only strings can hold the mask
        if repeated:
            values = getattr(message, name)
            if values and not dry:
                values[:] = [MASK] * len(values)
            return bool(values)
        if not getattr(message, name):
            return False
        if not dry:
            setattr(message, name, MASK)
        return True
    if repeated or not message.HasField(name):
        return False
    child = getattr(message, name)
    if isinstance(child, struct_pb2.Struct):
        if rest:
            return _mask_struct(child, rest, dry)
        if not dry:
            child.Clear()
            child["redacted"] = MASK  # the whole map: keep it a map, say why it is empty
        return True
    return bool(rest) and _mask_message(child, rest, dry)


def _mask_struct(struct: struct_pb2.Struct, segments: list[str], dry: bool) -> bool:
    key, rest = segments[0], segments[1:]
    if key not in struct.fields:
        return False
    return _mask_value(struct.fields[key], rest, dry)


def _mask_value(value: struct_pb2.Value, segments: list[str], dry: bool) -> bool:
    if not segments:
        if not dry:
            value.string_value = MASK
        return True
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return _mask_struct(value.struct_value, segments, dry)
    if kind != "list_value":
        return False
    items = value.list_value.values
    if segments[0].isdigit():
        index = int(segments[0])
        return index < len(items) and _mask_value(items[index], segments[1:], dry)
    found = False
    for item in items:
        found = _mask_value(item, segments, dry) or found  # every element, not the first
    return found
