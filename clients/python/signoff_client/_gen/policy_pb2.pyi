import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from signoff_client._gen import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AnalysisState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANALYSIS_STATE_UNSPECIFIED: _ClassVar[AnalysisState]
    ANALYSIS_STATE_RUNNING: _ClassVar[AnalysisState]
    ANALYSIS_STATE_DONE: _ClassVar[AnalysisState]
    ANALYSIS_STATE_UNAVAILABLE: _ClassVar[AnalysisState]
    ANALYSIS_STATE_FAILED: _ClassVar[AnalysisState]
ANALYSIS_STATE_UNSPECIFIED: AnalysisState
ANALYSIS_STATE_RUNNING: AnalysisState
ANALYSIS_STATE_DONE: AnalysisState
ANALYSIS_STATE_UNAVAILABLE: AnalysisState
ANALYSIS_STATE_FAILED: AnalysisState

class GetBundleRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadBundleRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RuleInfo(_message.Message):
    __slots__ = ("name", "decision", "reviewers", "shadow", "when", "line")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REVIEWERS_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    WHEN_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    name: str
    decision: _common_pb2.RuleDecision
    reviewers: str
    shadow: bool
    when: str
    line: int
    def __init__(self, name: _Optional[str] = ..., decision: _Optional[_Union[_common_pb2.RuleDecision, str]] = ..., reviewers: _Optional[str] = ..., shadow: _Optional[bool] = ..., when: _Optional[str] = ..., line: _Optional[int] = ...) -> None: ...

class PolicyFileInfo(_message.Message):
    __slots__ = ("path", "name", "description", "actions", "rules")
    PATH_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    path: str
    name: str
    description: str
    actions: _containers.RepeatedScalarFieldContainer[str]
    rules: _containers.RepeatedCompositeFieldContainer[RuleInfo]
    def __init__(self, path: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., actions: _Optional[_Iterable[str]] = ..., rules: _Optional[_Iterable[_Union[RuleInfo, _Mapping]]] = ...) -> None: ...

class BundleInfo(_message.Message):
    __slots__ = ("version", "directory", "loaded_at", "files")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    version: str
    directory: str
    loaded_at: _timestamp_pb2.Timestamp
    files: _containers.RepeatedCompositeFieldContainer[PolicyFileInfo]
    def __init__(self, version: _Optional[str] = ..., directory: _Optional[str] = ..., loaded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., files: _Optional[_Iterable[_Union[PolicyFileInfo, _Mapping]]] = ...) -> None: ...

