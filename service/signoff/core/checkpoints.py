"""Signed checkpoints of the audit chain: Ed25519 keys, the signed document, sign and verify.

Signing contract (version 1) -- auditors re-implement this to check a checkpoint:

* A checkpoint states "the chain's entry ``seq`` had hash ``head_hash`` at ``time``". The
  signed bytes are the RFC 8785 canonical JSON (see `signoff.core.audit`) of::

      {"v": 1, "type": "signoff.checkpoint", "seq": <int>, "head_hash": "<64 hex>",
       "time": "<RFC 3339 UTC, six fractional digits, Z>", "key_id": "<16 hex>"}

  that is, keys sorted, no whitespace:
  ``{"head_hash":"..","key_id":"..","seq":7,"time":"2024-05-01T12:00:00.000000Z",
  "type":"signoff.checkpoint","v":1}``.
* ``signature`` is the standard (RFC 4648, padded) base64 of the 64-byte Ed25519 signature
  (RFC 8032, pure Ed25519) over those bytes.
* ``key_id`` is the first 16 lowercase hex characters of SHA-256 of the 32-byte raw public key.
  It only names the key; trust comes from the public key the auditor was given.
* The ``type`` member separates documents: an export's end signature (`signoff.export`) signs
  a ``"signoff.export"`` document, so neither can be replayed as the other.

Version 2 (signoff 0.3) also signs the head of the log's Merkle tree (`signoff.core.log_tree`,
RFC 9162): two more members, ``"tree_size": <int>`` (the number of entries the tree holds,
equal to ``seq``: both heads describe the same log) and ``"root_hash": "<64 hex>"`` (its
root), and ``"v": 2``. A version 1 checkpoint stays what it was: its document has neither
member, and it verifies as signed. A verifier tells them apart by ``root_hash``: stripping it
from a version 2 checkpoint changes the signed bytes, so a checkpoint cannot be downgraded.

Key files are PEM: PKCS#8 for the private key (``openssl genpkey -algorithm ed25519``), and
SubjectPublicKeyInfo for the public key given to auditors (`public_pem`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from signoff.core.audit import format_time
from signoff.logs import event
from signoff_client.canonical import canonical_json

log = logging.getLogger("signoff.checkpoints")

CHECKPOINT_VERSION = 1
TREE_CHECKPOINT_VERSION = 2  # also signs (tree_size, root_hash)
CHECKPOINT_TYPE = "signoff.checkpoint"

_HASH = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """A signed statement of the chain head: (seq, hash) at a time, signed with Ed25519."""

    seq: int
    head_hash: str
    time: dt.datetime
    key_id: str
    signature: str  # base64 of the Ed25519 signature (opaque to the store)
    tree_size: int = 0  # version 2: the Merkle tree's size (= seq); 0 in version 1
    root_hash: str = ""  # version 2: its root, 64 hex; "" in version 1

    @property
    def version(self) -> int:
        """2 when the checkpoint signs a tree head, else 1."""
        return TREE_CHECKPOINT_VERSION if self.root_hash else CHECKPOINT_VERSION


class SigningKeyError(ValueError):
    """A key file is missing, unreadable or not an Ed25519 key; the message names the file."""


class CheckpointLike(Protocol):
    """The fields of a checkpoint (`signoff.store.base.Checkpoint` has them)."""

    @property
    def seq(self) -> int:
        """Sequence number of the entry the checkpoint covers."""
        ...

    @property
    def head_hash(self) -> str:
        """Hash of that entry."""
        ...

    @property
    def time(self) -> dt.datetime:
        """When it was signed."""
        ...

    @property
    def key_id(self) -> str:
        """Which key signed it."""
        ...

    @property
    def signature(self) -> str:
        """Base64 Ed25519 signature over `checkpoint_bytes`."""
        ...


# -- keys ------------------------------------------------------------------------------------


def load_or_create_key(path: Path, *, create: bool) -> Ed25519PrivateKey:
    """Load the PEM PKCS#8 key at `path`; if missing and `create`, generate it (mode 0600)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise SigningKeyError(
                f"{path}: audit signing key not found (generate one with "
                f"`openssl genpkey -algorithm ed25519 -out {path}` and keep it private)"
            ) from None
        return _create_key(path)
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read audit signing key: {exc.strerror}") from exc
    key = _private_from_pem(path, data)
    mode = _mode(path)
    if mode is not None and mode & 0o077:
        # Not fatal (containers mount secrets with odd modes), but worth a line in the log.
        event(log, "signing key readable by others", logging.WARNING, path=str(path))
    return key


