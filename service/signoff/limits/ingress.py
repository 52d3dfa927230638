"""Limits that hold before anyone is authenticated: calls per peer address, request bodies
in flight on the HTTP port, slow connections, and how refusals are audited."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MIB = 1 << 20


class HttpLimits(BaseModel):
    """The HTTP (Connect) port: bodies in flight and the timeouts that close slow connections."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_bodies: int = Field(
        256,
        ge=0,
        description="Request bodies being read at once, whole port; one more is refused with "
        "RESOURCE_EXHAUSTED before it is read; 0: unlimited.",
    )
    max_body_bytes: int = Field(
        64 * MIB,
        ge=0,
        description="Bytes of request bodies held at once, whole port (announced "
        "Content-Length, else bytes read so far); 0: unlimited.",
    )
    max_bodies_per_peer: int = Field(
        32, ge=0, description="As max_bodies, for one peer address; 0: unlimited."
    )
    max_body_bytes_per_peer: int = Field(
        16 * MIB, ge=0, description="As max_body_bytes, for one peer address; 0: unlimited."
    )
    idle_timeout: float = Field(
        30.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds a connection may take to send a complete request line and headers, "
        "counted from connecting or from the previous response; then it is closed "
        "(slowloris, idle keep-alive). Also the gRPC port's max connection idle time.",
    )
    body_timeout: float = Field(
        30.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds a caller may take to send a request body once its headers are in; "
        "then the call is refused with DEADLINE_EXCEEDED and the connection closed.",
    )


class DenialAudit(BaseModel):
    """How refused calls (unauthenticated, permission denied) reach the audit log."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: float = Field(
        10.0,
        gt=0,
        allow_inf_nan=False,
        description="The first refused call of a kind (peer, identity, method, reason) is "
        "audited at once; repeats within this many seconds are summed up in one entry per "
        "kind (count, first and last time) at its end and at shutdown.",
    )
    max_keys: int = Field(
        1000,
        ge=1,
        description="Kinds of refusal kept per interval; refusals of further kinds are summed "
        "up in one entry (peer '*'), so memory and audit entries stay bounded.",
    )


class PeerLimits(BaseModel):
    """Calls per peer address, counted before any credential is looked at (both ports)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: float = Field(
        2000.0,
        ge=0,
        allow_inf_nan=False,
        description="Calls per second per peer IP address, before authentication, both ports "
        "together; refused with RESOURCE_EXHAUSTED and a retry delay; 0: unlimited. Behind a "
        "proxy every caller shares the proxy's address: raise it, or set 0.",
    )
    burst: int = Field(
        4000, ge=1, description="Calls one peer address may make at once after a quiet spell."
    )
    max_peers: int = Field(
        10000,
        ge=1,
        description="Peer addresses tracked at once; beyond it, those with full buckets are "
        "forgotten first, then the oldest.",
    )
