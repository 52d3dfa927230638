"""Several server processes on the same ports: `signoff serve --workers N`.

CPython runs one thread of Python at a time and the CEL engine, gRPC's Python layer and the
audit records all need it, so one process uses about one core. With N workers the kernel
spreads incoming connections over N processes that each listen on the same ports
(SO_REUSEPORT); each worker is a complete server with its own store connections.

What keeps this correct:
- The audit log stays one linear chain: every worker's group-commit writer reads the chain
  head inside its write transaction (SQLite: BEGIN IMMEDIATE, which serializes writers across
  processes; PostgreSQL: the chain-head row lock replicas already take).
- The supervisor migrates the database, creates the signing key and checks the policies
  once, before any worker starts, so workers never race on them.
- Background jobs that must run once (review expiry, signed checkpoints) run in worker 0.
- Ports are reserved by the supervisor first, so `:0` resolves to one port for all workers
  and a restarted worker gets the same port back.

Connections, not calls, are spread: one client on one HTTP/2 connection is served by one
worker. Many agents (or a client with several channels) spread over all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from signoff.logs import event
from signoff.serving.build import authenticator_for, build_store, signer_for
from signoff.serving.preflight import preflight
from signoff.serving.server import serve
from signoff.settings.model import Settings

log = logging.getLogger("signoff.workers")

START_TIMEOUT = 60.0  # seconds a worker may take to open the store and load the policies
RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds before restarting a crashed worker
_ctx = multiprocessing.get_context("spawn")  # a fork would copy gRPC's threads and locks


class WorkerError(Exception):
    """The workers could not be started."""


def reserve(address: str) -> tuple[socket.socket, int]:
    """Bind (never listen on) `address` with SO_REUSEPORT; return the socket and its port.

    The socket gets no connections, it only holds the port for the workers' listeners.
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, int(port)))
    except OSError:
        sock.close()
        raise
    return sock, int(sock.getsockname()[1])


async def prepare(settings: Settings) -> None:
    """Do once what every worker would otherwise race on: migrations and the key (`run`'s
    preflight checked the policies)."""
    from signoff.auth import DevAuthenticator
    from signoff.ids import SystemClock

    authenticator = authenticator_for(settings)
    signer_for(settings, dev_mode=isinstance(authenticator, DevAuthenticator))
    store = build_store(settings, SystemClock())
    await store.open()
    await store.close()


@dataclass
class _Worker:
    index: int
    process: Any = None  # multiprocessing.Process
    exited: asyncio.Future[int] | None = None
    restarts: int = 0
    ready: bool = False
    pids: list[int] = field(default_factory=list)


