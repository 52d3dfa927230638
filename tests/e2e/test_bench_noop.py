"""The bench's no-op Evaluate: served only when the bench starts the server with its flag."""

from __future__ import annotations

from pathlib import Path

import grpc
import httpx
import pytest

from signoff import pb
from signoff.api import bench as bench_api
from signoff_client._gen import decision_pb2_grpc

from .conftest import MakeServer, ServerHandle, write_tokens

NOOP = f"/{bench_api.SERVICE}/NoopEvaluate"


def _request(amount: int = 120) -> pb.common.ActionRequest:
    r = pb.common.ActionRequest(request_id="bench-1")
    r.action.name = "refund.issue"
    r.action.params.update({"amount": amount, "currency": "EUR"})
    r.principal.id = "bench-bot"
    r.principal.kind = "agent"
    return r


def _noop(server: ServerHandle, token: str = "") -> grpc.UnaryUnaryMultiCallable:
    call = server.channel().unary_unary(
        NOOP,
        request_serializer=pb.common.ActionRequest.SerializeToString,
        response_deserializer=pb.common.Decision.FromString,
    )
    if not token:
        return call
    return lambda req: call(req, metadata=(("authorization", f"Bearer {token}"),))


@pytest.fixture
def flagged(make_server: MakeServer, monkeypatch: pytest.MonkeyPatch) -> ServerHandle:
    monkeypatch.setenv(bench_api.ENV_FLAG, "1")
    return make_server()


def test_a_normal_server_does_not_serve_the_noop(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(bench_api.ENV_FLAG, raising=False)
    server = make_server()
    with pytest.raises(grpc.RpcError) as err:
        _noop(server)(_request())
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    r = httpx.post(
        f"{server.http_url}{NOOP}",
        content=b"{}",
        headers={"Content-Type": "application/json", "Connect-Protocol-Version": "1"},
    )
    assert r.status_code == 404


def test_only_the_value_1_turns_it_on(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(bench_api.ENV_FLAG, "true")
    with pytest.raises(grpc.RpcError) as err:
        _noop(make_server())(_request())
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_the_flagged_server_answers_a_decision_the_size_of_a_real_one(
    flagged: ServerHandle,
) -> None:
    noop = _noop(flagged)(_request())
    real = decision_pb2_grpc.DecisionServiceStub(flagged.channel()).Evaluate(_request())
    assert real.receipt.payload  # the real one compared with is the largest kind
    assert noop.request_id == "bench-1"
    assert noop.decision_id
    assert noop.decision_id != real.decision_id
    assert noop.evaluated_at.seconds > 0
    assert len(noop.matched_rules) >= len(real.matched_rules)
    assert len(noop.receipt.signature) == len(real.receipt.signature)
    # The floor must carry what the real call carries: within a quarter of its bytes.
    assert 0.75 < noop.ByteSize() / real.ByteSize() < 1.25


def test_the_noop_writes_nothing(flagged: ServerHandle) -> None:
    def decisions() -> list[str]:
        entries = flagged.call(flagged.running.app.store.read_audit(1, 100))
        return [e.type for e in entries if e.type.startswith("decision")]

    _noop(flagged)(_request())
    assert decisions() == []
    decision_pb2_grpc.DecisionServiceStub(flagged.channel()).Evaluate(_request())
    assert decisions()  # what the real call leaves, and the no-op does not


def test_the_noop_goes_through_authentication_and_the_field_bounds(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(bench_api.ENV_FLAG, "1")
    tokens = write_tokens(tmp_path, {"bot-token": ("bench-bot", ["agent"])})
    server = make_server(auth={"tokens_file": tokens})
    with pytest.raises(grpc.RpcError) as err:
        _noop(server, "wrong-token")(_request())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _noop(server, "bot-token")(_request()).request_id == "bench-1"
    too_long = _request()
    too_long.action.name = "x" * 100_000
    with pytest.raises(grpc.RpcError) as err:
        _noop(server, "bot-token")(too_long)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
