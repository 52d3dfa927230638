"""Wiring: the one place that builds everything and runs the gRPC server."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from signoff.api import audit as audit_api
from signoff.api import bench as bench_api
from signoff.api import connect as connect_api
from signoff.api import decision as decision_api
from signoff.api import grpc_transport
from signoff.api import policy as policy_api
from signoff.api import review as review_api
from signoff.api.bounds import bounded
from signoff.api.errors import Guard
from signoff.api.methods import Method
from signoff.api.scope import scoped
from signoff.app.audit.desk import AuditDesk
from signoff.app.decisions import Signoff
from signoff.auth import (
    DevAuthenticator,
)
from signoff.ids import Clock
from signoff.limits import Limiter
from signoff.limits.peers import PeerGate
from signoff.logs import event
from signoff.notify import Notifier
from signoff.policy import Bundle
from signoff.serving import email_link, slack_wiring, tls
from signoff.serving.build import authenticator_for, build_app, signer_for
from signoff.serving.http import HttpServer
from signoff.serving.watch import PolicyWatcher
from signoff.settings.model import ConfigError, Settings
from signoff.telemetry.recorder import Telemetry

log = logging.getLogger("signoff.server")

# Used keys and the messages of settled reviews are swept this often (they are few; a key
# stays refused until it expires whether or not its row is gone).
NOTIFY_STATE_SWEEP_S = 60.0
# A settled review's messages are dropped this long after they were noted (usually at once,
# by the poster that updated them; this catches a process that died before it did).
NOTIFY_MESSAGES_KEPT = dt.timedelta(hours=1)

SERVICE_NAMES = (
    "signoff.v1.DecisionService",
    "signoff.v1.ReviewService",
    "signoff.v1.AuditService",
    "signoff.v1.PolicyService",
)


@dataclass
class Running:
    """A started server: its ports, app and the means to stop it."""

    port: int
    app: Signoff
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    settings: Settings
    notifier: Notifier
    audit: AuditDesk
    tasks: list[asyncio.Task[None]]
    watcher: PolicyWatcher | None = None
    http: HttpServer | None = None
    http_port: int | None = None  # the console and Connect port; None when http_listen is ""
    limiter: Limiter | None = None
    slack: slack_wiring.SlackPoster | None = (
        None  # the Slack app's messages; None when not configured
    )
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking requests, let in-flight ones finish, flush the audit writer."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        # Both readiness signals flip first, so balancers stop sending before anything ends.
        await self.health.enter_graceful_shutdown()
        if self.http is not None:
            self.http.stopping = True
        await cancel_and_wait(self.tasks)
        grace = self.settings.shutdown_grace if grace is None else grace
        # Watch streams (both ports) end at once with UNAVAILABLE; clients reconnect.
        self.app.reviews.hub.close()
        # Queued analyses are dropped, a running one is cut short (else the exit waits for it).
        await self.app.analyses.aclose()
        # The HTTP port ends its streams at once (a console's live queue never ends by
        # itself) and gives other calls the configured grace.
        stops = [self.server.stop(grace)]
        if self.http is not None:
            stops.append(self.http.stop())
        await asyncio.gather(*stops)
        # The refusals counted since the last summary are written before the store closes.
        with contextlib.suppress(Exception):
            await self.app.denials.flush()
        # A database that hangs (a lock held elsewhere, a server gone) must not keep the
        # process from exiting: every call has ended by now, so whatever is still unwritten
        # was never acknowledged to anyone.
        deadline = asyncio.get_running_loop().time() + STORE_CLOSE_TIMEOUT
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                # A last checkpoint covers the tail written since the previous one.
                with contextlib.suppress(Exception):
                    await self.audit.checkpoint_if_due(1, dt.timedelta(0))
        # Pending webhook deliveries get the same grace; the audit log is the durable record.
        await self.notifier.close(timeout=grace)
        if self.slack is not None:
            await self.slack.close(timeout=grace)
        try:
            async with asyncio.timeout_at(max(deadline, asyncio.get_running_loop().time() + 1)):
                await self.app.store.close()
        except TimeoutError:
            event(
                log,
                "server.store_not_closed",
                logging.ERROR,
                waited=STORE_CLOSE_TIMEOUT,
                error="the database did not finish within the wait; unacknowledged writes "
                "are dropped",
            )
        await self.app.telemetry.close()  # bounded: a dead collector cannot hold the stop
        event(log, "server.stopped", port=self.port)

    async def wait(self) -> None:
        """Wait until the server has stopped."""
        await self.server.wait_for_termination()


# How long `Running.stop` waits for its background tasks, cancelling them again and again,
# before it names the ones still running and stops without them.
TASK_STOP_TIMEOUT = 10.0
# How long `Running.stop` waits for the last checkpoint and the store's final flush.
STORE_CLOSE_TIMEOUT = 10.0
_RECANCEL_EVERY = 0.5


async def cancel_and_wait(
    tasks: list[asyncio.Task[None]], within: float = TASK_STOP_TIMEOUT
) -> list[asyncio.Task[None]]:
    """Cancel `tasks` and wait until they end; return (and log) those still running after
    `within` seconds.

    One cancel() is not always enough: a library await may return normally through the
    cancellation (asyncio.wait_for on Python 3.11, CPython gh-86296, as under psycopg_pool's
    wait for a connection). A forever loop that loses its cancellation would keep `stop`
    waiting forever, so a task still running is cancelled again, and after `within` seconds
    it is left behind with an error that says where it waits.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(_RECANCEL_EVERY, left))
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())
    stuck = [task for task in tasks if not task.done()]
    for task in stuck:
        event(
            log,
            "server.task_not_stopped",
            logging.ERROR,
            task=task.get_name(),
            where=waiting_at(task),
            waited=within,
        )
    return stuck


