"""Short ids on the command line: a full id, or any unique prefix or suffix of one.

Review and decision ids are UUIDv7, whose leading characters are a timestamp shared by
ids minted close together, so listings show the last 8 characters and every command that
takes an id accepts a unique prefix or suffix. `signoff reviews` and `signoff audit show`
resolve them here, the same way, with the same messages.
"""

from __future__ import annotations

from collections.abc import Mapping

from signoff.cli.remote import CliError

FULL_ID_LEN = 36  # a UUID in its text form


def is_full(ref: str) -> bool:
    """Whether `ref` is as long as a full id (so it can only name itself)."""
    return len(ref) >= FULL_ID_LEN


def matches(ref: str, full_id: str) -> bool:
    """Whether `full_id` starts or ends with `ref` (ids are lower case; `ref` may not be)."""
    key = ref.lower()
    return bool(key) and (full_id.startswith(key) or full_id.endswith(key))


def one(ref: str, found: Mapping[str, str], what: str, where: str) -> str:
    """The one full id among `found` (id -> what it names); fail clearly on none or several.

    `what` names the kind of id ("review"), `where` the places looked in, for the message.
    """
    if not found:
        raise CliError(f"{what} {ref} not found (no {where} has an id starting or ending with it)")
    if len(found) > 1:
        listed = ", ".join(f"{i} ({about})" for i, about in list(found.items())[:10])
        raise CliError(f"{what} id {ref!r} is ambiguous, give more characters: {listed}")
    return next(iter(found))
