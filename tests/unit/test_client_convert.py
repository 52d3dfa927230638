"""The client's pure parts: Struct conversion, request building, error mapping, retry policy."""

from __future__ import annotations

import datetime as dt
import math

import grpc
import pytest
from google.protobuf import struct_pb2

from signoff_client import Decision, Outcome, Principal, Request, Resource, RuleDecision, errors
from signoff_client._gen import common_pb2
from signoff_client._request import as_request, to_proto
from signoff_client._retry import Attempts, RetryPolicy, backoff
from signoff_client._struct import from_struct, to_struct

# --- Struct conversion -------------------------------------------------------------------


def test_json_values_round_trip_through_struct():
    data = {
        "amount": 750,
        "rate": 0.5,
        "currency": "EUR",
        "ok": True,
        "note": None,
        "items": [{"sku": "a", "qty": 2}, [], {}],
        "nested": {"deeper": {"x": -1}},
    }
    struct = to_struct(data, "action.params")
    back = from_struct(struct)
    assert back == data  # 750 == 750.0: numbers come back as floats, equal in value
    assert isinstance(back["amount"], float)


def test_bool_stays_bool_not_number():
    value = to_struct({"flag": True}, "p").fields["flag"]
    assert value.WhichOneof("kind") == "bool_value"


def test_empty_containers_are_containers_not_null():
    fields = to_struct({"d": {}, "l": []}, "p").fields
    assert fields["d"].WhichOneof("kind") == "struct_value"
    assert fields["l"].WhichOneof("kind") == "list_value"


def test_tuples_are_lists():
    assert from_struct(to_struct({"t": (1, 2)}, "p")) == {"t": [1.0, 2.0]}


def test_none_is_an_empty_struct():
    assert to_struct(None, "context") == struct_pb2.Struct()


@pytest.mark.parametrize(
    ("data", "field", "says"),
    [
        ({"tags": {"a", "b"}}, "action.params.tags", "set is not a JSON value"),
        ({"blob": b"\x00"}, "action.params.blob", "bytes is not a JSON value"),
        ({"x": math.nan}, "action.params.x", "nan is not a JSON number"),
        ({"x": math.inf}, "action.params.x", "inf is not a JSON number"),
        ({"a": {"b": [1, {"c": -math.inf}]}}, "action.params.a.b[1].c", "inf"),
        ({"when": dt.datetime(2026, 1, 1)}, "action.params.when", "datetime is not"),
        ({"big": 2**60}, "action.params.big", "send it as a string"),
        ({1: "x"}, "action.params", "key 1 is not a string"),
        ({"a b": {1.5: 0}}, "action.params['a b']", "key 1.5 is not a string"),
    ],
)
def test_non_json_values_are_refused_naming_the_key_path(data, field, says):
    with pytest.raises(errors.InvalidArgument) as info:
        to_struct(data, "action.params")
    assert info.value.field == field
    assert says in str(info.value)
    assert str(info.value).startswith(f"{field}: ")


def test_refusal_is_a_value_error():
    with pytest.raises(ValueError, match=r"action\.params\.s: set"):
        to_struct({"s": set()}, "action.params")


def test_circular_reference_is_refused():
    loop: dict = {}
    loop["self"] = loop
    with pytest.raises(errors.InvalidArgument, match="circular") as info:
        to_struct({"x": loop}, "context")
    assert info.value.field == "context.x.self"


def test_same_object_twice_is_not_circular():
    shared = {"a": 1}
    assert from_struct(to_struct({"x": shared, "y": [shared]}, "p")) == {
        "x": {"a": 1.0},
        "y": [{"a": 1.0}],
    }


def test_params_must_be_a_mapping():
    with pytest.raises(errors.InvalidArgument, match="expected a mapping") as info:
        to_struct([1, 2], "action.params")  # type: ignore[arg-type]
    assert info.value.field == "action.params"


# --- Request building --------------------------------------------------------------------


def test_request_id_is_generated_when_absent_and_kept_when_given():
    generated = to_proto(Request("refund.issue"))
    assert len(generated.request_id) == 36
    assert to_proto(Request("refund.issue")).request_id != generated.request_id
    assert to_proto(Request("refund.issue", request_id="r-1")).request_id == "r-1"


def test_explain_requests_carry_no_generated_id():
    assert to_proto(Request("refund.issue"), with_id=False).request_id == ""


def test_principal_as_string_mapping_dataclass_or_proto():
    expected = common_pb2.Principal(id="bot", kind="agent", tags=["vip"])
    for given in (
        Principal("bot", kind="agent", tags=["vip"]),
        {"id": "bot", "kind": "agent", "tags": ("vip",)},
        expected,
    ):
        assert to_proto(Request("a", principal=given)).principal == expected
    assert to_proto(Request("a", principal="bot")).principal == common_pb2.Principal(id="bot")


