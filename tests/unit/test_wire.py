"""signoff.wire: request timestamps, ages, enums and floats, checked or refused by field."""

from __future__ import annotations

import datetime as dt

import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from signoff import pb
from signoff.core import wire
from signoff.errors import InvalidArgument

TS = timestamp_pb2.Timestamp
D = duration_pb2.Duration


@pytest.mark.parametrize(
    ("seconds", "nanos", "expected"),
    [
        (0, 0, dt.datetime(1970, 1, 1, tzinfo=dt.UTC)),
        (wire.MIN_SECONDS, 0, dt.datetime(1, 1, 1, tzinfo=dt.UTC)),
        (wire.MAX_SECONDS, 999_999_999, dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, dt.UTC)),
    ],
)
def test_timestamps_in_years_1_to_9999_are_aware_utc(seconds, nanos, expected) -> None:
    assert wire.timestamp(TS(seconds=seconds, nanos=nanos), "since") == expected


@pytest.mark.parametrize(
    ("seconds", "nanos", "says"),
    [
        (wire.MIN_SECONDS - 1, 0, "outside years 1-9999"),
        (wire.MAX_SECONDS + 1, 0, "outside years 1-9999"),
        (-(2**63), 0, "outside years 1-9999"),
        (0, -1, "nanos must be 0-999999999, not -1"),
        (0, 10**9, "nanos must be 0-999999999"),
    ],
)
def test_timestamps_outside_the_range_name_the_field(seconds, nanos, says) -> None:
    with pytest.raises(InvalidArgument, match=says) as err:
        wire.timestamp(TS(seconds=seconds, nanos=nanos), "filter.since")
    assert err.value.field == "filter.since"


def test_ages_from_zero_to_the_limit_are_timedeltas() -> None:
    assert wire.age(D(), "older_than") == dt.timedelta(0)
    assert wire.age(D(seconds=3600, nanos=5_000), "older_than") == dt.timedelta(
        hours=1, microseconds=5
    )
    most = int(wire.MAX_AGE.total_seconds())
    assert wire.age(D(seconds=most), "older_than") == wire.MAX_AGE


@pytest.mark.parametrize(
    ("seconds", "nanos", "says"),
    [
        (-1, 0, "must not be negative"),
        (0, -1, "must not be negative"),
        (int(wire.MAX_AGE.total_seconds()), 1, "longer than the limit"),
        (10**12, 0, "longer than the limit of 3155760000 s"),
        (2**63 - 1, 0, "longer than the limit"),
    ],
)
def test_negative_or_endless_ages_name_the_field(seconds, nanos, says) -> None:
    with pytest.raises(InvalidArgument, match=says) as err:
        wire.age(D(seconds=seconds, nanos=nanos), "older_than")
    assert err.value.field == "older_than"


def test_enums_take_their_own_numbers_only() -> None:
    state = pb.review.ReviewState
    assert wire.enum(state, state.Value("REVIEW_STATE_PENDING"), "states") == 1
    assert wire.enum(state, 0, "states") == 0
    for bad in (99, -1, 2**31 - 1):
        with pytest.raises(InvalidArgument, match=f"states: {bad} is not one of"):
            wire.enum(state, bad, "states")
    with pytest.raises(InvalidArgument, match="REVIEW_STATE_PENDING") as err:
        wire.enum(state, 0, "states", unspecified=False)
    assert "UNSPECIFIED" not in err.value.message


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (pb.review.GetReviewRequest(review_id="r\0"), "review_id"),
        (pb.review.ListReviewsRequest(reviewer_groups=["a", "b\0"]), "reviewer_groups[1]"),
        (pb.common.ActionRequest(principal={"id": "\0"}), "principal.id"),
        (
            pb.review.SubmitReviewRequest(grant={"bounds": [{"path": "x"}, {"op": "<=\0"}]}),
            "grant.bounds[1].op",
        ),
    ],
)
def test_nul_in_a_string_field_is_refused_naming_it(message, field) -> None:
    with pytest.raises(InvalidArgument, match="must not contain NUL") as err:
        wire.no_nul(message)
    assert err.value.field == field


def test_nul_inside_a_struct_is_data() -> None:
    req = pb.common.ActionRequest(principal={"id": "bot"})
    req.action.params.update({"note": "a\0b", "list": ["\0"], "k\0": 1})
    wire.no_nul(req)
