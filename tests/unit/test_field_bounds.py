"""The field bound table: every request field of every RPC has a bound, and each bound class
refuses a value one byte over it, counted as stored (JSON escapes) as well as on the wire."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf.descriptor import Descriptor

from signoff import pb
from signoff.core.validate import Limits
from signoff.core.validate_fields import SETTING, TABLE, check_fields, reference, unbounded_fields
from signoff.errors import InvalidArgument

SIZES = Limits().sizes


def _request_types() -> list[Descriptor]:
    out = []
    for module in (pb.common, pb.decision, pb.review, pb.audit, pb.policy):
        for service in module.DESCRIPTOR.services_by_name.values():
            out.extend(m.input_type for m in service.methods)
    return out


def test_every_rpc_request_field_has_a_bound() -> None:
    types = _request_types()
    assert len(types) >= 19, "found fewer RPCs than the API has"
    missing = sorted({f for d in types for f in unbounded_fields(d)})
    assert missing == [], f"add these fields to validate_fields.TABLE: {missing}"


def test_every_bound_class_has_a_size_and_a_setting() -> None:
    classes = {c for b in TABLE.values() for c in (b.size, b.items) if c is not None}
    assert classes <= SIZES.keys()
    assert classes <= SETTING.keys()


def _req() -> pb.common.ActionRequest:
    r = pb.common.ActionRequest()
    r.action.name = "refund.issue"
    return r


def _set(path: str, value: object) -> pb.common.ActionRequest:
    r = _req()
    *parents, leaf = path.split(".")
    node: object = r
    for p in parents:
        node = getattr(node, p)
    if leaf == "attributes" or leaf in ("params", "context"):
        getattr(node, leaf).update({"k": value})
    elif leaf in ("roles", "tags"):
        getattr(node, leaf).extend(value if isinstance(value, list) else [value])
    else:
        setattr(node, leaf, value)
    return r


def _struct_overhead(limit: int) -> int:
    r = _set("context", "x" * limit)
    return r.context.ByteSize() - limit


# (field, bound class) of ActionRequest: one value just under, one just over the bound.
CASES = [
    ("request_id", "name"),
    ("justification", "text"),
    ("principal.id", "name"),
    ("principal.kind", "name"),
    ("principal.on_behalf_of", "name"),
    ("principal.claimed.on_behalf_of", "name"),
    ("resource.id", "name"),
    ("resource.kind", "name"),
    ("principal.attributes", "attributes"),
    ("principal.claimed.attributes", "attributes"),
    ("resource.attributes", "attributes"),
    ("action.params", "params"),
    ("context", "context"),
]


@pytest.mark.parametrize(("path", "cls"), CASES)
def test_a_field_over_its_bound_is_refused_by_name(path: str, cls: str) -> None:
    limit = SIZES[cls]
    struct = path.endswith(("attributes", "params", "context"))
    # A Struct {"k": "..."} costs a few bytes around the string (more in protobuf than JSON).
    fits = "x" * (limit - _struct_overhead(limit) if struct else limit)
    check_fields(_set(path, fits), SIZES)
    with pytest.raises(InvalidArgument) as err:
        check_fields(_set(path, fits + "x"), SIZES)
    assert err.value.field == path
    assert SETTING[cls] in str(err.value)


@pytest.mark.parametrize("path", ["principal.roles", "principal.tags", "principal.claimed.tags"])
def test_a_list_over_its_count_is_refused(path: str) -> None:
    n = SIZES["list"]
    check_fields(_set(path, [f"t{i}" for i in range(n)]), SIZES)
    with pytest.raises(InvalidArgument, match="entries exceeds the limit of 100") as err:
        check_fields(_set(path, [f"t{i}" for i in range(n + 1)]), SIZES)
    assert err.value.field == path


def test_one_oversized_list_entry_is_named_by_index() -> None:
    with pytest.raises(InvalidArgument) as err:
        check_fields(_set("principal.tags", ["ok", "x" * 300]), SIZES)
    assert err.value.field == "principal.tags[1]"


def test_control_characters_count_as_their_json_escapes() -> None:
    # 11,000 control characters are 11,000 bytes on the wire and 66,000 once escaped.
    poison = "\x01" * 11_000
    assert len(poison.encode()) < SIZES["attributes"]
    with pytest.raises(InvalidArgument, match="64 KiB limit") as err:
        check_fields(_set("resource.attributes", poison), SIZES)
    assert err.value.field == "resource.attributes"
    with pytest.raises(InvalidArgument, match=r"\d+ KiB encoded"):
        check_fields(_set("justification", "\x00" * 3000), SIZES)


def test_many_tiny_struct_entries_count_their_protobuf_size() -> None:
    # {"0000":{},...} takes 10 bytes an entry in JSON and 12 in protobuf: 60 KB and 72 KB.
    r = _req()
    r.resource.attributes.update({f"{i:04d}": {} for i in range(6000)})
    assert r.resource.attributes.ByteSize() > SIZES["attributes"]
    with pytest.raises(InvalidArgument) as err:
        check_fields(r, SIZES)
    assert err.value.field == "resource.attributes"


def test_batches_name_the_request_and_its_field() -> None:
    batch = pb.decision.EvaluateBatchRequest(requests=[_req(), _set("resource.id", "x" * 999)])
    with pytest.raises(InvalidArgument) as err:
        check_fields(batch, SIZES)
    assert err.value.field == "requests[1].resource.id"
    big = pb.decision.EvaluateBatchRequest(requests=[_req()] * 101)
    with pytest.raises(InvalidArgument, match="max_batch"):
        check_fields(big, SIZES)


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (pb.review.SubmitReviewRequest(comment="c" * 16385), "comment"),
        (pb.review.CancelReviewRequest(reason="r" * 16385), "reason"),
        (pb.review.ListReviewsRequest(page_token="t" * 1025), "page_token"),
        (pb.review.ListReviewsRequest(action="a" * 513), "action"),
        (pb.review.ListReviewsRequest(reviewer_groups=["g"] * 101), "reviewer_groups"),
        (pb.review.SubmitReviewsRequest(comment="c" * 16385), "comment"),
        (pb.review.RevokeGrantRequest(grant_id="g" * 257), "grant_id"),
        (pb.audit.QueryAuditRequest(page_token="t" * 1025), "page_token"),
        (
            pb.audit.QueryAuditRequest(filter=pb.audit.AuditFilter(principal="p" * 257)),
            "filter.principal",
        ),
    ],
)
def test_other_rpcs_fields_are_bounded(message: object, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_fields(message, SIZES)  # type: ignore[arg-type]
    assert err.value.field == field


def test_the_settings_refuse_a_page_larger_than_a_message() -> None:
    from pydantic import ValidationError

    from signoff.settings.model import Settings

    with pytest.raises(ValidationError, match="max_page_bytes"):
        Settings(max_message_bytes=1 << 20, limits={"fields": {"max_page_bytes": 1 << 20}})
    with pytest.raises(ValidationError, match="must fit in one page"):
        Settings(limits={"fields": {"max_audit_entry_bytes": 3 << 20}})


def test_the_budgets_follow_the_message_size_unless_set() -> None:
    from signoff.settings.model import Settings

    assert Settings().limits.fields.budgets(4 << 20) == (2 << 20, 1 << 20)
    small = Settings(max_message_bytes=64 * 1024)
    assert small.limits.fields.budgets(small.max_message_bytes) == (32 * 1024, 16 * 1024)


def test_the_documented_table_is_fresh() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "request-limits.md"
    assert doc.read_text() == reference(SIZES), (
        "docs/request-limits.md is stale: python -c "
        "'from signoff.core.validate_fields import write_reference; write_reference()'"
    )
