"""The `signoff` command as a user runs it: a real process, real signals."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import grpc
import pytest

from signoff import pb
from signoff_client._gen import decision_pb2_grpc, review_pb2_grpc

from .conftest import EXAMPLE_POLICIES

SIGNOFF = [sys.executable, "-m", "signoff.cli.main"]


async def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *SIGNOFF,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_serve_answers_then_drains_on_sigterm(tmp_path: Path):
    proc = await asyncio.create_subprocess_exec(
        *SIGNOFF,
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--policies",
        str(EXAMPLE_POLICIES),
        "--db",
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    port = None
    while port is None:
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        assert line, "server exited before it started"
        if '"server.started"' in line:
            port = re.search(r'"listen": "127\.0\.0\.1:(\d+)"', line).group(1)  # type: ignore[union-attr]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        req = pb.common.ActionRequest()
        req.action.name = "refund.issue"
        req.action.params.update({"amount": 20})
        d = await decision_pb2_grpc.DecisionServiceStub(ch).Evaluate(req)
        assert d.outcome == pb.common.OUTCOME_AUTO_ALLOW
    proc.send_signal(signal.SIGTERM)
    rest = (await asyncio.wait_for(proc.stderr.read(), 60)).decode()
    assert await proc.wait() == 0
    assert "server.stopped" in rest


async def test_bad_setting_stops_start_up_with_one_line():
    code, _, err = await _run("serve", "--listen", "nonsense")
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "listen" in err
    assert "HOST:PORT" in err


async def test_bad_environment_value_names_the_variable():
    code, _, err = await _run("serve", env={"SIGNOFF_MAX_BATCH": "lots"})
    assert code == 2
    assert "SIGNOFF_MAX_BATCH" in err


async def test_serve_refuses_a_bad_bundle(tmp_path: Path):
    (tmp_path / "p.yaml").write_text("name: x\nrules: [\n")
    code, _, err = await _run(
        "serve", "--policies", str(tmp_path), "--db", f"sqlite:///{tmp_path / 'db'}"
    )
    assert code == 1
    assert "p.yaml:" in err


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_serve_outside_a_checkout_fails_in_one_line_and_creates_nothing(
    tmp_path: Path, workers: str
):
    here, state = tmp_path / "empty", tmp_path / "state"
    here.mkdir()
    proc = await asyncio.create_subprocess_exec(
        *SIGNOFF,
        "serve",
        "--workers",
        workers,
        cwd=here,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SIGNOFF_STATE_DIR": str(state)},
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert err.decode() == "signoff: policies rejected: policies: no such policy directory\n"
    assert os.listdir(here) == []
    assert not state.exists()


async def test_a_bad_bundle_leaves_no_database_behind(tmp_path: Path):
    (tmp_path / "p.yaml").write_text("name: x\nrules: [\n")
    code, _, _ = await _run(
        "serve", "--policies", str(tmp_path), "--db", f"sqlite:///{tmp_path / 'db'}"
    )
    assert code == 1
    assert os.listdir(tmp_path) == ["p.yaml"]


async def test_a_database_in_a_missing_directory_is_refused_before_the_key(tmp_path: Path):
    state = tmp_path / "state"
    code, _, err = await _run(
        "serve",
        "--policies",
        str(EXAMPLE_POLICIES),
        "--db",
        f"sqlite:///{tmp_path / 'nowhere' / 'db'}",
        env={"SIGNOFF_STATE_DIR": str(state)},
    )
    assert code == 2
    assert f"db: {tmp_path / 'nowhere'}: no such directory" in err
    assert not state.exists()


async def test_policy_check_summarises_a_good_directory():
    code, out, _ = await _run("policy", "check", str(EXAMPLE_POLICIES))
    assert code == 0
    assert "refund.*" in out
    assert "sha256:" in out


async def test_policy_check_lists_errors_and_fails(tmp_path: Path):
    (tmp_path / "bad.yaml").write_text(
        "name: bad\nrules:\n  - name: r\n    when: nope > 1\n    decision: allow\n    reason: x\n"
    )
    code, _, err = await _run("policy", "check", str(tmp_path))
    assert code == 1
    assert re.search(r"bad\.yaml:4:\d+: r: .*nope", err)


async def test_token_new_prints_a_token_and_only_its_hash_for_the_file(tmp_path: Path):
    from signoff.auth import TokensAuthenticator, hash_token

    code, out, err = await _run("token", "new", "alice", "--role", "reviewer:finance")
    assert code == 0
    token = err.strip().rsplit(" ", 1)[-1]
    assert f"sha256: {hash_token(token)}" in out
    assert token not in out
    (tmp_path / "tokens.yaml").write_text("tokens:\n" + out)
    who = TokensAuthenticator(tmp_path / "tokens.yaml").authenticate(token)
    assert who.id == "alice"
    assert who.can_review("finance")


async def test_token_new_refuses_an_unknown_role():
    code, _, err = await _run("token", "new", "x", "--role", "root")
    assert code == 2
    assert "unknown role 'root'" in err


async def test_db_migrate_creates_the_schema_and_is_idempotent(tmp_path: Path):
    import sqlite3

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    for _ in range(2):
        code, out, err = await _run("db", "migrate", "--db", url)
        assert code == 0, err
        assert "up to date" in out
    with sqlite3.connect(tmp_path / "fresh.db") as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == sorted(set(versions))
    assert len(versions) >= 3


async def test_sigterm_ends_watch_streams_at_once_and_a_second_signal_is_harmless(
    tmp_path: Path,
):
    # A 60 s grace that open watch streams must not hold up: they end with UNAVAILABLE
    # (clients reconnect) and the process exits long before the grace is over.
    proc = await asyncio.create_subprocess_exec(
        *SIGNOFF, "serve", "--listen", "127.0.0.1:0", "--http-listen", "", "--log-format",
        "json", "--policies", str(EXAMPLE_POLICIES), "--db", f"sqlite:///{tmp_path / 'db.sqlite'}",
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "SIGNOFF_SHUTDOWN_GRACE": "60"},
    )  # fmt: skip
    assert proc.stderr is not None
    target = None
    while target is None:
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        assert line, "server exited before it started"
        if '"server.started"' in line:
            target = re.search(r'"listen": "([^"]+)"', line).group(1)  # type: ignore[union-attr]
    md = (("authorization", "Bearer bot"),)
    async with grpc.aio.insecure_channel(target) as ch:
        req = pb.common.ActionRequest(request_id="big-refund")
        req.principal.id = "bot"
        req.action.name = "refund.issue"
        req.action.params.update({"amount": 750, "currency": "EUR"})
        d = await decision_pb2_grpc.DecisionServiceStub(ch).Evaluate(req, metadata=md)
        assert d.outcome == pb.common.OUTCOME_REQUIRE_REVIEW
        watch = review_pb2_grpc.ReviewServiceStub(ch).WatchReview(
            pb.review.WatchReviewRequest(review_id=d.review_id), metadata=md
        )
        first = await asyncio.wait_for(watch.read(), 30)
        assert first.state == pb.review.REVIEW_STATE_PENDING
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)  # as GNU timeout does
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await asyncio.wait_for(watch.read(), 20)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    rest = (await asyncio.wait_for(proc.stderr.read(), 20)).decode()
    assert await proc.wait() == 0, rest
    assert "Traceback" not in rest
    assert "server.stopped" in rest