class Supervisor:
    """Starts N workers, restarts crashed ones, forwards SIGHUP and stops them on SIGTERM."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.workers = [_Worker(i) for i in range(settings.workers)]
        self.stopping = asyncio.Event()
        self._sockets: list[socket.socket] = []

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT; raise OSError or WorkerError if the workers cannot start."""
        await prepare(self.settings)
        settings = self._with_reserved_ports()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)
        try:
            started = await asyncio.gather(*(self._launch(w, settings) for w in self.workers))
            if not all(started):
                raise WorkerError("a worker failed to start; see its log lines above")
            event(
                log,
                "server.started",
                listen=settings.listen,
                http=settings.http_listen or "off",
                workers=len(self.workers),
                pids=[w.process.pid for w in self.workers],
            )
            await asyncio.gather(*(self._keep(w, settings) for w in self.workers))
        finally:
            await self._stop_all()
            for sock in self._sockets:
                sock.close()
            event(log, "server.stopped", workers=len(self.workers))

    def _with_reserved_ports(self) -> Settings:
        updates: dict[str, str] = {}
        for key in ("listen", "http_listen"):
            address = getattr(self.settings, key)
            if not address:
                continue
            try:
                sock, port = reserve(address)
            except OSError as exc:
                raise OSError(f"cannot listen on {key} {address}: {exc}") from None
            self._sockets.append(sock)
            updates[key] = f"{address.rpartition(':')[0]}:{port}"
        return self.settings.model_copy(update=updates)

    async def _launch(self, w: _Worker, settings: Settings) -> bool:
        """Start worker `w`; True once it reports ready, False if it died first."""
        loop = asyncio.get_running_loop()
        receive, send = _ctx.Pipe(duplex=False)
        w.process = _ctx.Process(
            target=worker_main,
            args=(settings, w.index, send),
            name=f"signoff-worker-{w.index}",
            daemon=False,
        )
        w.process.start()
        send.close()
        w.pids.append(w.process.pid)
        w.exited = loop.run_in_executor(None, _join, w.process)
        ready = loop.run_in_executor(None, _wait_ready, receive, START_TIMEOUT)
        try:
            w.ready = await ready
        finally:
            receive.close()
        if not w.ready and not w.exited.done():
            w.process.terminate()
        return w.ready

    async def _keep(self, w: _Worker, settings: Settings) -> None:
        """Restart worker `w` whenever it exits unexpectedly, with growing pauses."""
        while True:
            assert w.exited is not None
            stop = asyncio.ensure_future(self.stopping.wait())
            await asyncio.wait([w.exited, stop], return_when=asyncio.FIRST_COMPLETED)
            if self.stopping.is_set():
                return
            stop.cancel()
            code = w.exited.result()
            pause = RESTART_BACKOFF[min(w.restarts, len(RESTART_BACKOFF) - 1)]
            event(
                log,
                "worker.exited",
                logging.ERROR,
                worker=w.index,
                pid=w.process.pid,
                exit_code=code,
                restart_in=pause,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), pause)
            if self.stopping.is_set():
                return
            w.restarts += 1
            if await self._launch(w, settings):
                event(log, "worker.restarted", worker=w.index, pid=w.process.pid)

    def _on_stop(self, sig: signal.Signals) -> None:
        if not self.stopping.is_set():
            event(log, "server.stopping", signal=sig.name, workers=len(self.workers))
        self.stopping.set()

    def _forward(self, sig: signal.Signals) -> None:
        for w in self.workers:
            if w.process is not None and w.process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.process.pid, sig)

    async def _stop_all(self) -> None:
        """SIGTERM every worker (each drains like a single server), then wait for them."""
        self.stopping.set()
        self._forward(signal.SIGTERM)
        waits = [w.exited for w in self.workers if w.exited is not None]
        if not waits:
            return
        limit = self.settings.shutdown_grace + 20.0  # the drain, then the store's close
        _, late = await asyncio.wait(waits, timeout=limit)
        for w in self.workers:
            if w.exited in late:
                event(log, "worker.killed", logging.ERROR, worker=w.index, after=limit)
                w.process.kill()
        if late:
            await asyncio.wait(late, timeout=5.0)


def _join(process: Any) -> int:
    process.join()
    return int(process.exitcode if process.exitcode is not None else -1)


def _wait_ready(conn: Connection, timeout: float) -> bool:
    """True when the worker sent "ready" within `timeout`; False if it died or took too long."""
    try:
        return bool(conn.poll(timeout)) and conn.recv() == "ready"
    except (EOFError, OSError):
        return False


def worker_main(settings: Settings, index: int, ready: Connection) -> None:
    """Entry point of one worker process (spawned: it starts from a clean interpreter)."""
    from signoff import logs

    logs.configure(settings.log_format, settings.log_level, worker=index)

    def started() -> None:
        ready.send("ready")
        ready.close()

    try:
        asyncio.run(serve(settings, worker=index, on_started=started))
    except KeyboardInterrupt:
        pass
    except BaseException:
        log.exception("worker %d failed", index)
        raise SystemExit(1) from None


async def run(settings: Settings) -> None:
    """`signoff serve`: one process, or with `workers` > 1 a supervisor of worker processes."""
    # Before anything is created: a failed start leaves no database or key behind.
    checked = await asyncio.to_thread(preflight, settings)
    if settings.workers > 1:
        await Supervisor(settings).run()
    else:
        await serve(settings, checked=checked)
