"""An in-process server per backend for a whole test module, started as the end-to-end suite
starts them, with a pending review to aim requests at. A module uses it by naming the
fixture: `target = inproc.target` (the suite's conftest is for `signoff serve` processes)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

from signoff import pb
from signoff.settings.model import Settings
from signoff_client._gen import audit_pb2_grpc, decision_pb2_grpc, review_pb2_grpc

from ..e2e.conftest import EXAMPLE_POLICIES, ServerHandle, ServerThread
from ..pg import BACKENDS, backend_param, fresh_schema
from .wire import TOKEN

MD = (("authorization", f"Bearer {TOKEN}"),)


@dataclass(frozen=True)
class Target:
    """A server with a pending review (of refund.issue, for finance) to aim requests at."""

    server: ServerHandle
    review_id: str
    decision_id: str

    @property
    def known(self) -> list[str]:
        """Strings that name real objects, so generated requests get past the first lookup."""
        return [self.review_id, self.decision_id, "finance", "refund.issue", "bot", TOKEN]


def seed(handle: ServerHandle) -> Target:
    """Ask for a 750 EUR refund, which waits for finance; the target of later requests."""
    req = pb.common.ActionRequest()
    req.principal.id = "bot"
    req.action.name = "refund.issue"
    req.action.params.update({"amount": 750, "currency": "EUR"})
    d = decision_pb2_grpc.DecisionServiceStub(handle.channel()).Evaluate(req, metadata=MD)
    assert d.review_id, d
    return Target(handle, d.review_id, d.decision_id)


def assert_alive_and_valid(target: Target) -> None:
    """The server still answers, and its audit chain verifies from the first entry."""
    channel = target.server.channel()
    me = review_pb2_grpc.ReviewServiceStub(channel).WhoAmI(pb.review.WhoAmIRequest(), metadata=MD)
    assert me.id == TOKEN
    audit = audit_pb2_grpc.AuditServiceStub(channel)
    verdict = audit.VerifyAudit(pb.audit.VerifyAuditRequest(), metadata=MD)
    assert verdict.ok, verdict
    assert verdict.entries_checked > 1, verdict


@pytest.fixture(scope="module", params=BACKENDS)
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """One server per backend (dev mode: every caller has every role) for a whole module."""
    name = backend_param(request)
    with ExitStack() as stack:
        if name == "postgres":
            db = stack.enter_context(fresh_schema())
        else:
            db = f"sqlite:///{tmp_path_factory.mktemp('abuse-server') / 'signoff.db'}"
        settings = Settings(
            state_dir=tmp_path_factory.mktemp("abuse-state"),
            policies=EXAMPLE_POLICIES,
            db=db,
            listen="127.0.0.1:0",
            http_listen="127.0.0.1:0",
            shutdown_grace=0.0,
            audit={"create_key": True},
        )
        thread = ServerThread(settings)
        handle = thread.start()
        try:
            yield seed(handle)
        finally:
            thread.stop(handle)
