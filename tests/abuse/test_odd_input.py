"""Hand-written odd input, each refused as INVALID_ARGUMENT naming the field, over gRPC and
Connect (binary; JSON where the JSON form can say it). Each case was INTERNAL, with a stack
trace in the log, before issue 19 (or, for unknown enums, silently read as the default)."""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from google.protobuf.message import Message

from signoff import pb
from signoff_client._gen import audit_pb2_grpc, review_pb2_grpc

from . import inproc
from .inproc import MD, Target, assert_alive_and_valid
from .messages import deep_struct_bytes, varint
from .wire import Caller, Rpc, every_rpc, to_json, watching_logs

A, P, R, C = pb.audit, pb.policy, pb.review, pb.common
RPC = {r.name.split("/")[1]: r for r in every_rpc()}
target = inproc.target  # the fixture: one server per backend for this module
YEAR_0 = -62_135_596_801  # a second before 0001-01-01T00:00:00Z
YEAR_10000 = 253_402_300_800
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def _ts(seconds: int, nanos: int = 0) -> dict[str, int]:
    return {"seconds": seconds, "nanos": nanos}


def _grant(t: Target, value: float | list) -> Message:
    req = R.SubmitReviewRequest(
        review_id=t.review_id, verdict=R.VERDICT_APPROVE, expected_version=1, comment="ok"
    )
    req.grant.ttl_seconds, req.grant.max_uses = 3600, 1
    bound = req.grant.bounds.add(path="amount", op="<=" if isinstance(value, float) else "==")
    if isinstance(value, list):
        bound.value.list_value.extend(value)
    else:
        bound.value.number_value = value
    return req


@dataclass(frozen=True)
class Case:
    """An RPC, a request built against the target, and the field its refusal must name."""

    rpc: str
    build: Callable[[Target], Message]
    field: str


