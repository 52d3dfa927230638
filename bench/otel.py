"""The cost of telemetry: Evaluate end to end with telemetry off, metrics on, and metrics plus
tracing to a local OTLP sink; and the per-decision hook alone, in process.

Four `signoff serve` processes (SQLite, example policies, gRPC only) run side by side, one
of them a second "off" as a control of the noise; the load alternates between them round
after round, in a rotating order, so drift of the machine hits all of them alike. The sink
is an OTLP/gRPC receiver in its own process that accepts and drops everything. On a 2-core
machine the figures to read are the ratios to "off", next to the control's.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import grpc
from common import median, write
from e2e import _request, load, start_server
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as msvc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as msvc_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tsvc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as tsvc_grpc

from signoff.core.decide import DefaultDecision, evaluate
from signoff.core.explanation import decision_message
from signoff.ids import SystemClock
from signoff.policy import load_bundle
from signoff.telemetry.recorder import Telemetry, TelemetrySettings
from signoff_client._gen import decision_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
CONCURRENCY = (1, 8)
DURATION = float(os.environ.get("BENCH_DURATION", "2"))  # seconds per round and config
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
HOOK_CALLS = 10_000


class _Sink(tsvc_grpc.TraceServiceServicer, msvc_grpc.MetricsServiceServicer):
    async def Export(self, request, context):  # both services: one method name
        if isinstance(request, tsvc.ExportTraceServiceRequest):
            return tsvc.ExportTraceServiceResponse()
        return msvc.ExportMetricsServiceResponse()


def _configs(sink: str) -> dict[str, dict[str, str]]:
    return {
        "off": {"SIGNOFF_TELEMETRY__METRICS": "false"},
        # The same as "off" in another process: how far apart two identical servers measure.
        "off (control)": {"SIGNOFF_TELEMETRY__METRICS": "false"},
        # No HTTP port in the benchmark, so metrics need the OTLP reader to be recorded at all.
        "metrics": {"SIGNOFF_TELEMETRY__OTLP_ENDPOINT": sink, "SIGNOFF_TELEMETRY__TRACES": "false"},
        "metrics+tracing": {"SIGNOFF_TELEMETRY__OTLP_ENDPOINT": sink},
    }


def hook_cost(sink: str) -> dict[str, dict[str, float]]:
    """Per decision, in process: the hook's own time (`Telemetry.decided`), and the CPU time
    of the whole process per decision, the exporter's threads included (spans to `sink`)."""
    bundle = load_bundle(REPO / "policies")
    req = _request(0)
    ev = evaluate(bundle, req, SystemClock().now(), DefaultDecision("review", "default"))
    d = decision_message(ev, bundle.version, SystemClock().now(), decision_id="d", request_id="")
    settings = {
        "off": TelemetrySettings(metrics=False),
        "metrics": TelemetrySettings(traces=False, otlp_endpoint=sink, export_interval=3600),
        "metrics+tracing": TelemetrySettings(otlp_endpoint=sink, export_interval=3600),
    }
    out = {}
    for name, s in settings.items():
        t = Telemetry(s)
        t.policy_loaded(bundle)
        hook, cpu = [], []
        for _ in range(5):
            cpu0, began = time.process_time(), time.perf_counter()
            for i in range(HOOK_CALLS):
                t.decided("refund.issue", d, ev, began, 1e-4)
                if i % 500 == 499:  # a pause, as between requests: the exporter keeps up
                    hook.append((time.perf_counter() - began) / 500 * 1e6)
                    time.sleep(0.02)
                    began = time.perf_counter()
            t.force_flush()
            cpu.append((time.process_time() - cpu0) / HOOK_CALLS * 1e6)
        out[name] = {"hook_us": round(median(hook), 2), "cpu_us": round(median(cpu), 2)}
        asyncio.run(t.close())
    return out


