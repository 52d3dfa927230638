"""Unbounded fields and poisoned reads (issue 19, item 4) against a real server: every
oversized field is refused naming it, no entry can outgrow what a read returns, and reads
page by bytes, so QueryAudit, ExportAudit, ListReviews, WatchQueue and `signoff reviews list`
keep working after the attempts. Dev mode: the bearer token names the caller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import struct_pb2

from signoff import pb
from signoff.settings.model import Settings
from signoff_client._gen import audit_pb2_grpc, decision_pb2_grpc, review_pb2_grpc

from ..e2e.conftest import EXAMPLE_POLICIES, ServerHandle, ServerThread

A, D, R = pb.audit, pb.decision, pb.review
KiB = 1024
# Over each default bound by one unit (docs/configuration.md, limits.fields).
NAME, TEXT, ATTRS, PARAMS = 256 + 1, 16 * KiB + 1, 64 * KiB, 256 * KiB


def _md(who: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {who}"),)


def _refund(who: str = "bot", request_id: str = "") -> pb.common.ActionRequest:
    r = pb.common.ActionRequest(request_id=request_id, justification="double charge")
    r.action.name = "refund.issue"
    r.action.params.update({"amount": 750, "currency": "EUR"})  # reviewed by finance
    r.principal.id = who
    r.resource.kind = "account"
    r.resource.id = "acct_9"
    return r


def _head(server: ServerHandle) -> int:
    """The seq of the newest audit entry."""
    stub = audit_pb2_grpc.AuditServiceStub(server.channel())
    page = stub.QueryAudit(A.QueryAuditRequest(page_size=1, descending=True), metadata=_md("ann"))
    return page.entries[0].seq if page.entries else 0


def _refused(call: Callable[..., Any], request: Any) -> grpc.RpcError:
    def run() -> None:
        result = call(request, metadata=_md("bot"))
        if not hasattr(result, "ByteSize"):  # a stream: the error comes with the first read
            next(iter(result))

    with pytest.raises(grpc.RpcError) as err:
        run()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    return err.value


def _with(path: str, value: Any) -> pb.common.ActionRequest:
    """A reviewed refund with the field at `path` set to `value` (a Struct gets {"k": value},
    a repeated field gets the list)."""
    req = _refund()
    *parents, leaf = path.split(".")
    node: Any = req
    for p in parents:
        node = getattr(node, p)
    current = getattr(node, leaf)
    if isinstance(value, list):
        current.extend(value)
    elif hasattr(current, "update"):
        current.update({"k": value})
    else:
        setattr(node, leaf, value)
    return req


# (field, its bound's setting, a value just over the default bound)
EVALUATE_TABLE = [
    ("request_id", "name_bytes", "r" * NAME),
    ("action.name", "name_bytes", "a" * NAME),
    ("action.params", "max_params_bytes", "p" * PARAMS),
    ("context", "max_context_bytes", "c" * PARAMS),
    ("justification", "text_bytes", "j" * TEXT),
    ("principal.id", "name_bytes", "b" * NAME),
    ("principal.kind", "name_bytes", "k" * NAME),
    ("principal.roles", "list_items", ["x"] * 101),
    ("principal.tags", "list_items", ["x"] * 101),
    ("principal.on_behalf_of", "name_bytes", "o" * NAME),
    ("principal.attributes", "attributes_bytes", "a" * ATTRS),
    ("principal.claimed.kind", "name_bytes", "k" * NAME),
    ("principal.claimed.roles", "list_items", ["x"] * 101),
    ("principal.claimed.tags", "list_items", ["x"] * 101),
    ("principal.claimed.on_behalf_of", "name_bytes", "o" * NAME),
    ("principal.claimed.attributes", "attributes_bytes", "a" * ATTRS),
    ("resource.kind", "name_bytes", "k" * NAME),
    ("resource.id", "name_bytes", "i" * NAME),
    ("resource.attributes", "attributes_bytes", "a" * ATTRS),
]
EVALUATE_CASES = [
    pytest.param("Evaluate", _with(field, value), field, setting, id=field)
    for field, setting, value in EVALUATE_TABLE
] + [
    # One list entry over its size is named by its index; Explain has the same table.
    pytest.param(
        "Evaluate", _with("principal.tags", ["t" * NAME]), "principal.tags[0]", "name_bytes"
    ),
    pytest.param("Explain", _with("resource.id", "i" * NAME), "resource.id", "name_bytes"),
]
OTHER_CASES = [
    pytest.param(
        "EvaluateBatch",
        D.EvaluateBatchRequest(requests=[_refund(), _refund()]),
        "requests[1].resource.id",
        "name_bytes",
        id="batch",
    ),
    pytest.param(
        "ListReviews", R.ListReviewsRequest(page_token="t" * 1025), "page_token", "token_bytes"
    ),
    pytest.param("ListReviews", R.ListReviewsRequest(action="a" * 513), "action", "pattern_bytes"),
    pytest.param(
        "ListReviews",
        R.ListReviewsRequest(reviewer_groups=["g"] * 101),
        "reviewer_groups",
        "list_items",
    ),
    pytest.param(
        "WatchQueue",
        R.WatchQueueRequest(reviewer_groups=["g" * NAME]),
        "reviewer_groups[0]",
        "name_bytes",
    ),
    pytest.param(
        "CancelReview",
        R.CancelReviewRequest(review_id="x", reason="r" * TEXT),
        "reason",
        "text_bytes",
    ),
    pytest.param(
        "SubmitReview",
        R.SubmitReviewRequest(review_id="x", comment="c" * TEXT),
        "comment",
        "text_bytes",
    ),
    pytest.param(
        "SubmitReviews",
        R.SubmitReviewsRequest(reviews=[R.ReviewRef(review_id="x" * NAME)]),
        "reviews[0].review_id",
        "name_bytes",
    ),
    pytest.param(
        "RevokeGrant", R.RevokeGrantRequest(grant_id="g", reason="r" * TEXT), "reason", "text_bytes"
    ),
    pytest.param(
        "QueryAudit",
        A.QueryAuditRequest(filter=A.AuditFilter(request_id="r" * NAME)),
        "filter.request_id",
        "name_bytes",
    ),
    pytest.param(
        "ExportAudit",
        A.ExportAuditRequest(filter=A.AuditFilter(principal="p" * NAME)),
        "filter.principal",
        "name_bytes",
    ),
]
OTHER_CASES[0].values[1].requests[1].resource.id = "i" * NAME


def _stub_call(server: ServerHandle, method: str) -> Callable[..., Any]:
    channel = server.channel()
    for stub in (
        decision_pb2_grpc.DecisionServiceStub(channel),
        review_pb2_grpc.ReviewServiceStub(channel),
        audit_pb2_grpc.AuditServiceStub(channel),
    ):
        if hasattr(stub, method):
            return getattr(stub, method)
    raise AssertionError(method)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """One dev-mode server on SQLite for the table: its cases store nothing."""
    base = tmp_path_factory.mktemp("abuse")
    st = ServerThread(_settings(base))
    handle = st.start()
    yield handle
    st.stop(handle)


def _settings(base: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "state_dir": base / "state",
        "policies": EXAMPLE_POLICIES,
        "db": f"sqlite:///{base / 'signoff.db'}",
        "listen": "127.0.0.1:0",
        "http_listen": "127.0.0.1:0",
        "shutdown_grace": 0.0,
        "audit": {"create_key": True},
        **overrides,
    }
    return Settings(**values)


@pytest.mark.parametrize(("method", "request_", "field", "setting"), EVALUATE_CASES + OTHER_CASES)
def test_an_oversized_field_is_refused_naming_it_and_its_bound(
    shared: ServerHandle, method: str, request_: Any, field: str, setting: str
) -> None:
    before = _head(shared)
    err = _refused(_stub_call(shared, method), request_)
    assert err.details().startswith(f"{field}: "), err.details()
    assert setting in err.details()
    assert _head(shared) == before, "a refused request stored something"


def test_the_browser_transport_refuses_the_same_fields(shared: ServerHandle) -> None:
    body = {
        "action": {"name": "refund.issue", "params": {"amount": 750}},
        "principal": {"id": "bot"},
        "resource": {"attributes": {"k": "\u0001" * 20_000}},  # 20 KB sent, 120 KB escaped
    }
    headers = {
        "Content-Type": "application/json",
        "Connect-Protocol-Version": "1",
        "Authorization": "Bearer bot",
    }
    before = _head(shared)
    r = httpx.post(
        f"{shared.http_url}/signoff.v1.DecisionService/Evaluate",
        json=body,
        headers=headers,
        timeout=30,
    )
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_argument"
    assert r.json()["message"].startswith("resource.attributes: ")
    assert "limits.fields.attributes_bytes" in r.json()["message"]
    assert _head(shared) == before


# --- grants: their audit entries are bounded like decisions' and reviews' -------------------

LONG_KEY = "k" * 100_000  # one param key of 100 KB: each param under it repeats it in its path


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[ServerHandle]:
    """A dev-mode server on SQLite of this test's own (the grant cases store reviews)."""
    st = ServerThread(_settings(tmp_path))
    handle = st.start()
    yield handle
    st.stop(handle)