def _create_key(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        make_private_dir(path.parent)
        # Written whole to a private temporary file, then linked into place: a reader never
        # sees half a key, and of two replicas starting at once exactly one key wins (the
        # loser's link fails and it loads the winner's) instead of one silently replacing it.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # the umask may only narrow os.open's mode; make it exact
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _private_from_pem(path, path.read_bytes())
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot create audit signing key: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    event(
        log,
        "audit signing key generated",
        logging.WARNING,
        path=str(path),
        key_id=key_id(key.public_key()),
        hint="back it up and give auditors its public key; a lost key cannot be replaced",
    )
    return key


def make_private_dir(path: Path) -> None:
    """Create directory `path` (and its parents) if missing; the one created last is 0700."""
    if path.is_dir():
        return  # an existing directory is the operator's: its mode is reported, not changed
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return  # another server created it a moment ago
    os.chmod(path, 0o700)  # the umask may only narrow mkdir's mode; make it exact


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Load an Ed25519 public key from a public PEM, or from a private PEM (its public half)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read public key: {exc.strerror}") from exc
    if b"PRIVATE KEY-----" in data:
        return _private_from_pem(path, data).public_key()
    try:
        return public_key_from_pem(data)
    except ValueError as exc:
        raise SigningKeyError(f"{path}: {exc}") from exc


def public_key_from_pem(data: bytes) -> Ed25519PublicKey:
    """The Ed25519 public key in PEM `data`; ValueError saying what it is instead."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a PEM public key ({_reason(exc)})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"holds a public key of type {_kind(key)}, not Ed25519")
    return key


def _private_from_pem(path: Path, data: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(
            f"{path}: not an unencrypted PEM (PKCS#8) private key ({_reason(exc)})"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: holds a private key of type {_kind(key)}, not Ed25519")
    return key


def _reason(exc: Exception) -> str:
    # cryptography's messages can span lines and mention OpenSSL internals; keep one line.
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _kind(key: Any) -> str:
    for kind, types in _KINDS:
        if isinstance(key, types):
            return kind
    return type(key).__name__


_KINDS: tuple[tuple[str, tuple[type, ...]], ...] = (
    ("RSA", (rsa.RSAPrivateKey, rsa.RSAPublicKey)),
    ("EC", (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)),
    ("DSA", (dsa.DSAPrivateKey, dsa.DSAPublicKey)),
    ("Ed448", (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)),
    ("X25519", (x25519.X25519PrivateKey, x25519.X25519PublicKey)),
)


def _mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return None


def key_id(public_key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """First 16 hex characters of SHA-256 of the raw public key (a private key: of its half)."""
    if isinstance(public_key, Ed25519PrivateKey):
        public_key = public_key.public_key()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    """The SubjectPublicKeyInfo PEM of `key`'s public half: what auditors are given."""
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- the signed document ---------------------------------------------------------------------


def checkpoint_bytes(
    seq: int,
    head_hash: str,
    time: dt.datetime,
    key_id: str,
    tree_size: int = 0,
    root_hash: str = "",
) -> bytes:
    """The bytes a checkpoint's signature covers (see the module docstring): version 2 when
    `root_hash` is given, else version 1."""
    if not root_hash:
        if tree_size:
            raise ValueError(f"tree_size {tree_size!r} without a root_hash")
        return signed_document(
            CHECKPOINT_TYPE, seq=seq, head_hash=head_hash, time=time, key_id=key_id
        )
    check_tree_head(seq, tree_size, root_hash)
    return signed_document(
        CHECKPOINT_TYPE,
        version=TREE_CHECKPOINT_VERSION,
        seq=seq,
        head_hash=head_hash,
        time=time,
        key_id=key_id,
        tree_size=tree_size,
        root_hash=root_hash,
    )


def check_tree_head(seq: int, tree_size: int, root_hash: str) -> None:
    """Raise ValueError unless (tree_size, root_hash) is a tree head of the log at `seq`."""
    if type(tree_size) is not int or tree_size != seq:
        raise ValueError(f"tree_size {tree_size!r} is not the checkpoint's seq {seq!r}")
    if not isinstance(root_hash, str) or not _HASH.fullmatch(root_hash):
        raise ValueError(f"root_hash {root_hash!r} is not 64 lowercase hex characters")


def signed_document(
    type_: str,
    *,
    seq: int,
    head_hash: str,
    time: dt.datetime,
    key_id: str,
    version: int = CHECKPOINT_VERSION,
    **extra: Any,
) -> bytes:
    """Canonical JSON of a signed statement about the chain head: `type_` separates uses."""
    check_head(seq, head_hash)
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise ValueError(f"key_id {key_id!r} is not 16 lowercase hex characters")
    doc = {
        "v": version,
        "type": type_,
        "seq": seq,
        "head_hash": head_hash,
        "time": format_time(time),
        "key_id": key_id,
        **extra,
    }
    return canonical_json(doc).encode("utf-8")


def check_head(seq: int, head_hash: str) -> None:
    """Raise ValueError unless `seq` is a sequence number (0: empty) and `head_hash` a hash."""
    if type(seq) is not int or seq < 0:
        raise ValueError(f"seq {seq!r} is not a non-negative integer")
    if not isinstance(head_hash, str) or not _HASH.fullmatch(head_hash):
        raise ValueError(f"head_hash {head_hash!r} is not 64 lowercase hex characters")


def sign_bytes(key: Ed25519PrivateKey, data: bytes) -> str:
    """Base64 Ed25519 signature of `data`."""
    return base64.b64encode(key.sign(data)).decode("ascii")


def verify_bytes(public_key: Ed25519PublicKey, data: bytes, signature: str) -> bool:
    """True if `signature` (base64) is `public_key`'s signature of `data`; never raises."""
    try:
        raw = base64.b64decode(signature.encode("ascii"), validate=True)
        public_key.verify(raw, data)
    except (InvalidSignature, binascii.Error, ValueError, AttributeError):
        return False
    return True


def sign(
    key: Ed25519PrivateKey,
    seq: int,
    head_hash: str,
    time: dt.datetime,
    *,
    root_hash: str = "",
) -> Checkpoint:
    """Sign "entry `seq` of the chain had hash `head_hash` at `time`" -- and, given the root
    of the tree of the first `seq` entries, "the tree of `seq` entries had root `root_hash`"
    (version 2)."""
    kid = key_id(key.public_key())
    tree_size = seq if root_hash else 0
    data = checkpoint_bytes(seq, head_hash, time, kid, tree_size, root_hash)
    return make_checkpoint(
        seq=seq,
        head_hash=head_hash,
        time=time.astimezone(dt.UTC),
        key_id=kid,
        signature=sign_bytes(key, data),
        tree_size=tree_size,
        root_hash=root_hash,
    )


def verify(public_key: Ed25519PublicKey, cp: CheckpointLike) -> bool:
    """True if `cp` is intact and signed by `public_key`; False otherwise (never raises)."""
    try:
        if cp.key_id != key_id(public_key):
            return False
        data = checkpoint_bytes(
            cp.seq,
            cp.head_hash,
            cp.time,
            cp.key_id,
            getattr(cp, "tree_size", 0),
            getattr(cp, "root_hash", ""),
        )
    except (ValueError, TypeError, AttributeError):
        return False
    return verify_bytes(public_key, data, cp.signature)


class TrustedKeys:
    """The public keys whose signatures count, by key id: a checkpoint counts only if one of
    them signed it (`problem`). Rotation: the keys of earlier signing keys stay in the set."""

    def __init__(self, keys: Iterable[Ed25519PublicKey | Ed25519PrivateKey] = ()) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for key in keys:
            public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
            self._keys[key_id(public)] = public

    @property
    def ids(self) -> list[str]:
        """The trusted key ids, sorted."""
        return sorted(self._keys)

    def get(self, kid: str) -> Ed25519PublicKey | None:
        """The trusted key with id `kid`, or None."""
        return self._keys.get(kid)

    def problem(self, cp: CheckpointLike, what: str = "checkpoint") -> str:
        """Why `cp` does not count ("" when a trusted key signed it); never raises."""
        kid = getattr(cp, "key_id", "")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            trusted = ", ".join(self.ids) or "none configured"
            # The id comes from the database or the file: shown verbatim only if well formed.
            shown = kid if isinstance(kid, str) and _KEY_ID.fullmatch(kid) else repr(kid)[:40]
            return (
                f"{what} at seq {cp.seq} is signed by key {shown}, which is not a trusted key "
                f"(trusted: {trusted})"
            )
        if not verify(key, cp):
            return (
                f"{what} at seq {cp.seq}: the signature does not verify with trusted key {kid} "
                "(forged or altered)"
            )
        return ""


def make_checkpoint(
    *,
    seq: int,
    head_hash: str,
    time: dt.datetime,
    key_id: str,
    signature: str,
    tree_size: int = 0,
    root_hash: str = "",
) -> Checkpoint:
    """Build a `Checkpoint` (keyword arguments only, as the store and the export read them)."""
    return Checkpoint(
        seq=seq,
        head_hash=head_hash,
        time=time,
        key_id=key_id,
        signature=signature,
        tree_size=tree_size,
        root_hash=root_hash,
    )
