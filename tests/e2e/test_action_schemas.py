"""Action schemas through the real server: policies/refunds.yaml declares the params of
refund.* (amount a number >= 0, currency 3 letters); a request that breaks the schema is
INVALID_ARGUMENT naming the field, before any rule runs (nothing is audited)."""

from __future__ import annotations

import grpc
import pytest

from signoff import pb
from signoff_client._gen import decision_pb2_grpc

from .conftest import ServerHandle


def _req(**params: object) -> pb.common.ActionRequest:
    r = pb.common.ActionRequest(justification="customer asked")
    r.action.name = "refund.issue"
    r.action.params.update(params)
    r.principal.id = "support-bot"
    r.principal.kind = "agent"
    r.resource.kind = "account"
    r.resource.id = "acct_1"
    return r


def _stub(server: ServerHandle) -> decision_pb2_grpc.DecisionServiceStub:
    return decision_pb2_grpc.DecisionServiceStub(server.channel())


def _decisions(server: ServerHandle) -> int:
    entries = server.call(server.running.app.store.read_audit(1, 10_000))
    return sum(1 for e in entries if e.type == "decision")


def test_a_request_that_fits_the_schema_is_decided(signoff):
    d = _stub(signoff).Evaluate(_req(amount=120, currency="EUR"))
    assert d.outcome == pb.common.OUTCOME_AUTO_ALLOW
    assert _decisions(signoff) == 1


@pytest.mark.parametrize(
    ("params", "details"),
    [
        ({"amount": "lots"}, "action.params.amount: must be a number"),
        ({"amount": -5}, "action.params.amount: must be at least 0"),
        (
            {"amount": 5, "currency": "EURO"},
            "action.params.currency: must have at most 3 characters",
        ),
    ],
)
def test_a_request_that_breaks_the_schema_is_refused_naming_the_field(signoff, params, details):
    stub = _stub(signoff)
    for call in (stub.Evaluate, stub.Explain):
        with pytest.raises(grpc.RpcError) as err:
            call(_req(**params))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details() == details
    assert _decisions(signoff) == 0  # refused before any rule ran: nothing decided


def test_a_batch_names_the_request_that_breaks_the_schema(signoff):
    batch = pb.decision.EvaluateBatchRequest(requests=[_req(amount=1), _req(amount="x")])
    with pytest.raises(grpc.RpcError) as err:
        _stub(signoff).EvaluateBatch(batch)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "requests[1].action.params.amount: must be a number"
    assert _decisions(signoff) == 0