def waiting_at(task: asyncio.Task[Any]) -> str:
    """Where a suspended task waits: its chain of awaits, innermost last."""
    where = []
    coro: Any = task.get_coro()
    while coro is not None and len(where) < 20:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            where.append(f"{code.co_name} ({Path(code.co_filename).name}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " > ".join(where)


def _bench_methods() -> list[Method]:
    """The bench's no-op Evaluate, only when the bench asked for it (bench/e2e.py)."""
    # An environment variable, not a setting: no config file or flag of `signoff serve`
    # can expose it, and the bench sets it only on the server process it starts.
    if os.environ.get(bench_api.ENV_FLAG) != "1":
        return []
    event(log, "server.bench_noop", logging.WARNING, method=f"{bench_api.SERVICE}/NoopEvaluate")
    return bench_api.methods()


async def start(
    settings: Settings,
    clock: Clock | None = None,
    *,
    worker: int | None = None,
    checked: Bundle | None = None,
) -> Running:
    """Open the store, load the bundle, then listen; readiness only once both are ready.

    `worker` is this process's index under `serve --workers N` (None: the only process);
    `checked` the bundle the preflight compiled, if any.
    """
    # httpx logs full webhook URLs at INFO, and Slack URLs carry their secret in the path.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    authenticator = authenticator_for(settings)
    try:
        tls_files = tls.certificate_files(settings.tls, settings.auth.mtls is not None)
    except tls.TlsError as exc:
        raise ConfigError(str(exc)) from None
    signer = signer_for(settings, dev_mode=isinstance(authenticator, DevAuthenticator))
    notifier = Notifier(settings.notify)
    telemetry = Telemetry(settings.telemetry, prometheus=bool(settings.http_listen))
    slack = slack_wiring.poster(settings)
    app = build_app(
        settings, clock, notifier=notifier, telemetry=telemetry, signer=signer, slack=slack
    )
    posts = slack_wiring.endpoints(settings, slack, app)
    telemetry.watch_store(app.store)
    dev_mode = isinstance(authenticator, DevAuthenticator)  # before e-mail sessions wrap it
    # Before the store opens: a ConfigError here leaves nothing to close.
    authenticator, email_links = email_link.wire(settings, app.reviews, notifier, authenticator)
    await app.store.open()
    try:
        await app.start(checked)
    except BaseException:
        await app.store.close()
        raise
    await notifier.start()
    if slack is not None:
        await slack.start()
    limiter = Limiter(settings.limits)
    telemetry.watch_limits(limiter)
    peers = PeerGate(settings.limits.peers)
    if email_links is not None:
        posts[email_link.PATH] = email_links.handle
    guard = Guard(authenticator, app.audit_denied, limiter, telemetry.incoming, peers)
    audit = AuditDesk(app.store, app.clock, signer, app.limits.page_bytes)
    await audit.warn_if_untrusted()
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            # Workers share the port; a lone server must not silently share it with another.
            ("grpc.so_reuseport", 0 if worker is None else 1),
            *grpc_transport.connection_options(settings.limits.http),
        ]
    )
    methods = bounded(
        scoped(
            [
                *decision_api.methods(app),
                *policy_api.methods(app),
                *review_api.methods(app.reviews, app.grants),
                *audit_api.methods(audit),
                *_bench_methods(),
            ]
        ),
        app.limits.sizes,
    )
    server.add_generic_rpc_handlers(grpc_transport.handlers(methods, guard))
    health_servicer = health.aio.HealthServicer()
    # The servicer starts out SERVING; until everything below is up it must say otherwise.
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            *SERVICE_NAMES,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    if tls_files is None:
        port = server.add_insecure_port(settings.listen)
    else:
        port = server.add_secure_port(settings.listen, tls.grpc_credentials(tls_files))
    if port == 0:
        await notifier.close()
        if slack is not None:
            await slack.close()
        await app.store.close()
        raise OSError(f"cannot listen on {settings.listen}")
    await server.start()
    http, http_port = None, None
    if settings.http_listen:
        http = HttpServer(
            connect_api.ConnectHandler(
                methods, guard, settings.max_message_bytes, settings.limits.http
            ),
            grace=settings.shutdown_grace,
            loopback_only=dev_mode,
            ssl_context=tls.http_context(tls_files) if tls_files and settings.tls.http else None,
            reuse_port=worker is not None,
            metrics=telemetry.prometheus_page,
            posts=posts,
            peers=peers,  # one rate per address, whichever door it knocks on
        )
        host, _, want = settings.http_listen.rpartition(":")
        try:
            http_port = await http.start(host, int(want))
        except OSError as exc:
            await server.stop(0)
            await notifier.close()
            if slack is not None:
                await slack.close()
            await app.store.close()
            raise OSError(f"cannot listen on http_listen {settings.http_listen}: {exc}") from None
    loop = asyncio.get_running_loop()
    tasks = []
    if not worker:  # the jobs that must run once per deployment run in worker 0
        tasks += [
            loop.create_task(_sweep_forever(app, settings), name="signoff-sweeper"),
            loop.create_task(_checkpoint_forever(audit, settings), name="signoff-checkpointer"),
        ]
    # Every worker keeps its own snapshot for its own /metrics.
    tasks.append(
        loop.create_task(telemetry.refresh_pending_forever(app.store), name="signoff-pending")
    )
    tasks.append(loop.create_task(app.denials.flush_forever(), name="signoff-denials"))
    watcher = None
    if settings.watch_policies:
        watcher = PolicyWatcher(app, settings.policies, settings.watch_debounce)
        tasks.append(loop.create_task(watcher.run(), name="signoff-policy-watcher"))
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    if http:
        http.ready = True
    event(
        log,
        "server.started",
        listen=f"{settings.listen_host}:{port}",
        http=f"{settings.http_listen_host}:{http_port}" if http else "off",
        policies=str(settings.policies),
        db=settings.db,
        version=app.bundle.version,
        **({} if worker is None else {"worker": worker}),
    )
    if http:
        scheme = "https" if settings.tls.serves_http else "http"
        event(log, "console.ready", url=f"{scheme}://{settings.http_listen_host}:{http_port}/")
    return Running(
        port=port,
        app=app,
        server=server,
        health=health_servicer,
        settings=settings,
        notifier=notifier,
        audit=audit,
        tasks=tasks,
        watcher=watcher,
        http=http,
        http_port=http_port,
        limiter=limiter,
        slack=slack,
    )


