"""Signed checkpoints: key files, the signed document (a contract), sign and verify."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from signoff.core.checkpoints import (
    SigningKeyError,
    checkpoint_bytes,
    key_id,
    load_or_create_key,
    load_public_key,
    public_pem,
    sign,
    verify,
)

T0 = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
HEAD = "ab" * 32
# RFC 8032 test vector 1's secret key: fixed bytes make the golden signature reproducible.
SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")


def fixed_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(SEED)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def events() -> Iterator[list[logging.LogRecord]]:
    # A handler on the module's own logger, not caplog's on the root: the CLI's
    # logs.configure() stops "signoff" events from propagating to the root.
    logger = logging.getLogger("signoff.checkpoints")
    handler, level = _Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(level)


# -- the signed document ---------------------------------------------------------------------


def test_checkpoint_bytes_golden_vector() -> None:
    # Auditors re-implement this; changing it breaks every stored checkpoint.
    assert checkpoint_bytes(7, HEAD, T0, "0123456789abcdef") == (
        b'{"head_hash":"' + HEAD.encode() + b'","key_id":"0123456789abcdef","seq":7,'
        b'"time":"2024-05-01T12:00:00.123456Z","type":"signoff.checkpoint","v":1}'
    )


def test_key_id_is_sha256_of_raw_public_key() -> None:
    # RFC 8032 test vector 1's public key.
    raw = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    expected = hashlib.sha256(bytes.fromhex(raw)).hexdigest()[:16]
    assert key_id(fixed_key().public_key()) == expected
    assert key_id(fixed_key()) == expected


def test_sign_then_verify() -> None:
    key = fixed_key()
    cp = sign(key, 7, HEAD, T0)
    assert (cp.seq, cp.head_hash, cp.time, cp.key_id) == (7, HEAD, T0, key_id(key))
    assert verify(key.public_key(), cp)
    # Ed25519 is deterministic: the same statement always gets the same signature.
    assert sign(key, 7, HEAD, T0).signature == cp.signature


def test_sign_normalizes_time_to_utc() -> None:
    local = T0.astimezone(dt.timezone(dt.timedelta(hours=2)))
    cp = sign(fixed_key(), 7, HEAD, local)
    assert cp.time.utcoffset() == dt.timedelta(0)
    assert verify(fixed_key().public_key(), cp)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", 8),
        ("head_hash", "cd" * 32),
        ("time", T0 + dt.timedelta(microseconds=1)),
        ("key_id", "0" * 16),
        ("signature", "AAAA"),
        ("signature", "not base64!"),
        ("signature", ""),
        ("head_hash", "not a hash"),
        ("seq", -1),
        ("time", dt.datetime(2024, 5, 1)),  # naive
    ],
)
def test_verify_is_false_for_any_altered_field(field: str, value: object) -> None:
    cp = sign(fixed_key(), 7, HEAD, T0)
    assert not verify(fixed_key().public_key(), dataclasses.replace(cp, **{field: value}))


def test_verify_is_false_for_another_key() -> None:
    cp = sign(fixed_key(), 7, HEAD, T0)
    assert not verify(Ed25519PrivateKey.generate().public_key(), cp)


@pytest.mark.parametrize(
    ("seq", "head_hash", "message"),
    [(-1, HEAD, "seq"), (True, HEAD, "seq"), (1, "AB" * 32, "head_hash"), (1, "ab", "head_hash")],
)
def test_sign_refuses_bad_statements(seq: int, head_hash: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sign(fixed_key(), seq, head_hash, T0)


# -- key files -------------------------------------------------------------------------------


def test_missing_key_is_created_private_and_logged(
    tmp_path: Path, events: list[logging.LogRecord]
) -> None:
    path = tmp_path / "deep" / "dir" / "audit-key.pem"
    key = load_or_create_key(path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert [(r.levelno, r.getMessage()) for r in events] == [
        (logging.WARNING, "audit signing key generated")
    ]
    assert events[0].key_id == key_id(key)  # type: ignore[attr-defined]
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    # Reloaded, it is the same key (and no longer "generated").
    events.clear()
    again = load_or_create_key(path, create=True)
    assert key_id(again) == key_id(key)
    assert not events


def test_existing_key_is_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    first = load_or_create_key(path, create=True)
    assert key_id(load_or_create_key(path, create=False)) == key_id(first)


def test_missing_key_without_create_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.pem"
    with pytest.raises(SigningKeyError, match=r"absent\.pem: audit signing key not found"):
        load_or_create_key(path, create=False)
    assert not path.exists()


def _ec_pem() -> bytes:
    return generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not an unencrypted PEM"),
        (b"hello", "not an unencrypted PEM"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not an unencrypted"),
        (_ec_pem(), "holds a private key of type EC, not Ed25519"),
    ],
)
def test_bad_key_file_names_the_path(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.pem"
    path.write_bytes(content)
    for create in (True, False):
        with pytest.raises(SigningKeyError, match=rf"bad\.pem: .*{message}"):
            load_or_create_key(path, create=create)
    assert path.read_bytes() == content  # a bad key is never overwritten


def test_encrypted_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "enc.pem"
    path.write_bytes(
        fixed_key().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    with pytest.raises(SigningKeyError, match=r"enc\.pem: not an unencrypted PEM"):
        load_or_create_key(path, create=False)


def test_unreadable_key_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SigningKeyError, match=r"file/k\.pem: cannot"):
        load_or_create_key(blocker / "k.pem", create=True)


def test_group_readable_key_is_loaded_with_a_warning(
    tmp_path: Path, events: list[logging.LogRecord]
) -> None:
    path = tmp_path / "k.pem"
    load_or_create_key(path, create=True)
    path.chmod(0o644)
    events.clear()
    load_or_create_key(path, create=False)
    assert [r.getMessage() for r in events] == ["signing key readable by others"]


def test_public_key_loads_from_public_or_private_pem(tmp_path: Path) -> None:
    key = fixed_key()
    pub, priv = tmp_path / "pub.pem", tmp_path / "priv.pem"
    pub.write_bytes(public_pem(key))
    load_or_create_key(priv, create=True)
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert public_pem(key).startswith(b"-----BEGIN PUBLIC KEY-----")
    assert public_pem(key) == public_pem(key.public_key())
    for path in (pub, priv):
        loaded = load_public_key(path)
        assert isinstance(loaded, Ed25519PublicKey)
        assert key_id(loaded) == key_id(key)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"junk", "not a PEM public key"),
        (
            generate_private_key(SECP256R1())
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "holds a public key of type EC, not Ed25519",
        ),
        (_ec_pem(), "holds a private key of type EC"),
    ],
)
def test_bad_public_key_file_names_the_path(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "pub.pem"
    path.write_bytes(content)
    with pytest.raises(SigningKeyError, match=rf"pub\.pem: .*{message}"):
        load_public_key(path)


def test_missing_public_key_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match=r"nope\.pem: cannot read public key"):
        load_public_key(tmp_path / "nope.pem")
