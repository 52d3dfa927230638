"""The README's install commands, run as written in fresh virtualenvs from a copy of the
checkout: the server with the client beside it, the MCP extra, and the client alone
without any of the server's dependencies. A missing extra's hint installs it.

Real installs from the package index (about a minute with pip's cache), so that a
dependency the server forgot, or a client that drags the server's in, fails here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from signoff import __version__

ROOT = Path(__file__).resolve().parents[2]
# Modules of the server's dependencies that the client must not bring along.
SERVER_ONLY = ["signoff", "aiohttp", "cel_expr_python", "psycopg", "opentelemetry", "yaml"]


def readme_install_lines() -> list[str]:
    """The command lines of the README's "Install from a checkout" block."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Install from a checkout\n", 1)[1]
    block = re.search(r"^```sh\n(.*?)^```", section, re.M | re.S)
    assert block is not None
    return [line for line in block[1].splitlines() if line.strip()]


def sh(command: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run one command line as a user's shell would, with no virtualenv activated."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(sys.prefix)
    )
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def ok(command: str, cwd: Path) -> str:
    done = sh(command, cwd)
    assert done.returncode == 0, f"$ {command}\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's files (tracked, or new and not ignored), without its .venv."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    copy = tmp_path_factory.mktemp("checkout")
    for rel in filter(None, files.split("\0")):
        if (ROOT / rel).is_file():
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, copy / rel)
    return copy


def test_the_readme_installs_the_server_its_mcp_extra_and_the_client_alone(checkout: Path):
    lines = readme_install_lines()
    assert "venv/bin/pip install ./clients/python .          # the server: " in lines[1]
    for i, line in enumerate(lines):
        ok(line, checkout)
        if i == 1:  # the server without its mcp extra: the proxy says what to run
            done = sh("venv/bin/signoff mcp-proxy --config none.yaml", checkout)
            assert done.returncode == 2
            python = re.escape(str(checkout / "venv" / "bin" / "python"))
            assert re.search(f": {python}3? -m pip install 'mcp<3,>=2.3'\n$", done.stderr)

    assert ok("venv/bin/signoff --version", checkout).strip() == f"signoff {__version__}"
    ok("venv/bin/python -c 'import mcp, signoff.mcp_proxy.upstreams'", checkout)

    ok("client-venv/bin/python -c 'import signoff_client, signoff_client.canonical'", checkout)
    found = ok(
        "client-venv/bin/python -c 'import importlib.util as u; "
        f"print([m for m in {json.dumps(SERVER_ONLY)} if u.find_spec(m)])'",
        checkout,
    )
    assert found.strip() == "[]"
    assert not (checkout / "client-venv" / "bin" / "signoff").exists()


def test_a_missing_extras_hint_installs_it(checkout: Path):
    if not (checkout / "client-venv").exists():
        ok("python3 -m venv client-venv && client-venv/bin/pip install ./clients/python", checkout)
    said = (
        sh(
            "client-venv/bin/python -c 'from signoff_client.receipts import _load_key; "
            '_load_key(b"")\'',
            checkout,
        )
        .stderr.strip()
        .splitlines()[-1]
    )
    hint = said.partition("needs the cryptography package: ")[2]
    assert hint.startswith(str(checkout / "client-venv" / "bin" / "python") + " -m pip install ")
    ok(hint, checkout)
    ok("client-venv/bin/python -c 'import cryptography'", checkout)