async def _start_sink() -> tuple[asyncio.subprocess.Process, str]:
    """The sink in its own process, so receiving spans costs the load generator nothing."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--sink", stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    port = int((await proc.stdout.readline()).decode())
    return proc, f"http://127.0.0.1:{port}"


async def _serve_sink() -> None:
    server = grpc.aio.server()
    sink = _Sink()
    tsvc_grpc.add_TraceServiceServicer_to_server(sink, server)
    msvc_grpc.add_MetricsServiceServicer_to_server(sink, server)
    print(server.add_insecure_port("127.0.0.1:0"), flush=True)
    await server.start()
    await server.wait_for_termination()


async def _with_sink(fn):
    proc, url = await _start_sink()
    try:
        return await asyncio.to_thread(fn, url)
    finally:
        proc.terminate()
        await proc.wait()


async def run() -> dict:
    """Start the sink and the servers, alternate the load, keep medians."""
    sink_proc, sink_url = await _start_sink()
    try:
        return await _measure(sink_url)
    finally:
        sink_proc.terminate()
        await sink_proc.wait()


async def _measure(sink_url: str) -> dict:
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            targets: dict[str, str] = {}
            pids: dict[str, list[int]] = {}
            for name, env in _configs(sink_url).items():
                saved = dict(os.environ)
                os.environ.update(env)
                try:
                    started = await start_server(Path(tmp) / f"{name}.db")
                    proc, targets[name], pids[name] = started.proc, started.target, started.pids
                finally:
                    os.environ.clear()
                    os.environ.update(saved)
                procs.append(proc)
            channels = {n: grpc.aio.insecure_channel(t) for n, t in targets.items()}
            reqs = [_request(i) for i in range(3)]
            calls = {}
            for n, ch in channels.items():
                stub = decision_pb2_grpc.DecisionServiceStub(ch)
                calls[n] = lambda i, e=stub.Evaluate: e(reqs[i % 3])
            for n, c in calls.items():  # warm-up
                await load(c, 8, 0.5, pids[n])
            rows = []
            for conc in CONCURRENCY:
                samples: dict[str, list[dict[str, float]]] = {k: [] for k in calls}
                names = list(calls)
                for r in range(ROUNDS):
                    # A different order each round: no config always runs first or last.
                    for name in names[r % len(names) :] + names[: r % len(names)]:
                        samples[name].append(await load(calls[name], conc, DURATION, pids[name]))
                row: dict = {"concurrency": conc}
                for name, runs in samples.items():
                    row[name] = {k: round(median([r[k] for r in runs]), 3) for k in runs[0]}
                off = row["off"]
                for name in calls:
                    row[name]["rps_vs_off"] = round(row[name]["rps"] / off["rps"], 3)
                    # The server's CPU per Evaluate, all its threads: the overhead itself.
                    extra = row[name]["cpu_us_total"] - off["cpu_us_total"]
                    row[name]["cpu_us_vs_off"] = round(extra, 1)
                rows.append(row)
                print(
                    f"c={conc:<3} "
                    + " | ".join(
                        f"{n} {row[n]['rps']:5.0f}/s p50 {row[n]['p50_ms']:5.2f} "
                        f"p99 {row[n]['p99_ms']:5.2f} ms x{row[n]['rps_vs_off']:.3f} "
                        f"cpu {row[n]['cpu_us_total']:5.0f} µs ({row[n]['cpu_us_vs_off']:+.0f})"
                        for n in calls
                    ),
                    flush=True,
                )
            for ch in channels.values():
                await ch.close()
        finally:
            for proc in procs:
                proc.terminate()
                await proc.wait()
    return {"rows": rows, "duration_s": DURATION, "rounds": ROUNDS}


def main() -> int:
    """Run the telemetry benchmark and write results/otel.json."""
    if sys.argv[1:] == ["--sink"]:
        asyncio.run(_serve_sink())
        return 0
    data = asyncio.run(run())
    data["per_decision"] = asyncio.run(_with_sink(hook_cost))
    print(f"per decision, in process: {data['per_decision']}")
    print(f"wrote {write('otel', data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
