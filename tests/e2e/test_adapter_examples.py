"""The adapter examples run again with other arguments, and an idempotency conflict (the
same --ticket for another refund) ends in one line on stderr, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ServerHandle

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = ["langgraph_refund.py", "openai_agents_refund.py"]


def _run(server: ServerHandle, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SIGNOFF_SERVER": server.target, "SIGNOFF_TOKEN": "support-bot"},
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_an_example_runs_again_with_another_amount(signoff: ServerHandle, script: str):
    for amount in ("120", "240", "120"):  # the last one retries the first request
        done = _run(signoff, script, "--amount", amount)
        assert done.returncode == 0, done.stderr
        assert f"refunded {amount} EUR to acct_42" in done.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_same_ticket_for_another_refund_is_one_line(signoff: ServerHandle, script: str):
    assert _run(signoff, script, "--amount", "120", "--ticket", "T-7").returncode == 0
    done = _run(signoff, script, "--amount", "240", "--ticket", "T-7")
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"{script}: request_id '")
    assert "was used for a different request" in line
    assert line.endswith("(it comes from --ticket T-7)")
