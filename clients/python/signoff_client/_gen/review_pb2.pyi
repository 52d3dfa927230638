import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from signoff_client._gen import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReviewState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_STATE_UNSPECIFIED: _ClassVar[ReviewState]
    REVIEW_STATE_PENDING: _ClassVar[ReviewState]
    REVIEW_STATE_APPROVED: _ClassVar[ReviewState]
    REVIEW_STATE_MODIFIED: _ClassVar[ReviewState]
    REVIEW_STATE_REJECTED: _ClassVar[ReviewState]
    REVIEW_STATE_EXPIRED: _ClassVar[ReviewState]
    REVIEW_STATE_CANCELLED: _ClassVar[ReviewState]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_APPROVE: _ClassVar[Verdict]
    VERDICT_MODIFY: _ClassVar[Verdict]
    VERDICT_REJECT: _ClassVar[Verdict]

class ReviewOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_ORDER_UNSPECIFIED: _ClassVar[ReviewOrder]
    REVIEW_ORDER_OLDEST_FIRST: _ClassVar[ReviewOrder]
    REVIEW_ORDER_NEWEST_FIRST: _ClassVar[ReviewOrder]
REVIEW_STATE_UNSPECIFIED: ReviewState
REVIEW_STATE_PENDING: ReviewState
REVIEW_STATE_APPROVED: ReviewState
REVIEW_STATE_MODIFIED: ReviewState
REVIEW_STATE_REJECTED: ReviewState
REVIEW_STATE_EXPIRED: ReviewState
REVIEW_STATE_CANCELLED: ReviewState
VERDICT_UNSPECIFIED: Verdict
VERDICT_APPROVE: Verdict
VERDICT_MODIFY: Verdict
VERDICT_REJECT: Verdict
REVIEW_ORDER_UNSPECIFIED: ReviewOrder
REVIEW_ORDER_OLDEST_FIRST: ReviewOrder
REVIEW_ORDER_NEWEST_FIRST: ReviewOrder

class ReviewAct(_message.Message):
    __slots__ = ("reviewer", "verdict", "comment", "params", "at", "roles", "in_band", "channel")
    REVIEWER_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    IN_BAND_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    reviewer: str
    verdict: Verdict
    comment: str
    params: _struct_pb2.Struct
    at: _timestamp_pb2.Timestamp
    roles: _containers.RepeatedScalarFieldContainer[str]
    in_band: bool
    channel: str
    def __init__(self, reviewer: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., comment: _Optional[str] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., roles: _Optional[_Iterable[str]] = ..., in_band: _Optional[bool] = ..., channel: _Optional[str] = ...) -> None: ...

