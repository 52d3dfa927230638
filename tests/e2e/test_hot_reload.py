"""Hot reload: the server watches its policy directory and swaps bundles as files change."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from signoff import pb
from signoff.serving.watch import PolicyWatcher
from signoff_client._gen import decision_pb2_grpc

from .bundles import ALLOW_ALL, BROKEN, DENY_ALL
from .conftest import ServerHandle

# Short quiet period: the tests wait for reloads, so a shorter one only makes them faster.
FAST = {"watch_debounce": 0.05}


def _req() -> pb.common.ActionRequest:
    r = pb.common.ActionRequest()
    r.action.name = "anything.at_all"
    return r


def _write(path: Path, text: str) -> None:
    """Replace a file atomically, as editors and git do (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _watcher(server: ServerHandle) -> PolicyWatcher:
    watcher = server.running.watcher
    assert watcher is not None
    return watcher


def _watching(server: ServerHandle) -> PolicyWatcher:
    """The server's watcher, once its watch is established (changes before it may be missed)."""
    watcher = _watcher(server)
    server.call(asyncio.wait_for(watcher.ready.wait(), 10))
    return watcher


def _wait_until(server: ServerHandle, holds: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait reload by reload (no sleeping) until `holds()` is true."""
    watcher = _watcher(server)
    deadline = time.monotonic() + timeout
    while True:
        seen = watcher.reloads
        if holds():
            return
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; watcher reloads={watcher.reloads} last={watcher.last}"
        with contextlib.suppress(TimeoutError):  # the assertion above reports it
            server.call(asyncio.wait_for(watcher.wait_reloads(seen), remaining))


def _version(server: ServerHandle) -> str:
    return server.running.app.bundle.version


def _audit(server: ServerHandle, kind: str) -> list:
    entries = server.call(server.running.app.store.read_audit(1, 100_000))
    return [e for e in entries if e.type == kind]


def test_editing_a_policy_file_changes_decisions(make_server, policy_dir):
    root = policy_dir({"all.yaml": ALLOW_ALL})
    server = make_server(policies=root, **FAST)
    _watching(server)
    decide = decision_pb2_grpc.DecisionServiceStub(server.channel()).Evaluate
    first = decide(_req())
    assert first.outcome == pb.common.OUTCOME_AUTO_ALLOW

    _write(root / "all.yaml", DENY_ALL)
    _wait_until(server, lambda: _version(server) != first.policy_version)

    second = decide(_req())
    assert second.outcome == pb.common.OUTCOME_DENY
    assert second.policy_version == _version(server) != first.policy_version
    loaded = _audit(server, "policy.loaded")
    assert loaded[-1].actor == "watcher"
    assert loaded[-1].policy_version == second.policy_version


def test_broken_edit_is_rejected_audited_and_the_old_bundle_keeps_serving(make_server, policy_dir):
    root = policy_dir({"all.yaml": ALLOW_ALL})
    server = make_server(policies=root, **FAST)
    watcher = _watching(server)
    good = _version(server)

    _write(root / "all.yaml", BROKEN)
    _wait_until(server, lambda: watcher.last is not None and not watcher.last[0])

    rejected = _audit(server, "policy.rejected")
    assert [e.actor for e in rejected] == ["watcher"]
    assert rejected[0].policy_version == good  # the version still in force
    assert any("all.yaml:4:" in err and "bad-rule" in err for err in rejected[0].payload["errors"])
    d = decision_pb2_grpc.DecisionServiceStub(server.channel()).Evaluate(_req())
    assert d.outcome == pb.common.OUTCOME_AUTO_ALLOW
    assert d.policy_version == good


def test_a_directory_that_disappears_keeps_the_last_bundle_until_it_comes_back(
    make_server, policy_dir
):
    root = policy_dir(
        {"all.yaml": ALLOW_ALL, "team/more.yaml": ALLOW_ALL.replace("everything", "more")}
    )
    server = make_server(policies=root, **FAST)
    watcher = _watching(server)
    good = _version(server)
    decide = decision_pb2_grpc.DecisionServiceStub(server.channel()).Evaluate

    shutil.rmtree(root)
    _wait_until(
        server, lambda: not root.exists() and watcher.last is not None and not watcher.last[0]
    )
    errors = _audit(server, "policy.rejected")[-1].payload["errors"]
    assert any("no such policy directory" in e for e in errors), errors
    d = decide(_req())
    assert (d.outcome, d.policy_version) == (pb.common.OUTCOME_AUTO_ALLOW, good)

    root.mkdir()
    _write(root / "all.yaml", DENY_ALL)
    _wait_until(server, lambda: _version(server) != good)
    assert decide(_req()).outcome == pb.common.OUTCOME_DENY
    assert not any(t.done() for t in server.running.tasks)  # the watcher is still running

    # And it watches the new directory, not the inode that was removed.
    _watching(server)
    _write(root / "all.yaml", ALLOW_ALL.replace("all good", "all good again"))
    _wait_until(server, lambda: decide(_req()).outcome == pb.common.OUTCOME_AUTO_ALLOW)


def test_reload_during_a_burst_decides_each_request_with_exactly_one_bundle(
    make_server, policy_dir
):
    root = policy_dir({"all.yaml": ALLOW_ALL})
    server = make_server(policies=root, **FAST)
    _watching(server)
    allow_version = _version(server)
    _write(root / "all.yaml", DENY_ALL)
    _wait_until(server, lambda: _version(server) != allow_version)
    expected = {
        allow_version: pb.common.OUTCOME_AUTO_ALLOW,
        _version(server): pb.common.OUTCOME_DENY,
    }

    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    flipping_done = threading.Event()

    def agent(_: int) -> list[pb.common.Decision]:
        out: list[pb.common.Decision] = []
        while not flipping_done.is_set() or len(out) < 25:
            out.append(stub.Evaluate(_req()))
        return out

    with ThreadPoolExecutor(max_workers=8) as pool:
        agents = [pool.submit(agent, i) for i in range(8)]
        try:
            for text in [ALLOW_ALL, DENY_ALL] * 3:
                before = _version(server)
                _write(root / "all.yaml", text)
                _wait_until(server, lambda before=before: _version(server) != before)
        finally:
            flipping_done.set()
        decisions = [d for a in agents for d in a.result()]  # re-raises any failed call

    assert len(decisions) >= 200
    assert {d.policy_version for d in decisions} == set(expected)
    for d in decisions:
        assert d.outcome == expected[d.policy_version], d
    audited = {e.decision_id: e.policy_version for e in _audit(server, "decision")}
    assert {d.decision_id: d.policy_version for d in decisions} == audited


def test_test_files_hidden_files_and_other_extensions_do_not_reload():
    watcher = PolicyWatcher(app=None, directory=Path("/srv/policies"))  # type: ignore[arg-type]
    relevant = {
        "/srv/policies/refunds.yaml": True,
        "/srv/policies/team/refunds.yml": True,
        "/srv/policies/team": True,  # a directory moved in or out as a whole
        "/srv/policies": True,  # the directory itself
        "/srv/policies/refunds_test.yaml": False,
        "/srv/policies/.refunds.yaml.swp": False,
        "/srv/policies/.git/index": False,
        "/srv/policies/README.md": False,
        "/srv/policies/refunds.yaml~": False,
    }
    assert {p: watcher._relevant(None, p) for p in relevant} == relevant  # type: ignore[arg-type]


def test_watching_can_be_turned_off(make_server, policy_dir):
    server = make_server(policies=policy_dir({"all.yaml": ALLOW_ALL}), watch_policies=False)
    assert server.running.watcher is None


@pytest.mark.parametrize("removed", ["file", "subdirectory"])
def test_removing_policies_reloads(make_server, policy_dir, removed):
    deny = DENY_ALL.replace("everything", "team")
    root = policy_dir({"all.yaml": ALLOW_ALL, "team/deny.yaml": deny})
    server = make_server(policies=root, **FAST)
    _watching(server)
    decide = decision_pb2_grpc.DecisionServiceStub(server.channel()).Evaluate
    assert decide(_req()).outcome == pb.common.OUTCOME_DENY
    if removed == "file":
        (root / "team" / "deny.yaml").unlink()
    else:
        # A rename reports one event for the directory, none for the files inside it.
        shutil.move(root / "team", root.parent / "elsewhere")
    _wait_until(server, lambda: decide(_req()).outcome == pb.common.OUTCOME_AUTO_ALLOW)
