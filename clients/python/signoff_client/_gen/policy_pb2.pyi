import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from signoff_client._gen import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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
