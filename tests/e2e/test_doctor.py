"""`signoff doctor`: each check good and bad, on real databases, and it changes nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import socket
import sqlite3
from pathlib import Path
from typing import Any

import grpc
import pytest

from signoff import pb
from signoff.cli.main import main
from signoff.serving.doctor import run_checks
from signoff.settings.model import Settings
from signoff.store import migrations
from signoff_client._gen import decision_pb2_grpc

from ..pg import fresh_schema, require_postgres
from .conftest import EXAMPLE_POLICIES, FakeClock, MakeServer, write_tokens


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    """Run `signoff doctor --json ARGS`; return the exit status and the checks by name."""
    code = main(["doctor", "--json", *args])
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] == (code == 0)
    return code, {c["check"]: c for c in report["checks"]}


def _free_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def setup(tmp_path: Path) -> list[str]:
    """Flags of a good SQLite deployment with a tokens file; the database does not exist."""
    tokens = write_tokens(tmp_path, {"t0k3n": ("alice", ["reviewer:finance"])})
    key = tmp_path / "keys" / "key.pem"  # not beside the database: doctor would warn
    assert main(["db", "migrate", "--db", f"sqlite:///{tmp_path / 'migrated.db'}"]) == 0
    return [
        "--policies", str(EXAMPLE_POLICIES), "--db", f"sqlite:///{tmp_path / 'signoff.db'}",
        "--listen", _free_address(), "--http-listen", _free_address(),
        "--config", str(_config(tmp_path, f"auth: {{tokens_file: {tokens}}}\n"
                                f"audit: {{signing_key: {key}, create_key: true}}\n")),
    ]  # fmt: skip


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "signoff.yaml"
    path.write_text(text)
    return path


def _set(flags: list[str], flag: str, value: str) -> list[str]:
    out = list(flags)
    out[out.index(flag) + 1] = value
    return out


def test_a_good_setup_passes_and_the_table_names_every_check(setup, tmp_path, capsys):
    code, checks = doctor(capsys, *setup)
    assert code == 0, checks
    assert {c["status"] for c in checks.values()} == {"ok"}
    assert "4 policies" in checks["policies"]["detail"]
    assert "created on first start" in checks["database"]["detail"]
    assert checks["auth"]["detail"] == "tokens file configured"
    assert "created on first start (audit.create_key)" in checks["signing key"]["detail"]
    # Nothing was created: no database, no key.
    assert not (tmp_path / "signoff.db").exists()
    assert not (tmp_path / "keys").exists()
    assert main(["doctor", *setup]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["check", "status", "detail"]
    assert "no failures, 0 warning(s)" in out


def test_trusting_principal_claims_is_a_warning(setup, monkeypatch, capsys):
    monkeypatch.setenv("SIGNOFF_AUTH__TRUST_PRINCIPAL_CLAIMS", "true")
    code, checks = doctor(capsys, *setup)
    assert code == 0
    assert checks["auth"]["status"] == "warn"
    assert "auth.trust_principal_claims is on" in checks["auth"]["detail"]


def test_dev_mode_is_a_warning(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    args = ["--policies", str(EXAMPLE_POLICIES), "--db", db, "--listen", _free_address()]
    code, checks = doctor(capsys, *args, "--http-listen", "")
    assert code == 0
    assert checks["auth"]["status"] == "warn"
    assert "dev mode" in checks["auth"]["detail"]
    assert checks["http_listen"]["detail"] == "off"


def test_dev_mode_beyond_loopback_fails_as_serve_would(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    code, checks = doctor(capsys, "--db", db, "--listen", "0.0.0.0:0", "--http-listen", "")
    assert code == 1
    assert "listen 0.0.0.0:0 is beyond loopback" in checks["auth"]["detail"]


def test_an_unknown_config_key_fails_naming_file_and_key(setup, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("audit:\n  sign_key: /x\n")
    code, checks = doctor(capsys, *_set(setup, "--config", str(bad)))
    assert code == 1
    assert list(checks) == ["config"]
    assert checks["config"]["detail"] == f"config file {bad}: audit.sign_key: unknown setting"


def test_a_bad_value_fails(setup, capsys):
    code, checks = doctor(capsys, *_set(setup, "--listen", "nowhere"))
    assert code == 1
    assert "listen (SIGNOFF_LISTEN): must be HOST:PORT" in checks["config"]["detail"]


def test_a_missing_policy_directory_fails(setup, tmp_path, capsys):
    code, checks = doctor(capsys, *_set(setup, "--policies", str(tmp_path / "nope")))
    assert code == 1
    assert checks["policies"] == {
        "check": "policies",
        "status": "fail",
        "detail": f"{tmp_path / 'nope'}: no such policy directory",
    }


def test_a_policy_syntax_error_fails_with_file_and_line(setup, tmp_path, capsys):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "bad.yaml").write_text(
        "name: bad\nrules:\n  - name: r\n    when: nope > 1\n    decision: allow\n    reason: x\n"
    )
    code, checks = doctor(capsys, *_set(setup, "--policies", str(policies)))
    assert code == 1
    assert checks["policies"]["status"] == "fail"
    assert f"{policies}: bad.yaml:4:" in checks["policies"]["detail"]
    assert "nope" in checks["policies"]["detail"]
    assert checks["database"]["status"] == "ok"  # the other checks still ran


def test_pending_migrations_warn_and_are_not_applied(setup, tmp_path, capsys):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        number, name, sql = migrations.load("sqlite")[0]
        for statement in migrations.sqlite_statements(sql):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, '')", (number, name))
    code, checks = doctor(capsys, *_set(setup, "--db", f"sqlite:///{path}"))
    assert code == 0
    known = len(migrations.load("sqlite"))
    assert checks["database"]["status"] == "warn"
    assert f"schema version 1, {known - 1} migration(s) pending" in checks["database"]["detail"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 1


def test_a_file_that_is_not_a_signoff_database_fails(setup, tmp_path, capsys):
    path = tmp_path / "junk.db"
    path.write_bytes(b"not sqlite at all" * 100)
    code, checks = doctor(capsys, *_set(setup, "--db", f"sqlite:///{path}"))
    assert code == 1
    assert (
        "cannot open" in checks["database"]["detail"]
        or "not a signoff database" in (checks["database"]["detail"])
    )


def test_an_unreachable_database_fails(setup, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = f"postgresql://postgres@127.0.0.1:{port}/test"
    code, checks = doctor(capsys, *_set(setup, "--db", db))
    assert code == 1
    assert checks["database"]["status"] == "fail"
    assert checks["database"]["detail"].startswith(f"127.0.0.1:{port}/test: cannot connect")
    assert checks["audit log"]["status"] == "warn"


def test_a_missing_signing_key_without_create_key_fails(setup, tmp_path, capsys):
    tokens = tmp_path / "tokens.yaml"
    config = _config(tmp_path, f"auth: {{tokens_file: {tokens}}}\n"
                     f"audit: {{signing_key: {tmp_path / 'none.pem'}}}\n")  # fmt: skip
    code, checks = doctor(capsys, *_set(setup, "--config", str(config)))
    assert code == 1
    assert "none.pem: missing; create it" in checks["signing key"]["detail"]


def test_a_bad_tokens_file_fails(setup, tmp_path, capsys):
    (tmp_path / "tokens.yaml").write_text("tokens:\n  - sha256: nothex\n")
    code, checks = doctor(capsys, *setup)
    assert code == 1
    assert checks["auth"]["status"] == "fail"
    assert "tokens.yaml" in checks["auth"]["detail"]


def test_a_port_in_use_is_a_warning(setup, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        address = f"127.0.0.1:{s.getsockname()[1]}"
        code, checks = doctor(capsys, *_set(setup, "--listen", address))
    assert code == 0
    assert checks["listen"] == {
        "check": "listen",
        "status": "warn",
        "detail": f"{address}: port in use (a server running already?)",
    }


def _evaluate(target: str) -> None:
    req = pb.common.ActionRequest()
    req.action.name = "refund.issue"
    req.action.params.update({"amount": 20})
    with grpc.insecure_channel(target) as ch:
        decision_pb2_grpc.DecisionServiceStub(ch).Evaluate(req, timeout=30)


def test_a_running_servers_database_passes(make_server: MakeServer, backend, setup, capsys):
    server = make_server(backend=backend)
    _evaluate(server.target)
    code, checks = doctor(capsys, *_set(setup, "--db", server.db))
    assert code == 0, checks
    assert checks["database"]["detail"].endswith("(current)")
    assert re.fullmatch(r"head at seq [1-9]\d*, written \d{4}-.*", checks["audit log"]["detail"])
    assert checks["clock vs audit log"]["status"] == "ok"
    if backend == "postgres":
        assert checks["clock"]["status"] == "ok"
        assert "the database server's clock" in checks["clock"]["detail"]


def test_a_clock_behind_the_newest_audit_entry_fails(
    make_server: MakeServer, backend, setup, capsys
):
    # The database was written by a server whose clock ran an hour ahead.
    ahead = FakeClock(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    server = make_server(backend=backend, clock=ahead)
    _evaluate(server.target)
    code, checks = doctor(capsys, *_set(setup, "--db", server.db))
    assert code == 1
    row = checks["clock vs audit log"]
    assert row["status"] == "fail"
    assert "behind the newest audit entry: time went backwards" in row["detail"]
    assert row["detail"].startswith("the clock is 3599 s") or row["detail"].startswith(
        "the clock is 3600 s"
    )


@pytest.mark.parametrize(
    ("offset", "status"), [(0, "ok"), (5, "warn"), (-5, "warn"), (60, "fail"), (-60, "fail")]
)
def test_clock_skew_against_postgresql(offset: int, status: str, tmp_path: Path):
    require_postgres()
    with fresh_schema() as url:
        settings = Settings(db=url, policies=EXAMPLE_POLICIES)
        clock = FakeClock(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset))
        checks = {c.check: c for c in asyncio.run(run_checks(settings, clock))}
    row = checks["clock"]
    assert row.status == status, row
    if offset:
        side = "ahead of" if offset > 0 else "behind"
        assert f"{abs(offset)} s {side} the database server's clock" in row.detail or (
            f" ms {side}" in row.detail
        )


def _with_audit(setup: list[str], tmp_path: Path, audit: str, extra: str = "") -> list[str]:
    tokens = tmp_path / "tokens.yaml"
    text = f"auth: {{tokens_file: {tokens}}}\naudit: {audit}\n{extra}"
    return _set(setup, "--config", str(_config(tmp_path, text)))


def test_a_key_left_beside_the_database_is_used_with_a_warning_saying_how_to_move_it(
    setup, tmp_path, capsys
):
    from signoff.core.checkpoints import key_id, load_or_create_key

    key = load_or_create_key(tmp_path / "signoff-audit-key.pem", create=True)  # the old default
    state = tmp_path / "state"
    flags = _with_audit(setup, tmp_path, "{create_key: true}", f"state_dir: {state}\n")
    code, checks = doctor(capsys, *flags)
    assert code == 0, checks
    row = checks["signing key"]
    assert row["status"] == "warn"
    assert f"key id {key_id(key)}" in row["detail"]
    assert "beside the database" in row["detail"]
    assert (
        f"mv {tmp_path / 'signoff-audit-key.pem'} {state / 'signoff-audit-key.pem'}"
        in (row["detail"])
    )
    assert not state.exists()  # doctor creates nothing


def test_a_key_inside_a_git_working_tree_is_a_warning(setup, tmp_path, capsys):
    from signoff.core.checkpoints import load_or_create_key

    (tmp_path / "repo" / ".git").mkdir(parents=True)
    load_or_create_key(tmp_path / "repo" / "k.pem", create=True)
    flags = _with_audit(setup, tmp_path, f"{{signing_key: {tmp_path / 'repo' / 'k.pem'}}}")
    code, checks = doctor(capsys, *flags)
    assert code == 0, checks
    assert checks["signing key"]["status"] == "warn"
    assert f"inside the git working tree {tmp_path / 'repo'}" in checks["signing key"]["detail"]


def test_a_key_in_the_state_directory_is_ok(setup, tmp_path, capsys):
    from signoff.core.checkpoints import load_or_create_key

    state = tmp_path / "state"
    load_or_create_key(state / "signoff-audit-key.pem", create=True)
    code, checks = doctor(capsys, *_with_audit(setup, tmp_path, "{}", f"state_dir: {state}\n"))
    assert code == 0, checks
    assert checks["signing key"]["status"] == "ok", checks["signing key"]
    state.chmod(0o755)
    _, checks = doctor(capsys, *_with_audit(setup, tmp_path, "{}", f"state_dir: {state}\n"))
    assert checks["signing key"]["status"] == "warn"
    assert f"its directory {state} is open to group or others" in checks["signing key"]["detail"]


def test_trusted_keys_are_listed_and_a_bad_one_fails(setup, tmp_path, capsys):
    from signoff.core.checkpoints import key_id, load_or_create_key

    old = load_or_create_key(tmp_path / "keys" / "old.pem", create=True)
    good = f"{{create_key: true, trusted_keys: [{tmp_path / 'keys' / 'old.pem'}]}}"
    code, checks = doctor(capsys, *_with_audit(setup, tmp_path, good))
    assert code == 0, checks
    assert checks["trusted keys"]["detail"] == f"the signing key's own and 1 more: {key_id(old)}"
    (tmp_path / "bad.pub").write_text("nope")
    bad = f"{{create_key: true, trusted_keys: [{tmp_path / 'bad.pub'}]}}"
    code, checks = doctor(capsys, *_with_audit(setup, tmp_path, bad))
    assert code == 1
    assert checks["trusted keys"]["detail"].startswith("audit.trusted_keys[0]: ")


def test_a_newest_checkpoint_by_an_untrusted_key_is_a_warning(
    make_server: MakeServer, backend, setup, tmp_path, capsys
):
    from signoff.core.checkpoints import key_id, load_or_create_key, public_pem

    old = load_or_create_key(tmp_path / "keys" / "old.pem", create=True)
    (tmp_path / "keys" / "old.pub").write_bytes(public_pem(old))
    server = make_server(backend=backend, audit={"signing_key": tmp_path / "keys" / "old.pem"})
    server.call(server.running.stop(0))  # it signed the chain head at start
    new = load_or_create_key(tmp_path / "keys" / "new.pem", create=True)
    flags = _set(setup, "--db", server.db)
    rotated = f"{{signing_key: {tmp_path / 'keys' / 'new.pem'}}}"
    code, checks = doctor(capsys, *_with_audit(flags, tmp_path, rotated))
    assert code == 0, checks
    assert checks["trusted keys"]["status"] == "warn"
    assert re.match(
        rf"the newest checkpoint \(seq \d+\) is signed by key {key_id(old)}, which is not "
        rf"trusted \(the signing key is {key_id(new)}\): audit verification will fail",
        checks["trusted keys"]["detail"],
    ), checks["trusted keys"]
    with_old = rotated.replace("}", f", trusted_keys: [{tmp_path / 'keys' / 'old.pub'}]}}")
    code, checks = doctor(capsys, *_with_audit(flags, tmp_path, with_old))
    assert checks["trusted keys"]["status"] == "ok", checks["trusted keys"]