def _review_with_paths(server: ServerHandle, leaves: int) -> str:
    """A pending refund whose params hold `leaves` params under LONG_KEY: a 100 KB request
    (a fraction of max_params_bytes) whose paths take `leaves` x 100 KB."""
    req = _refund()
    req.action.params.update({"note": {LONG_KEY: {f"p{i}": "v" for i in range(leaves)}}})
    decision = decision_pb2_grpc.DecisionServiceStub(server.channel()).Evaluate(
        req, metadata=_md("bot")
    )
    assert decision.review_id, decision
    return decision.review_id


def _approve(server: ServerHandle, review_id: str, grant: R.GrantSpec | None) -> R.Review:
    req = R.SubmitReviewRequest(review_id=review_id, verdict=R.VERDICT_APPROVE, expected_version=1)
    if grant is not None:
        req.grant.CopyFrom(grant)
    return review_pb2_grpc.ReviewServiceStub(server.channel()).SubmitReview(
        req, metadata=_md("alice")
    )


GRANT = R.GrantSpec(
    ttl_seconds=3600,
    max_uses=1,
    bounds=[R.GrantBound(path="amount", op="<=", value=struct_pb2.Value(number_value=750))],
)


@pytest.mark.parametrize(
    ("leaves", "fits"),
    [
        pytest.param(2, True, id="200-KB-of-paths"),
        pytest.param(12, False, id="1.2-MB-of-paths"),  # over the 1 MiB default
    ],
)
def test_a_grant_whose_audit_entry_would_outgrow_a_read_is_refused_naming_it(
    fresh: ServerHandle, leaves: int, fits: bool
) -> None:
    review_id = _review_with_paths(fresh, leaves)
    reviews = review_pb2_grpc.ReviewServiceStub(fresh.channel())
    before = _head(fresh)
    if fits:
        assert _approve(fresh, review_id, GRANT).state == R.REVIEW_STATE_APPROVED
        listed = reviews.ListGrants(
            R.ListGrantsRequest(reviewer_group="finance"), metadata=_md("alice")
        )
        assert [g.review_id for g in listed.grants] == [review_id]
    else:
        with pytest.raises(grpc.RpcError) as caught:
            _approve(fresh, review_id, GRANT)
        err = caught.value
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
        assert err.details().startswith("grant: the grant.created audit entry would be "), (
            err.details()
        )
        assert "limits.fields.max_audit_entry_bytes" in err.details()
        assert _head(fresh) == before, "a refused grant stored something"
        # As the message says: the same approval without a grant goes through.
        assert _approve(fresh, review_id, None).state == R.REVIEW_STATE_APPROVED
    # Either way every entry can be read back, the largest included.
    audit = audit_pb2_grpc.AuditServiceStub(fresh.channel())
    types = [e.type for e in audit.QueryAudit(A.QueryAuditRequest(), metadata=_md("ann")).entries]
    assert ("grant.created" in types) == fits


