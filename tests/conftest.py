"""Settings shared by every suite: no test writes a key into the developer's real state
directory, or into the repository.

A server started without `audit.signing_key` or `state_dir` (directly, or as a `signoff
serve` process inheriting this environment) generates its key under $XDG_STATE_HOME; here that
is a temporary directory of the test session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _private_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    before = set(REPO.glob("*.pem")) | set(REPO.glob("signoff.db*"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))
        mp.delenv("SIGNOFF_STATE_DIR", raising=False)
        yield
    left = (set(REPO.glob("*.pem")) | set(REPO.glob("signoff.db*"))) - before
    assert not left, f"tests left keys or databases in the repository: {sorted(left)}"