class Review(_message.Message):
    __slots__ = ("review_id", "decision_id", "request", "state", "reviewer_group", "reason", "matched_rules", "approvals_required", "acts", "created_at", "expires_at", "resolved_at", "final_params", "on_timeout", "version", "policy_version", "action_digest", "final_digest", "outcome", "escalated_from", "resolution_note", "redacted_paths", "timeout", "receipt", "grant_offer", "in_band")
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_GROUP_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MATCHED_RULES_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    ACTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_FIELD_NUMBER: _ClassVar[int]
    FINAL_PARAMS_FIELD_NUMBER: _ClassVar[int]
    ON_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTION_DIGEST_FIELD_NUMBER: _ClassVar[int]
    FINAL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_FROM_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_NOTE_FIELD_NUMBER: _ClassVar[int]
    REDACTED_PATHS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    GRANT_OFFER_FIELD_NUMBER: _ClassVar[int]
    IN_BAND_FIELD_NUMBER: _ClassVar[int]
    review_id: str
    decision_id: str
    request: _common_pb2.ActionRequest
    state: ReviewState
    reviewer_group: str
    reason: str
    matched_rules: _containers.RepeatedCompositeFieldContainer[_common_pb2.MatchedRule]
    approvals_required: int
    acts: _containers.RepeatedCompositeFieldContainer[ReviewAct]
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    resolved_at: _timestamp_pb2.Timestamp
    final_params: _struct_pb2.Struct
    on_timeout: str
    version: int
    policy_version: str
    action_digest: str
    final_digest: str
    outcome: _common_pb2.Outcome
    escalated_from: _containers.RepeatedScalarFieldContainer[str]
    resolution_note: str
    redacted_paths: _containers.RepeatedScalarFieldContainer[str]
    timeout: _duration_pb2.Duration
    receipt: _common_pb2.Receipt
    grant_offer: GrantOffer
    in_band: str
    def __init__(self, review_id: _Optional[str] = ..., decision_id: _Optional[str] = ..., request: _Optional[_Union[_common_pb2.ActionRequest, _Mapping]] = ..., state: _Optional[_Union[ReviewState, str]] = ..., reviewer_group: _Optional[str] = ..., reason: _Optional[str] = ..., matched_rules: _Optional[_Iterable[_Union[_common_pb2.MatchedRule, _Mapping]]] = ..., approvals_required: _Optional[int] = ..., acts: _Optional[_Iterable[_Union[ReviewAct, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., final_params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., on_timeout: _Optional[str] = ..., version: _Optional[int] = ..., policy_version: _Optional[str] = ..., action_digest: _Optional[str] = ..., final_digest: _Optional[str] = ..., outcome: _Optional[_Union[_common_pb2.Outcome, str]] = ..., escalated_from: _Optional[_Iterable[str]] = ..., resolution_note: _Optional[str] = ..., redacted_paths: _Optional[_Iterable[str]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., receipt: _Optional[_Union[_common_pb2.Receipt, _Mapping]] = ..., grant_offer: _Optional[_Union[GrantOffer, _Mapping]] = ..., in_band: _Optional[str] = ...) -> None: ...

class ListReviewsRequest(_message.Message):
    __slots__ = ("reviewer_groups", "states", "order", "page_size", "page_token", "action", "older_than")
    REVIEWER_GROUPS_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    OLDER_THAN_FIELD_NUMBER: _ClassVar[int]
    reviewer_groups: _containers.RepeatedScalarFieldContainer[str]
    states: _containers.RepeatedScalarFieldContainer[ReviewState]
    order: ReviewOrder
    page_size: int
    page_token: str
    action: str
    older_than: _duration_pb2.Duration
    def __init__(self, reviewer_groups: _Optional[_Iterable[str]] = ..., states: _Optional[_Iterable[_Union[ReviewState, str]]] = ..., order: _Optional[_Union[ReviewOrder, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., action: _Optional[str] = ..., older_than: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ListReviewsResponse(_message.Message):
    __slots__ = ("reviews", "next_page_token")
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    reviews: _containers.RepeatedCompositeFieldContainer[Review]
    next_page_token: str
    def __init__(self, reviews: _Optional[_Iterable[_Union[Review, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetReviewRequest(_message.Message):
    __slots__ = ("review_id",)
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    review_id: str
    def __init__(self, review_id: _Optional[str] = ...) -> None: ...

class WatchReviewRequest(_message.Message):
    __slots__ = ("review_id",)
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    review_id: str
    def __init__(self, review_id: _Optional[str] = ...) -> None: ...

class SubmitReviewRequest(_message.Message):
    __slots__ = ("review_id", "verdict", "params", "comment", "expected_version", "grant")
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    review_id: str
    verdict: Verdict
    params: _struct_pb2.Struct
    comment: str
    expected_version: int
    grant: GrantSpec
    def __init__(self, review_id: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., comment: _Optional[str] = ..., expected_version: _Optional[int] = ..., grant: _Optional[_Union[GrantSpec, _Mapping]] = ...) -> None: ...

class GrantBound(_message.Message):
    __slots__ = ("path", "op", "value")
    PATH_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    path: str
    op: str
    value: _struct_pb2.Value
    def __init__(self, path: _Optional[str] = ..., op: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class GrantOffer(_message.Message):
    __slots__ = ("allowed", "refusal", "max_ttl_seconds", "max_uses", "default_bounds")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_FIELD_NUMBER: _ClassVar[int]
    MAX_TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_USES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_BOUNDS_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    refusal: str
    max_ttl_seconds: int
    max_uses: int
    default_bounds: _containers.RepeatedCompositeFieldContainer[GrantBound]
    def __init__(self, allowed: _Optional[bool] = ..., refusal: _Optional[str] = ..., max_ttl_seconds: _Optional[int] = ..., max_uses: _Optional[int] = ..., default_bounds: _Optional[_Iterable[_Union[GrantBound, _Mapping]]] = ...) -> None: ...

class GrantSpec(_message.Message):
    __slots__ = ("ttl_seconds", "max_uses", "any_principal", "bounds")
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_USES_FIELD_NUMBER: _ClassVar[int]
    ANY_PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    BOUNDS_FIELD_NUMBER: _ClassVar[int]
    ttl_seconds: int
    max_uses: int
    any_principal: bool
    bounds: _containers.RepeatedCompositeFieldContainer[GrantBound]
    def __init__(self, ttl_seconds: _Optional[int] = ..., max_uses: _Optional[int] = ..., any_principal: _Optional[bool] = ..., bounds: _Optional[_Iterable[_Union[GrantBound, _Mapping]]] = ...) -> None: ...

class Grant(_message.Message):
    __slots__ = ("grant_id", "reviewer_group", "action_name", "policy", "rule", "principal_id", "bounds", "max_uses", "uses", "created_by", "review_id", "created_at", "expires_at", "revoked_at", "revoked_by", "description", "param_paths", "closed_world")
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_GROUP_FIELD_NUMBER: _ClassVar[int]
    ACTION_NAME_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_ID_FIELD_NUMBER: _ClassVar[int]
    BOUNDS_FIELD_NUMBER: _ClassVar[int]
    MAX_USES_FIELD_NUMBER: _ClassVar[int]
    USES_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_BY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAM_PATHS_FIELD_NUMBER: _ClassVar[int]
    CLOSED_WORLD_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    reviewer_group: str
    action_name: str
    policy: str
    rule: str
    principal_id: str
    bounds: _containers.RepeatedCompositeFieldContainer[GrantBound]
    max_uses: int
    uses: int
    created_by: str
    review_id: str
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    revoked_at: _timestamp_pb2.Timestamp
    revoked_by: str
    description: str
    param_paths: _containers.RepeatedScalarFieldContainer[str]
    closed_world: bool
    def __init__(self, grant_id: _Optional[str] = ..., reviewer_group: _Optional[str] = ..., action_name: _Optional[str] = ..., policy: _Optional[str] = ..., rule: _Optional[str] = ..., principal_id: _Optional[str] = ..., bounds: _Optional[_Iterable[_Union[GrantBound, _Mapping]]] = ..., max_uses: _Optional[int] = ..., uses: _Optional[int] = ..., created_by: _Optional[str] = ..., review_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_by: _Optional[str] = ..., description: _Optional[str] = ..., param_paths: _Optional[_Iterable[str]] = ..., closed_world: _Optional[bool] = ...) -> None: ...

class ListGrantsRequest(_message.Message):
    __slots__ = ("reviewer_group", "include_inactive")
    REVIEWER_GROUP_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_INACTIVE_FIELD_NUMBER: _ClassVar[int]
    reviewer_group: str
    include_inactive: bool
    def __init__(self, reviewer_group: _Optional[str] = ..., include_inactive: _Optional[bool] = ...) -> None: ...

class ListGrantsResponse(_message.Message):
    __slots__ = ("grants",)
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    grants: _containers.RepeatedCompositeFieldContainer[Grant]
    def __init__(self, grants: _Optional[_Iterable[_Union[Grant, _Mapping]]] = ...) -> None: ...

class RevokeGrantRequest(_message.Message):
    __slots__ = ("grant_id", "reason")
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    reason: str
    def __init__(self, grant_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReviewRef(_message.Message):
    __slots__ = ("review_id", "expected_version")
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    review_id: str
    expected_version: int
    def __init__(self, review_id: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class SubmitReviewsRequest(_message.Message):
    __slots__ = ("reviews", "verdict", "comment")
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    reviews: _containers.RepeatedCompositeFieldContainer[ReviewRef]
    verdict: Verdict
    comment: str
    def __init__(self, reviews: _Optional[_Iterable[_Union[ReviewRef, _Mapping]]] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., comment: _Optional[str] = ...) -> None: ...

class ReviewResult(_message.Message):
    __slots__ = ("review_id", "review", "error_code", "error_message")
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    review_id: str
    review: Review
    error_code: str
    error_message: str
    def __init__(self, review_id: _Optional[str] = ..., review: _Optional[_Union[Review, _Mapping]] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class SubmitReviewsResponse(_message.Message):
    __slots__ = ("batch_id", "results", "succeeded")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    results: _containers.RepeatedCompositeFieldContainer[ReviewResult]
    succeeded: int
    def __init__(self, batch_id: _Optional[str] = ..., results: _Optional[_Iterable[_Union[ReviewResult, _Mapping]]] = ..., succeeded: _Optional[int] = ...) -> None: ...

class CancelReviewRequest(_message.Message):
    __slots__ = ("review_id", "reason")
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    review_id: str
    reason: str
    def __init__(self, review_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class WatchQueueRequest(_message.Message):
    __slots__ = ("reviewer_groups", "limit")
    REVIEWER_GROUPS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    reviewer_groups: _containers.RepeatedScalarFieldContainer[str]
    limit: int
    def __init__(self, reviewer_groups: _Optional[_Iterable[str]] = ..., limit: _Optional[int] = ...) -> None: ...

class QueueGroup(_message.Message):
    __slots__ = ("reviewer_group", "pending", "oldest_created_at", "next_expires_at")
    REVIEWER_GROUP_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    OLDEST_CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    reviewer_group: str
    pending: int
    oldest_created_at: _timestamp_pb2.Timestamp
    next_expires_at: _timestamp_pb2.Timestamp
    def __init__(self, reviewer_group: _Optional[str] = ..., pending: _Optional[int] = ..., oldest_created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Queue(_message.Message):
    __slots__ = ("reviews", "groups", "pending", "server_time")
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    reviews: _containers.RepeatedCompositeFieldContainer[Review]
    groups: _containers.RepeatedCompositeFieldContainer[QueueGroup]
    pending: int
    server_time: _timestamp_pb2.Timestamp
    def __init__(self, reviews: _Optional[_Iterable[_Union[Review, _Mapping]]] = ..., groups: _Optional[_Iterable[_Union[QueueGroup, _Mapping]]] = ..., pending: _Optional[int] = ..., server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListPrecedentsRequest(_message.Message):
    __slots__ = ("review_id", "limit")
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    review_id: str
    limit: int
    def __init__(self, review_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListPrecedentsResponse(_message.Message):
    __slots__ = ("precedents",)
    PRECEDENTS_FIELD_NUMBER: _ClassVar[int]
    precedents: _containers.RepeatedCompositeFieldContainer[Review]
    def __init__(self, precedents: _Optional[_Iterable[_Union[Review, _Mapping]]] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Caller(_message.Message):
    __slots__ = ("id", "roles", "reviewer_groups", "act_for_others")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_GROUPS_FIELD_NUMBER: _ClassVar[int]
    ACT_FOR_OTHERS_FIELD_NUMBER: _ClassVar[int]
    id: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    reviewer_groups: _containers.RepeatedScalarFieldContainer[str]
    act_for_others: bool
    def __init__(self, id: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., reviewer_groups: _Optional[_Iterable[str]] = ..., act_for_others: _Optional[bool] = ...) -> None: ...