def test_full_request_fields():
    msg = to_proto(
        Request(
            "refund.issue",
            {"amount": 12.5},
            principal=Principal("bot", on_behalf_of="u1", attributes={"team": "eu"}),
            resource=Resource("account", "acct_42", {"tier": "vip"}),
            context={"ticket": "T-1"},
            justification="customer asked",
            request_id="r-9",
        )
    )
    assert msg.action.name == "refund.issue"
    assert msg.action.params["amount"] == 12.5
    assert msg.principal.on_behalf_of == "u1"
    assert msg.principal.attributes["team"] == "eu"
    assert msg.resource.id == "acct_42"
    assert msg.resource.attributes["tier"] == "vip"
    assert msg.context["ticket"] == "T-1"
    assert msg.justification == "customer asked"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (Request("a", principal={"id": "x", "role": ["admin"]}), "principal"),
        (Request("a", principal={"id": "x", "roles": "admin"}), "principal.roles"),
        (Request("a", principal=Principal("x", tags=["ok", 3])), "principal.tags[1]"),
        (Request("a", principal=42), "principal"),
        (Request("a", resource={"kind": "db", "attributes": {"k": {1}}}), "resource.attributes.k"),
        (Request("a", resource="acct_42"), "resource"),
        (Request("a", context={"n": math.nan}), "context.n"),
        (Request(7), "action.name"),  # type: ignore[arg-type]
        (Request("a", justification=None), "justification"),  # type: ignore[arg-type]
    ],
)
def test_bad_request_fields_are_refused_naming_the_field(request_, field):
    with pytest.raises(errors.InvalidArgument) as info:
        to_proto(request_)
    assert info.value.field == field


def test_batch_paths_are_indexed():
    with pytest.raises(errors.InvalidArgument) as info:
        to_proto(as_request({"action": "a", "params": {"x": b""}}, "requests[3]"), "requests[3]")
    assert info.value.field == "requests[3].action.params.x"
    with pytest.raises(errors.InvalidArgument, match="unknown key 'param'"):
        as_request({"action": "a", "param": {}}, "requests[0]")
    with pytest.raises(errors.InvalidArgument) as info:
        as_request({"params": {}}, "requests[1]")
    assert info.value.field == "requests[1].action"


# --- Results -----------------------------------------------------------------------------


def _decision(outcome: int) -> common_pb2.Decision:
    raw = common_pb2.Decision(
        decision_id="d1",
        request_id="r1",
        outcome=outcome,
        reason="why",
        policy_version="sha256:ab",
        matched_rules=[
            common_pb2.MatchedRule(
                file="refunds.yaml", rule="large", decision=common_pb2.RULE_DECISION_REVIEW
            )
        ],
    )
    raw.evaluated_at.FromDatetime(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
    return raw


@pytest.mark.parametrize(
    ("wire", "outcome", "allowed", "needs_review", "denied"),
    [
        (common_pb2.OUTCOME_AUTO_ALLOW, Outcome.AUTO_ALLOW, True, False, False),
        (common_pb2.OUTCOME_REQUIRE_REVIEW, Outcome.REQUIRE_REVIEW, False, True, False),
        (common_pb2.OUTCOME_DENY, Outcome.DENY, False, False, True),
    ],
)
def test_decision_from_proto(wire, outcome, allowed, needs_review, denied):
    d = Decision.from_proto(_decision(wire))
    assert d.outcome is outcome
    assert (d.allowed, d.needs_review, d.denied) == (allowed, needs_review, denied)
    assert d.evaluated_at == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert d.matched_rules[0].decision is RuleDecision.REVIEW
    assert d.matched_rules[0].file == "refunds.yaml"
    assert d.raw.decision_id == "d1"


@pytest.mark.parametrize("wire", [common_pb2.OUTCOME_UNSPECIFIED, 99])
def test_unknown_outcome_fails_closed(wire):
    with pytest.raises(errors.SignoffError, match="unknown to this client"):
        Decision.from_proto(_decision(wire))


# --- Error mapping -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgument),
        (grpc.StatusCode.NOT_FOUND, errors.NotFound),
        (grpc.StatusCode.ALREADY_EXISTS, errors.AlreadyExists),
        (grpc.StatusCode.PERMISSION_DENIED, errors.PermissionDenied),
        (grpc.StatusCode.UNAUTHENTICATED, errors.Unauthenticated),
        (grpc.StatusCode.FAILED_PRECONDITION, errors.FailedPrecondition),
        (grpc.StatusCode.UNAVAILABLE, errors.Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceeded),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.ResourceExhausted),
    ],
)
def test_status_codes_map_to_one_exception_each(code, cls):
    err = errors.from_status(code, "it failed")
    assert type(err) is cls
    assert err.code is code
    assert err.message == "it failed"


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNIMPLEMENTED]
)
def test_other_codes_are_plain_signoff_errors_with_the_code(code):
    err = errors.from_status(code, "")
    assert type(err) is errors.SignoffError
    assert err.code is code
    assert err.message == code.name  # never an empty message


