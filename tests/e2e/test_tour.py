"""The README's 60-second tour (examples/tour.py) runs as written: evaluate, review, approve,
audit, against a private server on a free port."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "tour.py"


def test_the_tour_decides_three_refunds_and_one_waits_for_its_approval() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"^\s+120\s+AUTO_ALLOW\s+-\s+Small refund within policy\.$", out, re.M)
    assert re.search(r"^\s+750\s+REQUIRE_REVIEW\s+finance\s+Refund above 500", out, re.M)
    assert re.search(r"^\s+25000\s+DENY\s+-\s+Refunds above 10,000", out, re.M)
    assert "now APPROVED by alice (version 2)" in out
    assert re.search(r"^review \S+: APPROVED by alice: matches ticket T-1234$", out, re.M)
    story = out.split("== 4.")[1]
    assert "review.approved" in story
    assert "final state: APPROVED" in story
    assert re.search(r"^ok: \d+ entries checked", story, re.M)


def test_the_tour_refuses_a_server_that_is_not_there() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--server", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
