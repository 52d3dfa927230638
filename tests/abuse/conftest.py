"""The attack suite of issue 19: real servers on free ports, as in tests/e2e."""

from __future__ import annotations

from ..e2e.conftest import (  # noqa: F401 (fixtures and hooks, shared with tests/e2e)
    _any_free_http_port,
    backend,
    make_server,
    pytest_configure,
    pytest_generate_tests,
)
