"""The generated protobuf messages, re-exported under short names.

The generated code lives in the client package (see scripts/gen_proto.py); the server and
its pure core use the messages as their data model, never the gRPC stubs.
"""

from signoff_client._gen import (
    audit_pb2 as audit,
)
from signoff_client._gen import (
    common_pb2 as common,
)
from signoff_client._gen import (
    decision_pb2 as decision,
)
from signoff_client._gen import (
    policy_pb2 as policy,
)
from signoff_client._gen import (
    review_pb2 as review,
)

__all__ = ["audit", "common", "decision", "policy", "review"]
