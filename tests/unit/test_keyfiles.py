"""Where the signing key lives (a private state directory by default, an older key beside the
database still used), the trusted public keys, and TrustedKeys' verdicts."""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff.core import checkpoints
from signoff.core.checkpoints import TrustedKeys, key_id, load_or_create_key, public_pem, sign
from signoff.serving import keyfiles
from signoff.serving.build import signer_for
from signoff.settings.model import ConfigError, Settings

HEAD = "ab" * 32
T0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory (where `make run` would start) and a state home of this test."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    return cwd


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """Modes must be exact whatever the umask: with 0, mkdir and open would give 0777/0666."""
    old = os.umask(0)
    yield
    os.umask(old)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def warnings() -> Iterator[list[logging.LogRecord]]:
    logger = logging.getLogger("signoff.server")
    handler = _Collect()
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the default place -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"XDG_STATE_HOME": "/srv/state", "HOME": "/home/a"}, "/srv/state/signoff"),
        ({"HOME": "/home/a"}, "/home/a/.local/state/signoff"),
        ({"XDG_STATE_HOME": "", "HOME": "/home/a"}, "/home/a/.local/state/signoff"),
        # The XDG spec: a relative XDG_STATE_HOME is invalid and ignored.
        ({"XDG_STATE_HOME": "state", "HOME": "/home/a"}, "/home/a/.local/state/signoff"),
    ],
)
def test_default_state_dir_is_xdg_state_home_else_home(env: dict[str, str], expected: str) -> None:
    assert keyfiles.default_state_dir(env) == Path(expected)


def test_no_home_and_no_state_dir_is_a_config_error_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: (_ for _ in ()).throw(RuntimeError)))
    with pytest.raises(ConfigError, match=r"state_dir \(SIGNOFF_STATE_DIR\): no home directory"):
        keyfiles.default_state_dir({"HOME": ""})


def test_a_dev_server_key_goes_to_a_private_state_directory_not_the_working_tree(
    work: Path, tmp_path: Path, umask_zero: None, warnings: list[logging.LogRecord]
) -> None:
    settings = Settings(db="sqlite:///./signoff.db")  # `make run`: the database in the cwd
    signer = signer_for(settings, dev_mode=True)
    path = tmp_path / "xdg" / "signoff" / "signoff-audit-key.pem"
    assert key_id(load_or_create_key(path, create=False)) == signer.key_id
    assert _mode(path.parent) == 0o700
    assert _mode(path) == 0o600
    assert list(work.iterdir()) == []  # nothing beside the database, nothing in the cwd
    assert not warnings
    # Started again, it loads the same key.
    assert signer_for(settings, dev_mode=True).key_id == signer.key_id


def test_modes_are_exact_even_under_a_umask_that_takes_the_owners_bits(
    work: Path, tmp_path: Path
) -> None:
    (tmp_path / "xdg").mkdir()
    old = os.umask(0o277)  # mkdir(0o700) would give 0500, open(0o600) 0400
    try:
        signer_for(Settings(db="sqlite:///./signoff.db"), dev_mode=True)
    finally:
        os.umask(old)
    path = tmp_path / "xdg" / "signoff" / "signoff-audit-key.pem"
    assert (_mode(path.parent), _mode(path)) == (0o700, 0o600)


def test_state_dir_setting_places_the_key(work: Path, tmp_path: Path) -> None:
    settings = Settings(db="postgresql://u@h/db", state_dir=tmp_path / "mine" / "state")
    signer = signer_for(settings, dev_mode=True)
    path = tmp_path / "mine" / "state" / "signoff-audit-key.pem"
    assert key_id(load_or_create_key(path, create=False)) == signer.key_id
    assert list(work.iterdir()) == []  # PostgreSQL: no longer the working directory


def test_an_existing_key_beside_the_database_keeps_working_with_a_warning(
    work: Path, tmp_path: Path, warnings: list[logging.LogRecord]
) -> None:
    beside = work / "signoff-audit-key.pem"
    old = load_or_create_key(beside, create=True)
    settings = Settings(db="sqlite:///./signoff.db")
    assert keyfiles.signing_key_place(settings) == keyfiles.KeyPlace(
        Path("signoff-audit-key.pem"), "legacy"
    )
    assert signer_for(settings, dev_mode=True).key_id == key_id(old)
    assert not (tmp_path / "xdg").exists()  # no second key was made
    [record] = warnings
    assert record.getMessage() == "audit signing key in an exposed place"
    assert "beside the database" in record.where  # type: ignore[attr-defined]
    assert "mv signoff-audit-key.pem " in record.hint  # type: ignore[attr-defined]


def test_a_configured_key_is_used_wherever_it_is(work: Path, tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path / "k.pem", create=True)
    load_or_create_key(work / "signoff-audit-key.pem", create=True)  # a legacy one: ignored
    settings = Settings(db="sqlite:///./signoff.db", audit={"signing_key": tmp_path / "k.pem"})
    assert signer_for(settings, dev_mode=False).key_id == key_id(key)


