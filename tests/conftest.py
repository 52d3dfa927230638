"""Settings shared by every suite: no test writes into the developer's real state directory.

A server started without `audit.signing_key` or `state_dir` (directly, or as a `signoff
serve` process inheriting this environment) generates its key under $XDG_STATE_HOME; here that
is a temporary directory of the test session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))
        mp.delenv("SIGNOFF_STATE_DIR", raising=False)
        yield
