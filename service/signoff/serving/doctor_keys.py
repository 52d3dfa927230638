"""`signoff doctor`'s key checks: the signing key (present, private, in a safe place) and the
trusted public keys. They only read: no key or directory is created."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from signoff.core import checkpoints
from signoff.serving import keyfiles
from signoff.settings.model import ConfigError, Settings

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    check: str
    status: Status
    detail: str


def signing_key_check(settings: Settings, dev_mode: bool) -> Check:
    """The checkpoint signing key is present and readable, or would be created; a warning
    when it is readable by others or sits where it leaks easily (beside the database, in
    the working directory, inside a git working tree)."""
    try:
        place = keyfiles.signing_key_place(settings)
    except ConfigError as exc:
        return Check("signing key", "fail", str(exc))
    path = place.path
    exposed = keyfiles.exposures(path, settings)
    if not os.path.lexists(path):
        if not (dev_mode or settings.audit.create_key):
            return Check(
                "signing key",
                "fail",
                f"{path}: missing; create it (openssl genpkey "
                "-algorithm ed25519) or set audit.create_key",
            )
        why = "dev mode" if dev_mode else "audit.create_key"
        detail = f"{path}: missing; created on first start ({why})"
        if exposed:
            return Check("signing key", "warn", f"{detail}, {' and '.join(exposed)}")
        return Check("signing key", "ok", detail)
    try:
        key = checkpoints.load_or_create_key(path, create=False)
    except checkpoints.SigningKeyError as exc:
        return Check("signing key", "fail", str(exc))
    worries = []
    if path.stat().st_mode & 0o077:
        worries.append("readable by group or others (chmod 600 it)")
    if place.why == "default" and _mode(path.parent) & 0o077:
        worries.append(f"its directory {path.parent} is open to group or others (chmod 700 it)")
    if exposed:
        worries.append(f"{' and '.join(exposed)}: {keyfiles.move_hint(place, settings)}")
    detail = f"{path}: key id {checkpoints.key_id(key)}"
    if worries:
        return Check("signing key", "warn", f"{detail}; " + "; ".join(worries))
    return Check("signing key", "ok", detail)


def trusted_keys_check(settings: Settings, newest: tuple[int, str] | None = None) -> Check:
    """Every `audit.trusted_keys` file holds an Ed25519 public key, and the newest stored
    checkpoint (`newest`: seq, key id) was signed by a trusted key (else verification fails)."""
    try:
        keys = keyfiles.trusted_public_keys(settings)
    except ConfigError as exc:
        return Check("trusted keys", "fail", str(exc))
    ids = [checkpoints.key_id(k) for k in keys]
    own = _signing_key_id(settings)
    if newest is not None and newest[1] not in {own, *ids}:
        seq, kid = newest
        signing = f"the signing key is {own}" if own else "there is no signing key yet"
        return Check(
            "trusted keys",
            "warn",
            f"the newest checkpoint (seq {seq}) is signed by key {kid}, which is not trusted "
            f"({signing}): audit verification will fail; if it is an earlier key of this "
            "deployment, add its public key to audit.trusted_keys",
        )
    if not keys:
        return Check("trusted keys", "ok", "the signing key's own (audit.trusted_keys is empty)")
    return Check(
        "trusted keys", "ok", f"the signing key's own and {len(keys)} more: {', '.join(ids)}"
    )


def _signing_key_id(settings: Settings) -> str:
    try:
        path = keyfiles.signing_key_place(settings).path
        return checkpoints.key_id(checkpoints.load_or_create_key(path, create=False))
    except (ConfigError, checkpoints.SigningKeyError):
        return ""


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return 0
