from google.protobuf import struct_pb2 as _struct_pb2
from signoff_client._gen import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScreenRequest(_message.Message):
    __slots__ = ("requests", "varying")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    VARYING_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[_common_pb2.ActionRequest]
    varying: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, requests: _Optional[_Iterable[_Union[_common_pb2.ActionRequest, _Mapping]]] = ..., varying: _Optional[_Iterable[str]] = ...) -> None: ...

class Screening(_message.Message):
    __slots__ = ("denied", "reason", "rule")
    DENIED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    denied: bool
    reason: str
    rule: str
    def __init__(self, denied: _Optional[bool] = ..., reason: _Optional[str] = ..., rule: _Optional[str] = ...) -> None: ...

class ScreenResponse(_message.Message):
    __slots__ = ("policy_version", "results")
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    policy_version: str
    results: _containers.RepeatedCompositeFieldContainer[Screening]
    def __init__(self, policy_version: _Optional[str] = ..., results: _Optional[_Iterable[_Union[Screening, _Mapping]]] = ...) -> None: ...

class EvaluateBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[_common_pb2.ActionRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[_common_pb2.ActionRequest, _Mapping]]] = ...) -> None: ...

class EvaluateBatchResponse(_message.Message):
    __slots__ = ("decisions",)
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[_common_pb2.Decision]
    def __init__(self, decisions: _Optional[_Iterable[_Union[_common_pb2.Decision, _Mapping]]] = ...) -> None: ...

class RuleTrace(_message.Message):
    __slots__ = ("file", "policy", "rule", "line", "when", "decision", "matched", "error", "reason", "shadow", "effect")
    FILE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    WHEN_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    EFFECT_FIELD_NUMBER: _ClassVar[int]
    file: str
    policy: str
    rule: str
    line: int
    when: str
    decision: _common_pb2.RuleDecision
    matched: bool
    error: str
    reason: str
    shadow: bool
    effect: _common_pb2.RuleDecision
    def __init__(self, file: _Optional[str] = ..., policy: _Optional[str] = ..., rule: _Optional[str] = ..., line: _Optional[int] = ..., when: _Optional[str] = ..., decision: _Optional[_Union[_common_pb2.RuleDecision, str]] = ..., matched: _Optional[bool] = ..., error: _Optional[str] = ..., reason: _Optional[str] = ..., shadow: _Optional[bool] = ..., effect: _Optional[_Union[_common_pb2.RuleDecision, str]] = ...) -> None: ...

class VariableTrace(_message.Message):
    __slots__ = ("policy", "name", "value", "error")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    policy: str
    name: str
    value: _struct_pb2.Value
    error: str
    def __init__(self, policy: _Optional[str] = ..., name: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class Explanation(_message.Message):
    __slots__ = ("decision", "rules", "variables", "decided_by", "applicable_files")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    APPLICABLE_FILES_FIELD_NUMBER: _ClassVar[int]
    decision: _common_pb2.Decision
    rules: _containers.RepeatedCompositeFieldContainer[RuleTrace]
    variables: _containers.RepeatedCompositeFieldContainer[VariableTrace]
    decided_by: str
    applicable_files: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, decision: _Optional[_Union[_common_pb2.Decision, _Mapping]] = ..., rules: _Optional[_Iterable[_Union[RuleTrace, _Mapping]]] = ..., variables: _Optional[_Iterable[_Union[VariableTrace, _Mapping]]] = ..., decided_by: _Optional[str] = ..., applicable_files: _Optional[_Iterable[str]] = ...) -> None: ...
