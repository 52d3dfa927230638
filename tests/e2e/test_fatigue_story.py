"""The fatigue story of docs/reviewers.md (examples/fatigue_story.py) runs at a tenth the size."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "fatigue_story.py"


def test_the_fatigue_story_runs_and_a_standing_approval_takes_most_reviews_away() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--refunds", "100"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "100 asked in" in out
    assert "100 sent to review, 0 allowed" in out
    assert "bob rejected 2, alice edited 1" in out
    assert "alice approved 97 in 1 batch acts" in out
    day_two = re.search(
        r"99 asked in [\d.]+ s: (\d+) sent to review, (\d+) allowed \((\d+) by", out
    )
    assert day_two is not None, out
    reviewed, allowed, by_grant = map(int, day_two.groups())
    # One in 20 of day two's refunds may exceed the grant's bound of 750; the rest may not.
    assert reviewed + allowed == 99
    assert allowed == by_grant
    assert reviewed <= 5
    assert re.search(rf"where amount <= 750, currency == \"EUR\"\s+{by_grant}/100 used", out)
    day_one, after = out.split("== insights, day two")
    assert "auto allow candidate: approved unchanged 97 of 100 decided reviews" in day_one
    # Day two's reviews: the one approved with the grant, and those the grant did not cover.
    assert re.search(rf"reviews opened \S+ \.\. \S+: {reviewed + 1}\n", after)


def test_the_fatigue_story_refuses_too_few_refunds() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--refunds", "10"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "--refunds: at least 100" in done.stderr
