"""Where the server's private signing key lives, and which public keys it trusts.

The key signs audit checkpoints, export end lines and receipts (`signoff.core.checkpoints`,
`signoff.app.receipts`): whoever holds it can vouch for a rewritten audit log. So by default it
lives in a state directory of its own, outside any working tree and away from the database
file: ``state_dir`` if set, else ``$XDG_STATE_HOME/signoff``, else
``~/.local/state/signoff`` (the directory created 0700, the key 0600). A key that earlier
versions left beside the database (or, on PostgreSQL, in the working directory) is still
used where it is, so that a deployment keeps its key id; the server logs a warning and
`signoff doctor` says how to move it.

Trust is configuration, not whatever key id a checkpoint names: the signing key's public
half plus ``audit.trusted_keys`` (the public keys of earlier signing keys, after a rotation).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from signoff.core.checkpoints import SigningKeyError, load_public_key
from signoff.settings.model import ConfigError, Settings

KEY_FILE = "signoff-audit-key.pem"


@dataclass(frozen=True)
class KeyPlace:
    """Where the signing key is (or will be created), and why there."""

    path: Path
    why: Literal["configured", "legacy", "default"]


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """$XDG_STATE_HOME/signoff, else ~/.local/state/signoff; ConfigError without a home."""
    env = os.environ if env is None else env
    xdg = env.get("XDG_STATE_HOME", "")
    # The XDG spec: a relative value is invalid and must be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "signoff"
    home = env.get("HOME", "")
    if not home:
        try:
            home = str(Path.home())
        except RuntimeError:
            home = ""
    if not home or not Path(home).is_absolute():
        raise ConfigError(
            "state_dir (SIGNOFF_STATE_DIR): no home directory to put the default state "
            "directory in; set state_dir to a private directory for the signing key"
        )
    return Path(home) / ".local" / "state" / "signoff"


def state_dir(settings: Settings) -> Path:
    """The directory of the server's own state files (the default signing key)."""
    return settings.state_dir or default_state_dir()


def legacy_key_path(settings: Settings) -> Path:
    """Where versions before the state directory put the key: beside the SQLite database,
    or in the working directory (PostgreSQL)."""
    base = Path(".") if settings.is_postgres else settings.sqlite_path.parent
    return base / KEY_FILE


def signing_key_place(settings: Settings) -> KeyPlace:
    """`audit.signing_key`; else an existing key at the old default place; else the state
    directory's."""
    if settings.audit.signing_key is not None:
        return KeyPlace(settings.audit.signing_key, "configured")
    legacy = legacy_key_path(settings)
    # lexists: a dangling link or unreadable file there is reported, not silently replaced
    # by a new key elsewhere (which would change the key id).
    if os.path.lexists(legacy):
        return KeyPlace(legacy, "legacy")
    return KeyPlace(state_dir(settings) / KEY_FILE, "default")


def exposures(path: Path, settings: Settings) -> list[str]:
    """Why a private key at `path` is easy to leak: beside the database, in the working
    directory, inside a git working tree ([] when none applies)."""
    found = []
    here = path.absolute().parent.resolve()
    if not settings.is_postgres and here == settings.sqlite_path.absolute().parent.resolve():
        found.append("beside the database (a copy of the database would carry the key)")
    elif here == Path.cwd().resolve():
        found.append("in the server's working directory")
    tree = git_work_tree(here)
    if tree is not None:
        found.append(f"inside the git working tree {tree} (one `git add` from a commit)")
    return found


def git_work_tree(directory: Path) -> Path | None:
    """The git working tree containing `directory`, if any (a `.git` dir or file above)."""
    for d in (directory, *directory.parents):
        if (d / ".git").exists():
            return d
    return None


def move_hint(place: KeyPlace, settings: Settings) -> str:
    """How to move the key out of harm's way; the key id stays, so old checkpoints verify."""
    try:
        target = state_dir(settings) / KEY_FILE
    except ConfigError:
        target = Path("<state_dir>") / KEY_FILE
    same = "the same key, so older checkpoints still verify"
    if place.why == "legacy":
        return f"move it: install -d -m 700 {target.parent} && mv {place.path} {target} ({same})"
    if place.why == "configured":
        return f"move it (e.g. to {target}, mode 0600) and point audit.signing_key there ({same})"
    return f"set state_dir (SIGNOFF_STATE_DIR) to a private directory, move the key there ({same})"


def trusted_public_keys(settings: Settings) -> list[Ed25519PublicKey]:
    """The public keys of `audit.trusted_keys`; ConfigError naming the entry that fails."""
    keys = []
    for i, path in enumerate(settings.audit.trusted_keys):
        try:
            keys.append(load_public_key(path))
        except SigningKeyError as exc:
            raise ConfigError(f"audit.trusted_keys[{i}]: {exc}") from None
    return keys
