"""Redacted params on the client side: mask them as the server does, and unmask edits.

The server masks a policy's `redact` paths ("action.params.card_number") in the request it
stores and shows to reviewers, and computes review digests over that masked view. So the
client must (1) mask its own params exactly the same way to recompute a digest, and (2)
put the agent's real values back where a reviewer's edited params still hold the mask.

Path rules, as in the server's `signoff.core.redact`: segments after `action.params` walk the
params; a numeric segment indexes a list, any other segment applies to every element of a
list; the value at the end of the path, whatever it is, becomes the string "[REDACTED]";
`action.params` itself masks the whole map as {"redacted": "[REDACTED]"}. Paths that do
not exist are ignored. Paths outside `action.params` do not concern params.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

MASK = "[REDACTED]"
WHOLE = {"redacted": MASK}

_Pick = Callable[[Any, Any], Any]


def _param_paths(paths: Iterable[str]) -> list[list[str]]:
    out = []
    for path in paths:
        segments = path.split(".")
        if segments[:2] == ["action", "params"]:
            out.append(segments[2:])
    return out


def _plain(value: Any) -> Any:
    """Deep copy into dicts and lists, so that masking never touches the caller's objects."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def mask(params: Mapping[str, Any] | None, paths: Iterable[str]) -> dict[str, Any]:
    """Return a copy of `params` masked at the redacted `paths`, as the server masks them."""
    out: dict[str, Any] = _plain(params) if params is not None else {}
    for segments in _param_paths(paths):
        if not segments:
            # The server masks the whole Struct only when it was sent at all.
            out = dict(WHOLE) if params is not None else {}
        else:
            _mask_in(out, segments)
    return out


def _mask_in(container: dict[str, Any], segments: list[str]) -> None:
    key, rest = segments[0], segments[1:]
    if key in container:
        container[key] = _mask_value(container[key], rest)


def _mask_value(value: Any, segments: list[str]) -> Any:
    if not segments:
        return MASK
    if isinstance(value, dict):
        _mask_in(value, segments)
    elif isinstance(value, list):
        if segments[0].isdigit():
            i = int(segments[0])
            if i < len(value):
                value[i] = _mask_value(value[i], segments[1:])
        else:
            value[:] = [_mask_value(v, segments) for v in value]
    return value


def unmask(
    edited: Mapping[str, Any], original: Mapping[str, Any] | None, paths: Iterable[str]
) -> dict[str, Any]:
    """Return `edited` with every mask left at a redacted path replaced by the original value.

    A reviewer never saw the real values at redacted paths, so a mask still there means
    "keep what the agent asked for". A value the reviewer typed in stays. Values inside
    lists are matched by position.
    """
    if original is None:
        return _plain(edited)
    return _merge(edited, original, paths, lambda e, o: _plain(o) if e == MASK else e)


def remask(
    execute: Mapping[str, Any], edited: Mapping[str, Any], paths: Iterable[str]
) -> dict[str, Any]:
    """Return `execute` with the mask put back wherever `edited` holds it: the inverse of unmask.

    For params that `unmask` produced this gives `edited` back; hashing it checks that
    what will be executed is what the reviewer approved, outside the values they never saw.
    """
    return _merge(execute, edited, paths, lambda x, e: MASK if e == MASK else x)


def _merge(
    target: Mapping[str, Any],
    other: Mapping[str, Any],
    paths: Iterable[str],
    pick: _Pick,
) -> dict[str, Any]:
    """Copy `target`, replacing the value at each redacted path by pick(value, other's value)."""
    out: dict[str, Any] = _plain(target)
    for segments in _param_paths(paths):
        if not segments:
            # The whole map is masked as {"redacted": MASK}: treat that as one masked value.
            picked = pick(_leaf(out), _leaf(other))
            out = dict(WHOLE) if picked == MASK else _plain(picked)
        else:
            _merge_in(out, other, segments, pick)
    return out


def _leaf(params: Any) -> Any:
    return MASK if params == WHOLE else params


def _merge_in(container: dict[str, Any], other: Any, segments: list[str], pick: _Pick) -> None:
    key, rest = segments[0], segments[1:]
    if key in container and isinstance(other, Mapping) and key in other:
        container[key] = _merge_value(container[key], other[key], rest, pick)


def _merge_value(value: Any, other: Any, segments: list[str], pick: _Pick) -> Any:
    if not segments:
        return pick(value, other)
    if isinstance(value, dict):
        _merge_in(value, other, segments, pick)
    elif isinstance(value, list) and isinstance(other, list | tuple):
        if segments[0].isdigit():
            i = int(segments[0])
            if i < len(value) and i < len(other):
                value[i] = _merge_value(value[i], other[i], segments[1:], pick)
        else:
            for i in range(min(len(value), len(other))):
                value[i] = _merge_value(value[i], other[i], segments, pick)
    return value
