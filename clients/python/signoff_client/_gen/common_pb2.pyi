import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_AUTO_ALLOW: _ClassVar[Outcome]
    OUTCOME_REQUIRE_REVIEW: _ClassVar[Outcome]
    OUTCOME_DENY: _ClassVar[Outcome]

class RuleDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RULE_DECISION_UNSPECIFIED: _ClassVar[RuleDecision]
    RULE_DECISION_ALLOW: _ClassVar[RuleDecision]
    RULE_DECISION_REVIEW: _ClassVar[RuleDecision]
    RULE_DECISION_DENY: _ClassVar[RuleDecision]
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_AUTO_ALLOW: Outcome
OUTCOME_REQUIRE_REVIEW: Outcome
OUTCOME_DENY: Outcome
RULE_DECISION_UNSPECIFIED: RuleDecision
RULE_DECISION_ALLOW: RuleDecision
RULE_DECISION_REVIEW: RuleDecision
RULE_DECISION_DENY: RuleDecision

class Action(_message.Message):
    __slots__ = ("name", "params")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    params: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Principal(_message.Message):
    __slots__ = ("id", "kind", "roles", "tags", "on_behalf_of", "attributes", "claimed")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    on_behalf_of: str
    attributes: _struct_pb2.Struct
    claimed: PrincipalClaims
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ..., on_behalf_of: _Optional[str] = ..., attributes: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., claimed: _Optional[_Union[PrincipalClaims, _Mapping]] = ...) -> None: ...

class PrincipalClaims(_message.Message):
    __slots__ = ("kind", "roles", "tags", "on_behalf_of", "attributes")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    kind: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    on_behalf_of: str
    attributes: _struct_pb2.Struct
    def __init__(self, kind: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ..., on_behalf_of: _Optional[str] = ..., attributes: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Resource(_message.Message):
    __slots__ = ("kind", "id", "attributes")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    kind: str
    id: str
    attributes: _struct_pb2.Struct
    def __init__(self, kind: _Optional[str] = ..., id: _Optional[str] = ..., attributes: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ActionRequest(_message.Message):
    __slots__ = ("request_id", "action", "principal", "resource", "context", "justification")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    action: Action
    principal: Principal
    resource: Resource
    context: _struct_pb2.Struct
    justification: str
    def __init__(self, request_id: _Optional[str] = ..., action: _Optional[_Union[Action, _Mapping]] = ..., principal: _Optional[_Union[Principal, _Mapping]] = ..., resource: _Optional[_Union[Resource, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., justification: _Optional[str] = ...) -> None: ...

class MatchedRule(_message.Message):
    __slots__ = ("file", "policy", "rule", "decision", "reason", "shadow", "error", "reviewer_group", "line")
    FILE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_GROUP_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    file: str
    policy: str
    rule: str
    decision: RuleDecision
    reason: str
    shadow: bool
    error: str
    reviewer_group: str
    line: int
    def __init__(self, file: _Optional[str] = ..., policy: _Optional[str] = ..., rule: _Optional[str] = ..., decision: _Optional[_Union[RuleDecision, str]] = ..., reason: _Optional[str] = ..., shadow: _Optional[bool] = ..., error: _Optional[str] = ..., reviewer_group: _Optional[str] = ..., line: _Optional[int] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("decision_id", "request_id", "outcome", "reason", "reviewer_group", "review_id", "matched_rules", "policy_version", "evaluated_at", "default_applied", "replayed", "receipt")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_GROUP_FIELD_NUMBER: _ClassVar[int]
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    MATCHED_RULES_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    EVALUATED_AT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_APPLIED_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    request_id: str
    outcome: Outcome
    reason: str
    reviewer_group: str
    review_id: str
    matched_rules: _containers.RepeatedCompositeFieldContainer[MatchedRule]
    policy_version: str
    evaluated_at: _timestamp_pb2.Timestamp
    default_applied: bool
    replayed: bool
    receipt: Receipt
    def __init__(self, decision_id: _Optional[str] = ..., request_id: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., reason: _Optional[str] = ..., reviewer_group: _Optional[str] = ..., review_id: _Optional[str] = ..., matched_rules: _Optional[_Iterable[_Union[MatchedRule, _Mapping]]] = ..., policy_version: _Optional[str] = ..., evaluated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., default_applied: _Optional[bool] = ..., replayed: _Optional[bool] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("payload", "signature", "key_id", "leaf_index", "tree_size", "path")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    signature: bytes
    key_id: str
    leaf_index: int
    tree_size: int
    path: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, payload: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ..., leaf_index: _Optional[int] = ..., tree_size: _Optional[int] = ..., path: _Optional[_Iterable[bytes]] = ...) -> None: ...