class PolicyError(_message.Message):
    __slots__ = ("file", "line", "column", "rule", "message")
    FILE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    file: str
    line: int
    column: int
    rule: str
    message: str
    def __init__(self, file: _Optional[str] = ..., line: _Optional[int] = ..., column: _Optional[int] = ..., rule: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ReloadBundleResponse(_message.Message):
    __slots__ = ("accepted", "bundle", "errors")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    bundle: BundleInfo
    errors: _containers.RepeatedCompositeFieldContainer[PolicyError]
    def __init__(self, accepted: _Optional[bool] = ..., bundle: _Optional[_Union[BundleInfo, _Mapping]] = ..., errors: _Optional[_Iterable[_Union[PolicyError, _Mapping]]] = ...) -> None: ...

class GetInsightsRequest(_message.Message):
    __slots__ = ("since", "until", "reviewer_group", "min_reviews", "auto_allow_share", "expired_share")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_GROUP_FIELD_NUMBER: _ClassVar[int]
    MIN_REVIEWS_FIELD_NUMBER: _ClassVar[int]
    AUTO_ALLOW_SHARE_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_SHARE_FIELD_NUMBER: _ClassVar[int]
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    reviewer_group: str
    min_reviews: int
    auto_allow_share: float
    expired_share: float
    def __init__(self, since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reviewer_group: _Optional[str] = ..., min_reviews: _Optional[int] = ..., auto_allow_share: _Optional[float] = ..., expired_share: _Optional[float] = ...) -> None: ...

class InsightFlag(_message.Message):
    __slots__ = ("kind", "reason")
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    kind: str
    reason: str
    def __init__(self, kind: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RuleInsight(_message.Message):
    __slots__ = ("policy", "rule", "file", "line", "reviews", "approved_unchanged", "edited", "rejected", "expired", "cancelled", "pending", "median_s", "p90_s", "reviewers", "disagreement", "compared", "flags")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    APPROVED_UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    EDITED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_S_FIELD_NUMBER: _ClassVar[int]
    P90_S_FIELD_NUMBER: _ClassVar[int]
    REVIEWERS_FIELD_NUMBER: _ClassVar[int]
    DISAGREEMENT_FIELD_NUMBER: _ClassVar[int]
    COMPARED_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    policy: str
    rule: str
    file: str
    line: int
    reviews: int
    approved_unchanged: int
    edited: int
    rejected: int
    expired: int
    cancelled: int
    pending: int
    median_s: float
    p90_s: float
    reviewers: int
    disagreement: float
    compared: int
    flags: _containers.RepeatedCompositeFieldContainer[InsightFlag]
    def __init__(self, policy: _Optional[str] = ..., rule: _Optional[str] = ..., file: _Optional[str] = ..., line: _Optional[int] = ..., reviews: _Optional[int] = ..., approved_unchanged: _Optional[int] = ..., edited: _Optional[int] = ..., rejected: _Optional[int] = ..., expired: _Optional[int] = ..., cancelled: _Optional[int] = ..., pending: _Optional[int] = ..., median_s: _Optional[float] = ..., p90_s: _Optional[float] = ..., reviewers: _Optional[int] = ..., disagreement: _Optional[float] = ..., compared: _Optional[int] = ..., flags: _Optional[_Iterable[_Union[InsightFlag, _Mapping]]] = ...) -> None: ...

class Insights(_message.Message):
    __slots__ = ("since", "until", "reviews", "rules", "truncated")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    reviews: int
    rules: _containers.RepeatedCompositeFieldContainer[RuleInsight]
    truncated: bool
    def __init__(self, since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reviews: _Optional[int] = ..., rules: _Optional[_Iterable[_Union[RuleInsight, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class GetAnalysisRequest(_message.Message):
    __slots__ = ("wait_ms",)
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    wait_ms: int
    def __init__(self, wait_ms: _Optional[int] = ...) -> None: ...

class AnalysisFinding(_message.Message):
    __slots__ = ("kind", "policy", "rule", "file", "line", "message", "example_json")
    KIND_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_JSON_FIELD_NUMBER: _ClassVar[int]
    kind: str
    policy: str
    rule: str
    file: str
    line: int
    message: str
    example_json: str
    def __init__(self, kind: _Optional[str] = ..., policy: _Optional[str] = ..., rule: _Optional[str] = ..., file: _Optional[str] = ..., line: _Optional[int] = ..., message: _Optional[str] = ..., example_json: _Optional[str] = ...) -> None: ...

class BundleAnalysis(_message.Message):
    __slots__ = ("bundle_version", "state", "detail", "rules", "findings", "total", "problems", "truncated", "seconds", "timeout_s")
    BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    bundle_version: str
    state: AnalysisState
    detail: str
    rules: int
    findings: _containers.RepeatedCompositeFieldContainer[AnalysisFinding]
    total: int
    problems: int
    truncated: bool
    seconds: float
    timeout_s: float
    def __init__(self, bundle_version: _Optional[str] = ..., state: _Optional[_Union[AnalysisState, str]] = ..., detail: _Optional[str] = ..., rules: _Optional[int] = ..., findings: _Optional[_Iterable[_Union[AnalysisFinding, _Mapping]]] = ..., total: _Optional[int] = ..., problems: _Optional[int] = ..., truncated: _Optional[bool] = ..., seconds: _Optional[float] = ..., timeout_s: _Optional[float] = ...) -> None: ...
