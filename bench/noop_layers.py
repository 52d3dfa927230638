"""Where the no-op Evaluate's cost over the health Check goes, layer by layer, in one run.

One gRPC server in this process serves the same no-op Evaluate (api/bench.py's handler: the
real ActionRequest in, a Decision of a real one's size out) through more and more of the
layers `serving/server.py` puts in front of every method, beside grpc.health.v1 Check:

- ``check``: the health Check (grpc_health's servicer, as the server registers it);
- ``raw``: a generic handler that decodes the request and calls the handler: gRPC's Python
  layer, the generic method handler, the decoding and the Decision, nothing of ours;
- ``bounds``: plus `api.bounds.bounded` (the field bounds check);
- ``guard_bare``: plus `Guard` (deadline, peer, authentication, errors) with no limits;
- ``guard``: the Guard as the server builds it (the concurrency limits of `LimitSettings()`'s
  defaults, a per-peer rate, telemetry's trace hook): what NoopEvaluate runs.

A client process (this script with ``--client``) calls each at BENCH_CONCURRENCY (1) for
DURATION seconds, the variants in turn, ROUNDS times; this process's CPU time
per call (server only: the client is another process) is measured around each run. The
differences between neighbours are the layers' costs. Shared 2-core machine: read the
medians' differences, not the absolute figures.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import grpc
from common import median, write
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from signoff import pb
from signoff.api import bench as bench_api
from signoff.api import grpc_transport
from signoff.api.bounds import bounded
from signoff.api.errors import Guard, parse
from signoff.api.methods import Method
from signoff.auth.dev import DevAuthenticator
from signoff.core.validate import Limits
from signoff.core.validate_fields import check_fields
from signoff.limits import Limiter, LimitSettings
from signoff.limits.peers import PeerGate
from signoff.telemetry.recorder import Telemetry

Message = Any
DURATION = float(os.environ.get("BENCH_DURATION", "2"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "1"))
CHANNELS = max(1, min(8, CONCURRENCY))
VARIANTS = ("check", "raw", "bounds", "guard_bare", "guard")


def _noop() -> Method:
    (method,) = bench_api.methods()
    return method


def _service(name: str, method: Method) -> Method:
    return Method(
        f"signoff.bench.layers.{name}", "Noop", method.request, method.response, method.unary
    )


def _guards() -> tuple[Guard, Guard]:
    """The Guard with no limits, and the Guard the server builds with its default limits."""

    async def denied(method: str, who: str, message: str, peer: str) -> None:
        return None

    # The defaults, but a per-peer rate the bench cannot reach (2000/s by default, and every
    # call comes from 127.0.0.1): the bucket's arithmetic still runs on every call.
    settings = LimitSettings.model_validate({"peers": {"rate": 1e6, "burst": 10**6}})
    bare = Guard(DevAuthenticator(), denied)
    full = Guard(
        DevAuthenticator(),
        denied,
        Limiter(settings),
        Telemetry().incoming,
        PeerGate(settings.peers),
    )
    return bare, full


def handlers() -> list[grpc.GenericRpcHandler]:
    """The variants, one service each."""
    noop = _noop()
    sizes = Limits().sizes
    inner = noop.unary
    assert inner is not None

    async def raw(data: bytes, context: Any) -> Message:
        return await inner(None, parse(pb.common.ActionRequest, data))

    out = [
        grpc.method_handlers_generic_handler(
            "signoff.bench.layers.raw",
            {"Noop": grpc.unary_unary_rpc_method_handler(
                raw, response_serializer=pb.common.Decision.SerializeToString
            )},
        )
    ]  # fmt: skip
    bounded_noop = bounded([_service("bounds", noop)], sizes)[0]

    async def bounds(data: bytes, context: Any) -> Message:
        assert bounded_noop.unary is not None
        return await bounded_noop.unary(None, data)

    out.append(
        grpc.method_handlers_generic_handler(
            "signoff.bench.layers.bounds",
            {"Noop": grpc.unary_unary_rpc_method_handler(
                bounds, response_serializer=pb.common.Decision.SerializeToString
            )},
        )
    )  # fmt: skip

    bare, full = _guards()
    for name, guard in (("guard_bare", bare), ("guard", full)):
        out += grpc_transport.handlers(bounded([_service(name, noop)], sizes), guard)
    return out


async def serve() -> tuple[grpc.aio.Server, int]:
    """The server with every variant and the health servicer, on a free port."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(handlers())
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


def _request(i: int) -> pb.common.ActionRequest:
    r = pb.common.ActionRequest(request_id=f"b-{i}")
    r.action.name = "refund.issue"
    r.action.params.update({"amount": (120, 750, 25_000)[i % 3], "currency": "EUR"})
    r.principal.id = "bench-bot"
    r.principal.kind = "agent"
    return r