@pytest.fixture
def small_entries(tmp_path: Path) -> Iterator[ServerHandle]:
    """A dev-mode server whose audit entries may take 64 KiB, and a bound's value as much."""
    limits = {"fields": {"max_audit_entry_bytes": 64 * KiB, "value_bytes": 64 * KiB}}
    st = ServerThread(_settings(tmp_path, limits=limits))
    handle = st.start()
    yield handle
    st.stop(handle)


def _grant_near_the_limit(server: ServerHandle) -> R.Grant:
    """A grant whose grant.created entry is just under 64 KiB: its one string bound holds
    8,000 control characters, which the scope spells out escaped (7 bytes each in JSON)."""
    memo = "\x01" * 8000
    req = _refund()
    req.action.params.update({"memo": memo})
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    review_id = stub.Evaluate(req, metadata=_md("bot")).review_id
    grant = R.GrantSpec()
    grant.CopyFrom(GRANT)
    grant.bounds.add(path="memo", op="==", value=struct_pb2.Value(string_value=memo))
    assert _approve(server, review_id, grant).state == R.REVIEW_STATE_APPROVED
    listed = review_pb2_grpc.ReviewServiceStub(server.channel()).ListGrants(
        R.ListGrantsRequest(reviewer_group="finance"), metadata=_md("alice")
    )
    (made,) = listed.grants
    return made


@pytest.mark.parametrize(
    ("reason", "fits"),
    [pytest.param("r" * 100, True, id="100-bytes"), pytest.param("r" * 16_000, False, id="16-KB")],
)
def test_a_revocation_whose_audit_entry_would_outgrow_a_read_is_refused_naming_the_reason(
    small_entries: ServerHandle, reason: str, fits: bool
) -> None:
    grant = _grant_near_the_limit(small_entries)
    reviews = review_pb2_grpc.ReviewServiceStub(small_entries.channel())
    revoke = R.RevokeGrantRequest(grant_id=grant.grant_id, reason=reason)
    before = _head(small_entries)
    if fits:
        assert reviews.RevokeGrant(revoke, metadata=_md("alice")).HasField("revoked_at")
    else:
        with pytest.raises(grpc.RpcError) as caught:
            reviews.RevokeGrant(revoke, metadata=_md("alice"))
        err = caught.value
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
        assert err.details().startswith("reason: the grant.revoked audit entry would be "), (
            err.details()
        )
        assert "limits.fields.max_audit_entry_bytes" in err.details()
        assert _head(small_entries) == before, "a refused revocation stored something"
        # A shorter reason goes through.
        assert reviews.RevokeGrant(
            R.RevokeGrantRequest(grant_id=grant.grant_id, reason="too broad"),
            metadata=_md("alice"),
        ).HasField("revoked_at")