CASES: dict[str, Case] = {
    # ListReviews: forged page tokens, ages, enums.
    "cursor-naive-year-1": Case(
        "ListReviews",
        lambda t: R.ListReviewsRequest(page_token=_token("0001-01-01T00:00:00|r")),
        "page_token",
    ),
    "cursor-naive-now": Case(
        "ListReviews",
        lambda t: R.ListReviewsRequest(page_token=_token("2026-01-01T12:00:00|r")),
        "page_token",
    ),
    "cursor-year-1-east-of-utc": Case(
        "ListReviews",
        lambda t: R.ListReviewsRequest(page_token=_token("0001-01-01T00:00:00+05:00|r")),
        "page_token",
    ),
    "older-than-negative": Case(
        "ListReviews", lambda t: R.ListReviewsRequest(older_than={"seconds": -1}), "older_than"
    ),
    "older-than-negative-nanos": Case(
        "ListReviews", lambda t: R.ListReviewsRequest(older_than={"nanos": -1}), "older_than"
    ),
    "older-than-10^12-s": Case(
        "ListReviews", lambda t: R.ListReviewsRequest(older_than={"seconds": 10**12}), "older_than"
    ),
    "unknown-review-state": Case(
        "ListReviews", lambda t: R.ListReviewsRequest(states=[99]), "states"
    ),
    "unspecified-review-state": Case(
        "ListReviews", lambda t: R.ListReviewsRequest(states=[0]), "states"
    ),
    "unknown-review-order": Case("ListReviews", lambda t: R.ListReviewsRequest(order=-7), "order"),
    # Audit filters: timestamps outside years 1-9999, nanos outside 0-999999999.
    "query-since-year-0": Case(
        "QueryAudit", lambda t: A.QueryAuditRequest(filter={"since": _ts(YEAR_0)}), "filter.since"
    ),
    "query-until-year-10000": Case(
        "QueryAudit",
        lambda t: A.QueryAuditRequest(filter={"until": _ts(YEAR_10000)}),
        "filter.until",
    ),
    "query-since-negative-nanos": Case(
        "QueryAudit", lambda t: A.QueryAuditRequest(filter={"since": _ts(0, -1)}), "filter.since"
    ),
    "query-until-nanos-10^9": Case(
        "QueryAudit",
        lambda t: A.QueryAuditRequest(filter={"until": _ts(0, 10**9)}),
        "filter.until",
    ),
    "export-since-year-0": Case(
        "ExportAudit", lambda t: A.ExportAuditRequest(filter={"since": _ts(YEAR_0)}), "filter.since"
    ),
    "export-unknown-format": Case(
        "ExportAudit", lambda t: A.ExportAuditRequest(format=9), "format"
    ),
    # Insights: the window's bounds.
    "insights-since-year-0": Case(
        "GetInsights", lambda t: P.GetInsightsRequest(since=_ts(YEAR_0)), "since"
    ),
    "insights-until-year-10000": Case(
        "GetInsights",
        lambda t: P.GetInsightsRequest(since=_ts(0), until=_ts(YEAR_10000)),
        "until",
    ),
    "insights-since-negative-nanos": Case(
        "GetInsights", lambda t: P.GetInsightsRequest(since=_ts(0, -5)), "since"
    ),
    "insights-nan-share": Case(
        "GetInsights",
        lambda t: P.GetInsightsRequest(since=_ts(0), auto_allow_share=math.nan),
        "auto_allow_share",
    ),
    # Analysis: how long a call may wait for it.
    "analysis-negative-wait": Case(
        "GetAnalysis", lambda t: P.GetAnalysisRequest(wait_ms=-1), "wait_ms"
    ),
    "analysis-wait-past-30s": Case(
        "GetAnalysis", lambda t: P.GetAnalysisRequest(wait_ms=2**31 - 1), "wait_ms"
    ),
    # Grants: a bound no param can be compared with.
    "grant-bound-nan": Case("SubmitReview", lambda t: _grant(t, math.nan), "grant.bounds[0].value"),
    "grant-bound-inf": Case("SubmitReview", lambda t: _grant(t, math.inf), "grant.bounds[0].value"),
    "grant-bound-nan-in-a-list": Case(
        "SubmitReview", lambda t: _grant(t, [1.0, math.nan]), "grant.bounds[0].value"
    ),
    # Verdicts no version of the API defined.
    "unknown-verdict": Case(
        "SubmitReview",
        lambda t: R.SubmitReviewRequest(review_id=t.review_id, verdict=42, expected_version=1),
        "verdict",
    ),
    "unknown-batch-verdict": Case(
        "SubmitReviews",
        lambda t: R.SubmitReviewsRequest(
            reviews=[{"review_id": t.review_id, "expected_version": 1}], verdict=-1
        ),
        "verdict",
    ),
    # NUL characters: PostgreSQL cannot hold them in text (it was UNAVAILABLE there).
    "nul-in-review-id": Case(
        "GetReview", lambda t: R.GetReviewRequest(review_id="\0"), "review_id"
    ),
    "nul-in-group": Case(
        "ListGrants", lambda t: R.ListGrantsRequest(reviewer_group="a\0"), "reviewer_group"
    ),
    "nul-in-a-list": Case(
        "ListReviews",
        lambda t: R.ListReviewsRequest(reviewer_groups=["finance", "\0"]),
        "reviewer_groups[1]",
    ),
    "nul-in-principal": Case(
        "Evaluate",
        lambda t: C.ActionRequest(principal={"id": "bot\0"}, action={"name": "refund.issue"}),
        "principal.id",
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_odd_input_is_invalid_argument_naming_the_field(name: str, target: Target) -> None:
    case = CASES[name]
    rpc = RPC[case.rpc]
    request = case.build(target)
    caller = Caller(target.server)
    with watching_logs() as log:
        outcomes = caller.both(rpc, request.SerializeToString())
        document = to_json(request)
        if document is not None:
            json_outcome = caller.json(rpc, document)
            # JSON parsing may refuse it first, naming the request as a whole.
            assert json_outcome.code == "INVALID_ARGUMENT", json_outcome
        caller.close()
    for o in outcomes:
        assert (o.code, o.message.split(":")[0]) == ("INVALID_ARGUMENT", case.field), o
    assert not log.records, log.report()


def _field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


# Bytes that no generated client sends, but the wire carries.
INVALID_UTF8 = b"\x0a\x02\xc3\x28"  # field 1 (a string) holding an invalid UTF-8 sequence


@pytest.mark.parametrize(
    ("rpc", "data"),
    [
        ("GetReview", INVALID_UTF8),
        ("ListPrecedents", INVALID_UTF8),
        ("RevokeGrant", INVALID_UTF8),
        ("WatchReview", INVALID_UTF8),
        # ActionRequest.action (1) .params (2): a Struct 200 levels deep.
        ("Evaluate", _field(1, _field(2, deep_struct_bytes(200)))),
        ("ListReviews", b"\x10\xff\xff\xff\xff\x0f"),  # states: a varint past int32
        ("GetReview", b"\x0a\xff\xff\xff\xff\x0f"),  # a length far past the end
    ],
    ids=[
        "utf8-get",
        "utf8-precedents",
        "utf8-revoke",
        "utf8-watch",
        "deep-struct",
        "varint",
        "length",
    ],
)
def test_undecodable_bytes_are_invalid_argument(rpc: str, data: bytes, target: Target) -> None:
    caller = Caller(target.server)
    with watching_logs() as log:
        outcomes = caller.both(RPC[rpc], data)
        caller.close()
    assert {o.code for o in outcomes} <= {"INVALID_ARGUMENT", "OK"}, outcomes
    assert not log.records, log.report()


@pytest.mark.parametrize(
    "token",
    ["0001-01-01T00:00:00|r", "0001-01-01T00:00:00+05:00|r", "9999-12-31T23:59:59-05:00|r"],
)
def test_forged_page_tokens_are_refused_on_every_backend(target: Target, token: str) -> None:
    caller = Caller(target.server)
    rpc: Rpc = RPC["ListReviews"]
    with watching_logs() as log:
        data = R.ListReviewsRequest(page_token=_token(token)).SerializeToString()
        outcomes = caller.both(rpc, data)
        caller.close()
    assert {(o.code, o.message.split(":")[0]) for o in outcomes} == {
        ("INVALID_ARGUMENT", "page_token")
    }, outcomes
    assert not log.records, log.report()


@pytest.mark.parametrize("year", ["0001", "9999"])
def test_page_tokens_at_the_ends_of_time_in_utc_are_served(target: Target, year: str) -> None:
    # Well-formed, though never issued: no INTERNAL from the store's time handling either.
    caller = Caller(target.server)
    data = R.ListReviewsRequest(page_token=_token(f"{year}-01-01T00:00:00+00:00|r"))
    with watching_logs() as log:
        outcomes = caller.both(RPC["ListReviews"], data.SerializeToString())
        caller.close()
    assert {o.code for o in outcomes} == {"OK"}, outcomes
    assert not log.records, log.report()


def test_nul_inside_params_is_only_data(target: Target) -> None:
    # Struct strings are stored as escaped JSON, so both backends keep them as sent.
    req = C.ActionRequest(principal={"id": "bot"}, action={"name": "refund.issue"})
    req.action.params.update({"amount": 5, "currency": "EUR", "note": "a\0b"})
    req.resource.attributes.update({"tier": "\0"})
    caller = Caller(target.server)
    with watching_logs() as log:
        outcomes = caller.both(RPC["Evaluate"], req.SerializeToString())
        caller.close()
    assert {o.code for o in outcomes} == {"OK"}, outcomes
    assert not log.records, log.report()


def test_a_100k_character_glob_is_not_unavailable(target: Target) -> None:
    caller = Caller(target.server)
    data = R.ListReviewsRequest(action="a" * 100_000).SerializeToString()
    outcomes = caller.both(RPC["ListReviews"], data)
    caller.close()
    # SQLite refuses LIKE/GLOB patterns over 50,000 characters (UNAVAILABLE, which clients
    # retry); the glob cap (signoff.policy.globs) refuses it first.
    assert {o.code for o in outcomes} == {"INVALID_ARGUMENT"}, outcomes


@pytest.mark.parametrize("year", [1, 500, 999])
def test_a_window_from_before_year_1000_holds_todays_entries(target: Target, year: int) -> None:
    # SQLite compares times as text: "500-01-01..." sorted after "2026-...", so such a window
    # (or page token) silently held nothing.
    since = int((dt.datetime(year, 1, 1, tzinfo=dt.UTC) - EPOCH).total_seconds())
    request = A.QueryAuditRequest(filter={"since": _ts(since)}, page_size=5)
    stub = audit_pb2_grpc.AuditServiceStub(target.server.channel())
    page = stub.QueryAudit(request, metadata=MD)
    assert page.entries, f"a window from year {year} holds no entries"
    req = R.ListReviewsRequest(page_token=_token(f"{year:04d}-01-01T00:00:00+00:00|r"))
    reviews = review_pb2_grpc.ReviewServiceStub(target.server.channel())
    listed = reviews.ListReviews(req, metadata=MD)
    assert target.review_id in [r.review_id for r in listed.reviews]


def test_the_server_is_alive_and_its_chain_valid_after_the_odd_input(target: Target) -> None:
    assert_alive_and_valid(target)
