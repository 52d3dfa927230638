"""PostgreSQL restarted under load: UNAVAILABLE while it is down, nothing acknowledged lost,
and the service recovers by itself."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import grpc
import pytest

from signoff import pb
from signoff_client._gen import decision_pb2_grpc

from ..pg import postgres_unreachable

pytestmark = pytest.mark.postgres_only


def _cluster() -> str:
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    return versions[-1] if versions else ""


@pytest.fixture
def restartable() -> str:
    if postgres_unreachable() or not shutil.which("pg_ctlcluster"):
        pytest.skip("needs the machine's own PostgreSQL cluster (pg_ctlcluster)")
    return _cluster()


def test_postgres_restart_under_load_loses_nothing(make_server, restartable):
    server = make_server(backend="postgres")
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    acked: list[str] = []
    errors: list[grpc.StatusCode] = []
    stop = threading.Event()

    def load(worker: int) -> None:
        i = 0
        while not stop.is_set():
            req = pb.common.ActionRequest(request_id=f"w{worker}-{i}")
            req.action.name = "refund.issue"
            req.action.params.update({"amount": 100})
            try:
                acked.append(stub.Evaluate(req, timeout=10).decision_id)
            except grpc.RpcError as exc:
                errors.append(exc.code())
            i += 1

    threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    try:
        cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", restartable, "main", "restart"]
        subprocess.run(cmd, check=True, timeout=60, capture_output=True)
        before = len(acked)
        # Recovery by itself: decisions are acknowledged again after the restart.
        deadline = threading.Event()
        timer = threading.Timer(30, deadline.set)
        timer.start()
        while len(acked) < before + 20 and not deadline.is_set():
            stop.wait(0.05)
        timer.cancel()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert len(acked) >= before + 20, f"no recovery: {len(acked) - before} after restart"
    assert set(errors) <= {grpc.StatusCode.UNAVAILABLE}, set(errors)
    stored = {
        e.decision_id
        for e in server.call(server.running.app.store.read_audit(1, 1_000_000))
        if e.type == "decision"
    }
    assert set(acked) <= stored  # every acknowledged decision was stored
    print(f"acked {len(acked)}, {before} before the restart finished, {len(errors)} UNAVAILABLE")