@pytest.mark.parametrize(
    ("details", "field"),
    [
        ("action.name: must not be empty", "action.name"),
        (
            "requests[2].action.params: 312 KiB exceeds the 256 KiB limit",
            "requests[2].action.params",
        ),
        ("request_id: at most 200 characters", "request_id"),
        ("the request is malformed", ""),
        ("action name: has a space", ""),
    ],
)
def test_invalid_argument_field_is_parsed_from_the_message(details, field):
    err = errors.from_status(grpc.StatusCode.INVALID_ARGUMENT, details)
    assert isinstance(err, errors.InvalidArgument)
    assert err.field == field
    assert str(err) == details


class _FakeRpcError(grpc.RpcError):
    """What grpc.aio raises: an RpcError with code() and details() but not a grpc.Call."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.NOT_FOUND

    def details(self) -> str:
        return "review r1 not found"


def test_from_rpc_error_reads_aio_style_errors():
    err = errors.from_rpc_error(_FakeRpcError())
    assert isinstance(err, errors.NotFound)
    assert err.message == "review r1 not found"


def test_from_rpc_error_without_status_is_unknown():
    err = errors.from_rpc_error(grpc.RpcError("odd"))
    assert err.code is grpc.StatusCode.UNKNOWN


# --- Retry policy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry", "low", "high"),
    [(0, 0.05, 0.1), (1, 0.1, 0.2), (2, 0.2, 0.4), (3, 0.4, 0.8), (5, 1.0, 2.0), (30, 1.0, 2.0)],
)
def test_backoff_is_exponential_capped_and_jittered_within_half(retry, low, high):
    policy = RetryPolicy(retries=3, base=0.1, cap=2.0)
    assert backoff(policy, retry, 0.0) == pytest.approx(low)
    assert backoff(policy, retry, 1.0) == pytest.approx(high)
    assert low <= backoff(policy, retry, 0.37) <= high


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _attempts(timeout: float, retries: int = 3) -> tuple[Attempts, _Clock]:
    clock = _Clock()
    return Attempts(RetryPolicy(retries=retries), timeout, clock=clock, rand=lambda: 1.0), clock


def test_unavailable_is_retried_up_to_the_retry_count():
    attempts, clock = _attempts(timeout=10.0, retries=3)
    delays = []
    while True:
        assert attempts.start() == pytest.approx(10.0 - (clock.now - 100.0))
        delay = attempts.retry_after(grpc.StatusCode.UNAVAILABLE)
        if delay is None:
            break
        delays.append(delay)
        clock.now += delay
    assert delays == pytest.approx([0.1, 0.2, 0.4])
    assert attempts.made == 4


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.CANCELLED,
    ],
)
def test_other_codes_are_never_retried(code):
    attempts, _ = _attempts(timeout=10.0)
    attempts.start()
    assert attempts.retry_after(code) is None


def test_deadline_exceeded_is_retried_only_while_time_remains():
    attempts, clock = _attempts(timeout=1.0)
    attempts.start()
    clock.now += 0.3  # the server gave up early: time is left
    assert attempts.retry_after(grpc.StatusCode.DEADLINE_EXCEEDED) == pytest.approx(0.1)
    clock.now += 0.1
    assert attempts.start() == pytest.approx(0.6)
    clock.now += 0.6  # this attempt used the whole deadline
    assert attempts.retry_after(grpc.StatusCode.DEADLINE_EXCEEDED) is None


def test_no_retry_when_the_wait_would_pass_the_deadline():
    attempts, clock = _attempts(timeout=1.0)
    attempts.start()
    clock.now += 0.95  # 0.05 s left, the wait would be 0.1 s
    assert attempts.retry_after(grpc.StatusCode.UNAVAILABLE) is None


def test_zero_retries_means_one_attempt():
    attempts, _ = _attempts(timeout=10.0, retries=0)
    attempts.start()
    assert attempts.retry_after(grpc.StatusCode.UNAVAILABLE) is None


def test_bad_policy_is_refused():
    with pytest.raises(ValueError, match="retries"):
        RetryPolicy(retries=-1)
