"""Wiring: the one place that builds everything and runs the gRPC server."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from signoff import pb
from signoff.api import decision as decision_api
from signoff.api import policy as policy_api
from signoff.api.unimplemented import Unimplemented
from signoff.app import Signoff
from signoff.config import Settings
from signoff.decide import DefaultDecision
from signoff.ids import Clock, IdFactory, SystemClock, new_id
from signoff.logs import event
from signoff.store.sqlite import SqliteStore
from signoff.validate import Limits

log = logging.getLogger("signoff.server")

SERVICE_NAMES = (
    "signoff.v1.DecisionService",
    "signoff.v1.ReviewService",
    "signoff.v1.AuditService",
    "signoff.v1.PolicyService",
)


@dataclass
class Running:
    """A started server: its port, app and the means to stop it."""

    port: int
    app: Signoff
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    settings: Settings
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking requests, let in-flight ones finish, flush the audit writer."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.settings.shutdown_grace if grace is None else grace)
        await self.app.store.close()
        event(log, "server.stopped", port=self.port)

    async def wait(self) -> None:
        """Wait until the server has stopped."""
        await self.server.wait_for_termination()


def build_app(settings: Settings, clock: Clock | None = None, ids: IdFactory = new_id) -> Signoff:
    """Build the application and its store from settings."""
    clock = clock or SystemClock()
    store = SqliteStore(settings.sqlite_path, clock)
    limits = Limits(
        max_params_bytes=settings.max_params_bytes,
        max_context_bytes=settings.max_context_bytes,
        max_depth=settings.max_depth,
        max_batch=settings.max_batch,
    )
    default = DefaultDecision(
        decision=settings.default_decision, reviewer_group=settings.default_reviewer_group
    )
    return Signoff(
        policies=settings.policies,
        store=store,
        clock=clock,
        new_id=ids,
        limits=limits,
        default=default,
    )


async def start(settings: Settings, clock: Clock | None = None) -> Running:
    """Open the store, load the bundle, then listen; readiness only once both are ready."""
    app = build_app(settings, clock)
    await app.store.open()
    try:
        await app.start()
    except BaseException:
        await app.store.close()
        raise
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
    )
    server.add_generic_rpc_handlers(
        (decision_api.handler(app), policy_api.handler(app), Unimplemented())
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            *SERVICE_NAMES,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    port = server.add_insecure_port(settings.listen)
    if port == 0:
        await app.store.close()
        raise OSError(f"cannot listen on {settings.listen}")
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    event(
        log,
        "server.started",
        listen=f"{settings.listen_host}:{port}",
        policies=str(settings.policies),
        db=settings.db,
        version=app.bundle.version,
    )
    _ = pb  # the messages must be imported before reflection describes them
    return Running(port=port, app=app, server=server, health=health_servicer, settings=settings)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then drain gracefully."""
    running = await start(settings)
    loop = asyncio.get_running_loop()
    stopping: set[asyncio.Task[None]] = set()

    def on_signal(sig: signal.Signals) -> None:
        event(log, "server.stopping", signal=sig.name)
        stopping.add(loop.create_task(running.stop()))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    loop.add_signal_handler(signal.SIGHUP, lambda: stopping.add(loop.create_task(_reload(running))))
    await running.wait()
    for task in stopping:
        await task


async def _reload(running: Running) -> None:
    accepted, errs = await running.app.reload()
    event(log, "policy.reload", accepted=accepted, errors=len(errs), trigger="SIGHUP")
