"""A throwaway `signoff serve` for the examples: a free port, a temporary SQLite file, the
repository's ./policies, and a signing key that goes with the database (not ~/.local/state)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parents[1]


def signoff_command() -> str:
    """The `signoff` command beside this Python (the virtualenv's), else on PATH."""
    beside = Path(sys.executable).with_name("signoff")
    return str(beside) if beside.exists() else (shutil.which("signoff") or "signoff")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def private_server(name: str) -> Iterator[str]:
    """`signoff serve` on a free port with `name`.db in a temporary directory; yields HOST:PORT."""
    with tempfile.TemporaryDirectory(prefix=f"signoff-{name}-") as tmp:
        target = f"127.0.0.1:{_free_port()}"
        argv = [
            signoff_command(), "serve", "--policies", str(REPO / "policies"),
            "--db", f"sqlite:///{tmp}/{name}.db", "--listen", target, "--http-listen", "",
            "--log-level", "warning",
        ]  # fmt: skip
        log = open(f"{tmp}/server.log", "w")  # noqa: SIM115 -- closed below, after the server
        env = {**os.environ, "SIGNOFF_STATE_DIR": f"{tmp}/state"}
        server = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        try:
            with grpc.insecure_channel(target) as channel:
                grpc.channel_ready_future(channel).result(timeout=60)
            print(f"(a private server on {target}, database {tmp}/{name}.db)")
            yield target
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
            if server.returncode not in (0, -15):
                print(Path(f"{tmp}/server.log").read_text(), file=sys.stderr)