async def client(port: int) -> None:
    """Read a variant name per line from stdin, run it, print the number of calls."""
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(CHANNELS)]
    hreq = health_pb2.HealthCheckRequest()
    req = _request(1).SerializeToString()
    calls: dict[str, Callable[[int], Any]] = {}
    checks = [health_pb2_grpc.HealthStub(ch).Check for ch in channels]
    calls["check"] = lambda i: checks[i % CHANNELS](hreq)
    for name in VARIANTS[1:]:
        stubs = [
            ch.unary_unary(f"/signoff.bench.layers.{name}/Noop", response_deserializer=None)
            for ch in channels
        ]
        calls[name] = lambda i, stubs=stubs: stubs[i % CHANNELS](req)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        call = calls[line]
        count = 0
        stop = time.perf_counter() + DURATION

        async def worker(w: int, call: Callable[[int], Any] = call, stop: float = stop) -> None:
            nonlocal count
            i = w
            while time.perf_counter() < stop:
                await call(i)
                count += 1
                i += CONCURRENCY

        await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
        print(count, flush=True)


async def run() -> dict[str, Any]:
    """Serve, drive the client through the variants ROUNDS times, return per-call CPU µs."""
    server, port = await serve()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", str(port),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None
    assert proc.stdout is not None
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    rate: dict[str, list[float]] = {v: [] for v in VARIANTS}
    try:
        for n in range(ROUNDS + 1):  # the first round warms up and is not kept
            for variant in VARIANTS:
                started, wall = time.process_time(), time.perf_counter()
                proc.stdin.write(f"{variant}\n".encode())
                await proc.stdin.drain()
                calls = int((await proc.stdout.readline()).decode())
                used = time.process_time() - started
                if n:
                    cpu[variant].append(used / calls * 1e6)
                    rate[variant].append(calls / (time.perf_counter() - wall))
        proc.stdin.write(b"\n")
        await proc.stdin.drain()
        await proc.wait()
    finally:
        await server.stop(None)
    rows = {
        v: {"cpu_us": round(median(cpu[v]), 1), "rps": round(median(rate[v]))} for v in VARIANTS
    }
    base = rows["check"]["cpu_us"]
    for v in VARIANTS:
        rows[v]["over_check_us"] = round(rows[v]["cpu_us"] - base, 1)
    return {"concurrency": CONCURRENCY, "rounds": ROUNDS, "duration_s": DURATION, "variants": rows}


class FakeContext:
    """What GrpcCall reads of a grpc.aio context, as a plain dev-mode call presents it."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("user-agent", "grpc-python-asyncio/1.85"), ("content-type", "application/grpc"))

    def time_remaining(self) -> None:
        return None

    def peer(self) -> str:
        return "ipv4:127.0.0.1:51234"

    def auth_context(self) -> dict[str, Any]:
        return {}


IN_PROCESS_CALLS = 20_000


async def in_process() -> dict[str, float]:
    """Each layer's own cost per call, in process (no transport): µs, medians of ROUNDS."""
    noop = _noop()
    assert noop.unary is not None
    handler = noop.unary
    sizes = Limits().sizes
    data = _request(1).SerializeToString()
    req = parse(pb.common.ActionRequest, data)
    answer = await handler(None, req)

    async def constant(who: Any, body: Any) -> Message:
        return answer

    const = Method("s", "M", pb.common.ActionRequest, pb.common.Decision, constant)

    bare, full = _guards()
    context = FakeContext()

    async def floor() -> Any:
        return None

    async def decode() -> Any:
        return parse(pb.common.ActionRequest, data)

    async def bounds() -> Any:
        return check_fields(req, sizes)

    async def handle() -> Any:
        return await handler(None, req)

    async def serialize() -> Any:
        return answer.SerializeToString()

    async def guard_bare() -> Any:
        return await bare.unary(const, grpc_transport.GrpcCall(context), data)

    async def guard_full() -> Any:
        return await full.unary(const, grpc_transport.GrpcCall(context), data)

    steps = {
        "floor": floor, "decode": decode, "bounds_check": bounds, "handler": handle,
        "serialize": serialize, "guard_bare": guard_bare, "guard_full": guard_full,
    }  # fmt: skip
    runs: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(ROUNDS * 3):
        for name, step in steps.items():
            started = time.perf_counter()
            for _ in range(IN_PROCESS_CALLS):
                await step()
            runs[name].append((time.perf_counter() - started) / IN_PROCESS_CALLS * 1e6)
    base = median(runs["floor"])
    return {k: round(median(v) - base, 2) for k, v in runs.items() if k != "floor"}


def main() -> int:
    """Measure; write results/noop_layers.json (or the name given as the argument)."""
    if len(sys.argv) > 2 and sys.argv[1] == "--client":
        asyncio.run(client(int(sys.argv[2])))
        return 0
    name = sys.argv[1] if len(sys.argv) > 1 else "noop_layers"
    layers = asyncio.run(in_process())
    print("in process, µs per call above an awaited no-op:")
    for k, v in layers.items():
        print(f"  {k:<14} {v:>7}")
    result = asyncio.run(run())
    result["in_process_us"] = layers
    result["load_average"] = os.getloadavg()[0]
    path = write(name, result)
    print(f"{'variant':<12} {'server CPU µs/call':>19} {'over Check':>11} {'calls/s':>8}")
    previous = None
    for v, row in result["variants"].items():
        step = "" if previous is None else f"  (+{row['cpu_us'] - previous:.1f} this layer)"
        print(f"{v:<12} {row['cpu_us']:>19} {row['over_check_us']:>11} {row['rps']:>8}{step}")
        previous = row["cpu_us"]
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
