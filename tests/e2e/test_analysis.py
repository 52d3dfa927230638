"""GetAnalysis through a real server and the generated client: the policy analysis of the
bundle in force, once per version, for auditors and admins only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from signoff import pb
from signoff_client._gen import policy_pb2_grpc

from .conftest import MakeServer, ServerHandle, write_tokens

P = pb.policy
PEOPLE = {
    "tok-ann": ("ann", ["auditor"]),
    "tok-root": ("root", ["admin"]),
    "tok-alice": ("alice", ["reviewer:finance"]),
    "tok-bot": ("support-bot", ["agent"]),
}
GOOD = """\
name: things
actions: ["thing.*"]
rules:
  - name: only-a
    when: action.name == "thing.a"
    decision: allow
    reason: the one action it knows
"""
PLANTED = GOOD.replace(
    "rules:\n",
    "rules:\n  - name: never\n    when: size(action.name) > 10 && size(action.name) < 5\n"
    "    decision: deny\n    reason: can never match\n",
)


def _stub(server: ServerHandle) -> policy_pb2_grpc.PolicyServiceStub:
    return policy_pb2_grpc.PolicyServiceStub(server.channel())


def _get(server: ServerHandle, token: str, wait_ms: int = 0) -> P.BundleAnalysis:
    return _stub(server).GetAnalysis(
        P.GetAnalysisRequest(wait_ms=wait_ms),
        metadata=(("authorization", f"Bearer {token}"),),
        timeout=60,
    )


def _done(server: ServerHandle, token: str = "tok-ann") -> P.BundleAnalysis:
    out = _get(server, token, wait_ms=30_000)
    assert out.state == P.ANALYSIS_STATE_DONE, out
    return out


@pytest.fixture
def served(
    make_server: MakeServer, policy_dir: Callable[[dict[str, str]], Path], tmp_path: Path
) -> ServerHandle:
    root = policy_dir({"things.yaml": GOOD})
    return make_server(
        policies=root,
        auth={"tokens_file": write_tokens(tmp_path, PEOPLE)},
        watch_policies=False,
        analysis_timeout=5.0,
    )


def test_an_auditor_sees_the_findings_of_each_bundle_version(served: ServerHandle) -> None:
    version = served.running.app.bundle.version
    first = _get(served, "tok-ann")
    assert first.state in (P.ANALYSIS_STATE_RUNNING, P.ANALYSIS_STATE_DONE)
    assert (first.bundle_version, first.rules, first.timeout_s) == (version, 1, 5.0)
    out = _done(served)
    assert out.bundle_version == version
    [default] = out.findings
    assert (default.kind, default.policy, default.rule) == ("DEFAULT-APPLIES", "things", "")
    assert (default.file, default.line) == ("things.yaml", 1)
    assert '"name": "thing.' in default.example_json
    assert out.problems == 0
    assert _done(served, "tok-root") == out  # an admin too; the same, computed once
    assert served.running.app.analyses.computed == 1

    # A reload with a rule that can never match: the new version is analysed anew.
    (served.running.app.policies / "things.yaml").write_text(PLANTED)
    resp = _stub(served).ReloadBundle(
        P.ReloadBundleRequest(), metadata=(("authorization", "Bearer tok-root"),)
    )
    assert resp.accepted
    again = _done(served)
    assert again.bundle_version == resp.bundle.version != version
    assert [(f.kind, f.rule) for f in again.findings] == [
        ("INEFFECTIVE", "never"),
        ("DEFAULT-APPLIES", ""),
    ]
    assert again.findings[0].line == 4
    assert again.problems == 1
    assert served.running.app.analyses.computed == 2


@pytest.mark.parametrize("token", ["tok-alice", "tok-bot"])
def test_reviewers_and_agents_may_not_see_it(served: ServerHandle, token: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        _get(served, token)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "needs the role admin or auditor" in (err.value.details() or "")
    assert served.running.app.analyses.computed == 0  # refused before anything runs


@pytest.mark.parametrize("wait_ms", [-1, 30_001])
def test_a_wait_out_of_bounds_is_refused(served: ServerHandle, wait_ms: int) -> None:
    assert _get(served, "tok-ann", wait_ms=30_000).state == P.ANALYSIS_STATE_DONE
    with pytest.raises(grpc.RpcError) as err:
        _get(served, "tok-ann", wait_ms=wait_ms)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "wait_ms: must be 0 to 30000" in (err.value.details() or "")
