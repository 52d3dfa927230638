"""Grant rows are checked against their grant.created / grant.revoked entries, on both
backends: a row changed in the database allows nothing, and `VerifyAudit` names it (the
tampering helpers are test_chain_tables.py's)."""

from __future__ import annotations

import pytest

from signoff import pb
from signoff_client._gen import review_pb2_grpc

from .conftest import FakeClock, ServerHandle, write_tokens
from .test_chain_tables import _tamper, _verify
from .test_grants import EUR_750, PEOPLE, POLICIES, _approve, _ask, _grants, _spec

R = pb.review
ALLOW, REVIEW = pb.common.OUTCOME_AUTO_ALLOW, pb.common.OUTCOME_REQUIRE_REVIEW


@pytest.fixture
def srv(make_server, backend, policy_dir, tmp_path) -> ServerHandle:
    """The grant tests' server (finance reviewers alice and bob), with an auditor, ann."""
    tokens = write_tokens(tmp_path, {**PEOPLE, "ann": ("ann", ["auditor"])}, others=["gw"])
    return make_server(policy_dir(POLICIES), clock=FakeClock(), auth={"tokens_file": tokens})


def test_an_untampered_database_verifies_ok(srv):
    grant = _granted(srv, uses=3)
    assert _ask(srv, 500).outcome == ALLOW
    d = _ask(srv, 800)
    _approve(srv, d.review_id, None, who="bob", verdict=R.VERDICT_REJECT)
    stub = review_pb2_grpc.ReviewServiceStub(srv.channel())
    stub.RevokeGrant(
        R.RevokeGrantRequest(grant_id=grant.grant_id), metadata=(("authorization", "Bearer bob"),)
    )
    v = _verify(srv)
    assert v.ok, v.problem
    assert v.entries_checked > 5


# -- grants ------------------------------------------------------------------------------------


def _granted(srv: ServerHandle, uses: int) -> R.Grant:
    d = _ask(srv, 750)
    assert d.outcome == REVIEW
    assert _approve(srv, d.review_id, _spec(uses=uses, **EUR_750)).state == R.REVIEW_STATE_APPROVED
    (grant,) = _grants(srv)
    return grant


def _widened(grant: R.Grant) -> bytes:
    g = R.Grant()
    g.CopyFrom(grant)
    g.uses = 0
    for b in g.bounds:
        if b.path == "amount":
            b.value.number_value = 1_000_000
    return g.SerializeToString()


GRANT_TAMPERING = {
    # name: (the grant's max_uses, what to do first, the statement, the field verify names)
    "max_uses raised": (
        1,
        "use",
        "UPDATE grants SET max_uses = 50 WHERE grant_id = %s",
        "max_uses",
    ),
    "bounds widened": (3, "", "UPDATE grants SET grant_pb = %s WHERE grant_id = %s", "grant_pb"),
    "revocation cleared": (
        3,
        "revoke",
        "UPDATE grants SET revoked_at = NULL, revoked_by = '' WHERE grant_id = %s",
        "revoked_at",
    ),
}


@pytest.mark.parametrize("case", GRANT_TAMPERING)
def test_a_tampered_grant_row_allows_nothing_and_verify_names_it(srv, case):
    uses, before, statement, field = GRANT_TAMPERING[case]
    grant = _granted(srv, uses)
    if before == "use":
        assert _ask(srv, 500).outcome == ALLOW  # used up
    elif before == "revoke":
        review_pb2_grpc.ReviewServiceStub(srv.channel()).RevokeGrant(
            R.RevokeGrantRequest(grant_id=grant.grant_id),
            metadata=(("authorization", "Bearer bob"),),
        )
    args = (_widened(grant), grant.grant_id) if case == "bounds widened" else (grant.grant_id,)
    _tamper(srv, "grants", statement, *args)
    srv.running.app.grants.changed()  # as if the cache's few seconds had passed

    amount = 5_000 if case == "bounds widened" else 500
    d = _ask(srv, amount)
    assert d.outcome == REVIEW, d.reason
    v = _verify(srv)
    assert not v.ok
    assert v.problem.startswith(f"table mismatch: grants row {grant.grant_id}: {field}"), v.problem


def test_a_reset_use_counter_is_named_by_verify(srv):
    grant = _granted(srv, uses=2)
    assert _ask(srv, 500).outcome == ALLOW
    _tamper(srv, "grants", "UPDATE grants SET uses = 0 WHERE grant_id = %s", grant.grant_id)
    v = _verify(srv)
    assert not v.ok
    assert v.problem.startswith(
        f"table mismatch: grants row {grant.grant_id}: uses is 0 in the row but 1 decisions"
    )
