"""Calls of any RPC with any bytes, over gRPC and over Connect, reduced to a status code name;
and a watch on the server's log for stack traces.

The requests go as raw bytes (no client-side serialization), so a test can send what no
generated client would: invalid UTF-8 in a string field, unknown enum numbers, fields the
message does not have.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
import httpx
from google.protobuf import json_format
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from signoff import pb

from ..e2e.conftest import ServerHandle

# Codes a bad request must never get: INTERNAL/UNKNOWN are the server's own bugs, and
# UNAVAILABLE tells clients to retry what can never succeed.
BAD_CODES = frozenset({"INTERNAL", "UNKNOWN", "UNAVAILABLE", "DATA_LOSS"})
TOKEN = "fuzzer"  # dev mode: every role, so requests get past the role checks
# Bounds a call that hangs (a failure), not the machine's speed: DEADLINE_EXCEEDED is not a
# bad code, so a tight deadline would hide a slow answer, and httpx would raise on a slow one.
TIMEOUT = 60.0


@dataclass(frozen=True)
class Rpc:
    """One RPC: its path, request class and whether it streams its replies."""

    path: str
    request: type[Message]
    streaming: bool

    @property
    def name(self) -> str:
        """`Service/Method`, short enough for a test id."""
        return self.path.removeprefix("/signoff.v1.")


def every_rpc() -> list[Rpc]:
    """Every RPC of every service of the API, from the proto descriptors."""
    rpcs = []
    for module in (pb.decision, pb.review, pb.audit, pb.policy):
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                rpcs.append(_rpc(m))
    return sorted(rpcs, key=lambda r: r.path)


def _rpc(m: MethodDescriptor) -> Rpc:
    return Rpc(
        f"/{m.containing_service.full_name}/{m.name}",
        GetMessageClass(m.input_type),
        m.server_streaming,
    )


@dataclass
class Outcome:
    """What one call came to: a code name ("OK" included) and the message, for failures."""

    transport: str
    code: str
    message: str = ""


class Caller:
    """Sends raw request bytes to one server over gRPC and Connect."""

    def __init__(self, server: ServerHandle) -> None:
        assert server.http_url is not None
        self.server = server
        self.channel = server.channel()
        self.http = httpx.Client(base_url=server.http_url, timeout=TIMEOUT)
        self.meta = (("authorization", f"Bearer {TOKEN}"),)

    def close(self) -> None:
        """Close the channel and the HTTP client."""
        self.channel.close()
        self.http.close()

    def both(self, rpc: Rpc, data: bytes) -> list[Outcome]:
        """The call over gRPC and over Connect (binary)."""
        return [self.grpc(rpc, data), self.connect(rpc, data)]

    def grpc(self, rpc: Rpc, data: bytes) -> Outcome:
        """The call over gRPC; a stream is read up to its first message."""
        try:
            if rpc.streaming:
                call = self.channel.unary_stream(rpc.path)(
                    data, metadata=self.meta, timeout=TIMEOUT
                )
                try:
                    next(call, None)
                finally:
                    call.cancel()
            else:
                self.channel.unary_unary(rpc.path)(data, metadata=self.meta, timeout=TIMEOUT)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED:  # our own cancel after the first item
                return Outcome("grpc", "OK")
            return Outcome("grpc", exc.code().name, exc.details() or "")
        return Outcome("grpc", "OK")

    def connect(self, rpc: Rpc, data: bytes, codec: str = "proto") -> Outcome:
        """The call over Connect in `codec` ("proto" or "json"); a stream up to its first frame."""
        headers = {"Authorization": f"Bearer {TOKEN}", "Connect-Protocol-Version": "1"}
        if not rpc.streaming:
            headers["Content-Type"] = f"application/{codec}"
            reply = self.http.post(rpc.path, content=data, headers=headers)
            if reply.status_code == 200:
                return Outcome(f"connect+{codec}", "OK")
            return _connect_error(f"connect+{codec}", reply.content, reply.status_code)
        headers["Content-Type"] = f"application/connect+{codec}"
        body = bytes([0]) + len(data).to_bytes(4, "big") + data
        with self.http.stream("POST", rpc.path, content=body, headers=headers) as reply:
            if reply.status_code != 200:
                return _connect_error(f"connect+{codec}", reply.read(), reply.status_code)
            buf = b""
            for chunk in reply.iter_raw():
                buf += chunk
                if len(buf) >= 5 and len(buf) >= 5 + int.from_bytes(buf[1:5], "big"):
                    break
            if len(buf) < 5:
                return Outcome(f"connect+{codec}", "TRUNCATED", repr(buf))
            if buf[0] & 0x02:  # the end-stream frame first: an error, or an empty stream
                end = json.loads(buf[5 : 5 + int.from_bytes(buf[1:5], "big")])
                if "error" in end:
                    return _connect_error(f"connect+{codec}", json.dumps(end["error"]).encode(), 0)
            return Outcome(f"connect+{codec}", "OK")

    def json(self, rpc: Rpc, document: object) -> Outcome:
        """The call over Connect with a JSON body as given (not checked against the message)."""
        return self.connect(rpc, json.dumps(document).encode(), codec="json")


def _connect_error(transport: str, body: bytes, status: int) -> Outcome:
    try:
        err = json.loads(body)
        return Outcome(transport, str(err["code"]).upper(), str(err.get("message", "")))
    except (ValueError, KeyError, TypeError):
        return Outcome(transport, f"HTTP_{status}", body[:200].decode(errors="replace"))


def to_json(message: Message) -> dict | None:
    """The proto JSON form of `message`, as the console would send it; None when JSON cannot
    say it (a Timestamp outside years 1-9999, a NaN in a Value)."""
    try:
        return json_format.MessageToDict(message)
    except (ValueError, json_format.Error):
        return None


class LogWatch(logging.Handler):
    """Collects every log record at ERROR or above, or with a stack trace, from any logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        seen = any(r is record for r in self.records)  # it may reach us by two loggers
        if (record.exc_info or record.levelno >= logging.ERROR) and not seen:
            self.records.append(record)

    def report(self) -> str:
        """The collected records, formatted with their stack traces."""
        fmt = logging.Formatter("%(name)s %(levelname)s %(message)s")
        return "\n".join(fmt.format(r) for r in self.records)


@contextmanager
def watching_logs() -> Iterator[LogWatch]:
    """A LogWatch on the root logger, and on `signoff`'s (which `signoff.logs.configure` cuts
    off from the root when a CLI test ran in this process), for the duration."""
    watch = LogWatch()
    loggers = [logging.getLogger(), logging.getLogger("signoff")]
    for logger in loggers:
        logger.addHandler(watch)
    try:
        yield watch
    finally:
        for logger in loggers:
            logger.removeHandler(watch)