async def _sweep_forever(app: Signoff, settings: Settings) -> None:
    # Deadlines are stored, so the first sweep after a restart expires what fell due while
    # the server was down. Replicas on one database sweep under a lease, so exactly one of
    # them expires reviews; when it dies, another takes over within one interval.
    leading = False
    approvals = settings.notify.slack is not None or settings.notify.email is not None
    next_state_sweep = 0.0
    while True:
        try:
            now_leading = await app.store.try_lead("sweeper")
            if now_leading != leading:
                leading = now_leading
                event(log, "sweeper.lead" if leading else "sweeper.follow")
            if leading:
                await app.reviews.sweep()
            if leading and approvals and time.monotonic() >= next_state_sweep:
                next_state_sweep = time.monotonic() + NOTIFY_STATE_SWEEP_S
                await _sweep_notify_state(app)
        except Exception:
            log.exception("review sweep failed; retrying")
        await asyncio.sleep(settings.sweep_interval)


async def _sweep_notify_state(app: Signoff) -> None:
    """Drop used link and Slack keys once expired, and the messages of settled reviews."""
    now = app.clock.now()
    gone = await app.store.sweep_notify_state(now, now - NOTIFY_MESSAGES_KEPT)
    if gone:
        event(log, "sweeper.notify_state", rows=gone)


async def _checkpoint_forever(audit: AuditDesk, settings: Settings) -> None:
    every, interval = settings.audit.checkpoint_every, settings.audit.checkpoint_interval
    while True:
        try:
            await audit.checkpoint_if_due(every, interval)
        except Exception:
            log.exception("audit checkpoint failed; retrying")
        await asyncio.sleep(1.0)


async def serve(
    settings: Settings,
    *,
    worker: int | None = None,
    on_started: Callable[[], None] | None = None,
    checked: Bundle | None = None,
) -> None:
    """Run one server process until SIGTERM or SIGINT, then drain gracefully."""
    running = await start(settings, worker=worker, checked=checked)
    loop = asyncio.get_running_loop()
    stopping: set[asyncio.Task[None]] = set()

    def on_signal(sig: signal.Signals) -> None:
        event(log, "server.stopping", signal=sig.name)
        # A second signal (GNU timeout sends two) joins the stop already under way.
        stopping.add(loop.create_task(running.stop()))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    loop.add_signal_handler(signal.SIGHUP, lambda: stopping.add(loop.create_task(_reload(running))))
    if on_started is not None:  # only now: a SIGTERM from then on drains instead of killing
        on_started()
    await running.wait()
    while stopping:
        await stopping.pop()


async def _reload(running: Running) -> None:
    accepted, errs = await running.app.reload()
    event(log, "policy.reload", accepted=accepted, errors=len(errs), trigger="SIGHUP")