def test_an_existing_state_directory_keeps_its_mode(work: Path, tmp_path: Path) -> None:
    state = tmp_path / "shared"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    signer_for(Settings(state_dir=state), dev_mode=True)
    assert _mode(state) == 0o755  # the operator's directory: doctor reports it, we do not chmod
    assert _mode(state / "signoff-audit-key.pem") == 0o600


def test_a_server_that_loses_the_creation_race_loads_the_winners_key(tmp_path: Path) -> None:
    # Two servers start at once: the second to link its new key into place finds the first's
    # there, and uses it; the file is never replaced.
    path = tmp_path / "k.pem"
    winner = load_or_create_key(path, create=True)
    before = path.read_bytes()
    loser = checkpoints._create_key(path)
    assert key_id(loser) == key_id(winner)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pem"]  # no temporary file left


def _start_at_once(path: str, barrier: Any, out: Any) -> None:
    barrier.wait()
    out.put(key_id(load_or_create_key(Path(path), create=True)))


def test_servers_starting_at_once_end_up_with_one_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    for round_ in range(3):
        path = tmp_path / str(round_) / "state" / "signoff-audit-key.pem"
        barrier, out = ctx.Barrier(4), ctx.Queue()
        procs = [
            ctx.Process(target=_start_at_once, args=(str(path), barrier, out)) for _ in range(4)
        ]
        for p in procs:
            p.start()
        ids = {out.get(timeout=30) for _ in procs}
        for p in procs:
            p.join(timeout=30)
        assert ids == {key_id(load_or_create_key(path, create=False))}
        assert [f.name for f in path.parent.iterdir()] == [path.name]  # no temporary file left
        assert (_mode(path.parent), _mode(path)) == (0o700, 0o600)


# -- exposures -------------------------------------------------------------------------------


def test_a_key_inside_a_git_working_tree_is_exposed(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "keys").mkdir()
    settings = Settings(db=f"sqlite:///{tmp_path / 'db' / 'signoff.db'}")
    [why] = keyfiles.exposures(repo / "keys" / "k.pem", settings)
    assert why.startswith(f"inside the git working tree {repo}")
    assert keyfiles.exposures(tmp_path / "elsewhere" / "k.pem", settings) == []


def test_a_key_beside_the_sqlite_database_is_exposed(tmp_path: Path) -> None:
    settings = Settings(db=f"sqlite:///{tmp_path / 'signoff.db'}")
    [why] = keyfiles.exposures(tmp_path / "k.pem", settings)
    assert why.startswith("beside the database")


# -- trusted keys ----------------------------------------------------------------------------


def test_trusted_keys_load_public_or_private_pems(tmp_path: Path) -> None:
    a, b = Ed25519PrivateKey.generate(), load_or_create_key(tmp_path / "b.pem", create=True)
    (tmp_path / "a.pub").write_bytes(public_pem(a))
    settings = Settings(audit={"trusted_keys": [tmp_path / "a.pub", tmp_path / "b.pem"]})
    keys = keyfiles.trusted_public_keys(settings)
    assert [key_id(k) for k in keys] == [key_id(a), key_id(b)]


def test_a_bad_trusted_key_file_is_a_config_error_naming_the_entry(
    work: Path, tmp_path: Path
) -> None:
    (tmp_path / "a.pub").write_bytes(public_pem(Ed25519PrivateKey.generate()))
    (tmp_path / "bad.pub").write_text("not a key")
    settings = Settings(audit={"trusted_keys": [tmp_path / "a.pub", tmp_path / "bad.pub"]})
    with pytest.raises(ConfigError, match=r"audit\.trusted_keys\[1\]: .*bad\.pub: not a PEM"):
        keyfiles.trusted_public_keys(settings)
    settings = Settings(audit={"trusted_keys": [tmp_path / "absent.pub"]})
    with pytest.raises(ConfigError, match=r"audit\.trusted_keys\[0\]: .*absent\.pub: cannot read"):
        signer_for(settings, dev_mode=True)


def test_trusted_keys_name_what_is_wrong_with_a_checkpoint() -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    trusted = TrustedKeys([key.public_key(), other])
    good = sign(key, 7, HEAD, T0)
    assert trusted.problem(good) == ""
    assert trusted.problem(sign(other, 7, HEAD, T0)) == ""
    stranger = sign(Ed25519PrivateKey.generate(), 7, HEAD, T0)
    assert trusted.problem(stranger).startswith(
        f"checkpoint at seq 7 is signed by key {stranger.key_id}, which is not a trusted key "
    )
    forged = checkpoints.make_checkpoint(
        seq=7,
        head_hash=HEAD,
        time=T0,
        key_id=good.key_id,
        signature=sign(key, 8, HEAD, T0).signature,
    )
    assert "does not verify with trusted key" in trusted.problem(forged)
    odd = checkpoints.make_checkpoint(
        seq=7, head_hash=HEAD, time=T0, key_id="x\n" * 50, signature=good.signature
    )
    assert "signed by key 'x\\nx\\n" in trusted.problem(odd)  # shown escaped and cut short
    assert "(trusted: none configured)" in TrustedKeys().problem(good)
