"""PostgreSQL restarted under load: UNAVAILABLE while it is down, nothing acknowledged lost,
and the service recovers by itself.

The restart is of a private cluster (initdb in a temporary directory, its own port), not
of the machine's server, which other suites running at the same time may be using.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from signoff import pb
from signoff_client._gen import decision_pb2_grpc

from ..pg import REQUIRE_POSTGRES
from .conftest import free_port

pytestmark = pytest.mark.postgres_only


@dataclass(frozen=True)
class Cluster:
    """A PostgreSQL server of this test's own."""

    url: str
    restart: Callable[[], None]


def _bindir() -> Path | None:
    # Debian keeps initdb and pg_ctl out of PATH, per major version.
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: Path(p).parts[4])
    return Path(found[-1]).parent if found else None


@pytest.fixture
def private_cluster() -> Iterator[Cluster]:
    bindir = _bindir() or (Path(p).parent if (p := shutil.which("pg_ctl")) else None)
    if bindir is None or not (bindir / "initdb").exists():
        reason = "needs PostgreSQL's initdb and pg_ctl to run a private cluster"
        if REQUIRE_POSTGRES:
            pytest.fail(reason)
        pytest.skip(reason)
    # PostgreSQL refuses to run as root: as root, run it as the postgres user.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = Path(tempfile.mkdtemp(prefix="signoff-pg-"))
    if as_user:
        shutil.chown(data, "postgres")
    port = free_port()
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"

    def pg_ctl(*argv: str) -> None:
        cmd = [*as_user, str(bindir / "pg_ctl"), "-D", str(data / "db"), "-w", *argv]
        subprocess.run(cmd, check=True, timeout=60, capture_output=True)

    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U",
         "postgres", "--no-sync"],
        check=True, timeout=120, capture_output=True,
    )  # fmt: skip
    pg_ctl("-o", options, "-l", str(data / "server.log"), "start")
    try:
        yield Cluster(
            url=f"postgresql://postgres@127.0.0.1:{port}/postgres",
            restart=lambda: pg_ctl("-o", options, "-l", str(data / "server.log"), "restart"),
        )
    finally:
        pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(data, ignore_errors=True)


def test_postgres_restart_under_load_loses_nothing(make_server, private_cluster):
    server = make_server(backend="postgres", db=private_cluster.url)
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
        _until(lambda: len(acked) >= 20, stop)  # under load: decisions flowing first
        assert len(acked) >= 20, "no load before the restart"
        started = len(acked)
        private_cluster.restart()
        before = len(acked)
        # Recovery by itself: decisions are acknowledged again after the restart.
        _until(lambda: len(acked) >= before + 20, stop)
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
    print(
        f"acked {len(acked)}: {started} before the restart, {before - started} during it; "
        f"{len(errors)} UNAVAILABLE"
    )


def _until(done: Callable[[], bool], stop: threading.Event, seconds: float = 30) -> None:
    # The load threads give no event to await; a bounded check every 50 ms.
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        stop.wait(0.05)
