"""The database fails under a running server: UNAVAILABLE, nothing acknowledged unstored."""

from __future__ import annotations

import grpc
import pytest

from signoff import pb
from signoff_client._gen import decision_pb2_grpc

from .conftest import ServerHandle


def _req(amount: float, request_id: str = "") -> pb.common.ActionRequest:
    r = pb.common.ActionRequest(request_id=request_id)
    r.action.name = "refund.issue"
    r.action.params.update({"amount": amount, "note": "x" * 50_000})
    r.principal.id = "bot"
    return r


def _decisions(server: ServerHandle) -> list:
    entries = server.call(server.running.app.store.read_audit(1, 10_000))
    return [e for e in entries if e.type == "decision"]


def _fill_disk(conn) -> None:
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


# Both faults fail writes exactly as a read-only file (SQLITE_READONLY) or a full disk
# (SQLITE_FULL) do; as root, chmod cannot make a file read-only.
FAULTS = {
    "read-only": (
        lambda c: c.execute("PRAGMA query_only = ON"),
        lambda c: c.execute("PRAGMA query_only = OFF"),
        "read-only",
    ),
    "disk full": (
        _fill_disk,
        lambda c: c.execute("PRAGMA max_page_count = 1073741823"),
        "full",
    ),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_database_failure_is_unavailable_and_recovers(server, fault):
    break_db, fix_db, words = FAULTS[fault]
    store = server.running.app.store
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    stub.Evaluate(_req(1))
    before = _decisions(server)

    server.call(store.maintenance(break_db))
    with pytest.raises(grpc.RpcError) as err:
        stub.Evaluate(_req(2, request_id="during-fault"))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert words in err.value.details()
    assert _decisions(server) == before

    server.call(store.maintenance(fix_db))
    # The retry with the same request_id is a fresh decision: the failed one never existed.
    d = stub.Evaluate(_req(2, request_id="during-fault"))
    assert not d.replayed
    assert [e.decision_id for e in _decisions(server)][-1] == d.decision_id
