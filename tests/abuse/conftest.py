"""The abuse suite runs against real servers, started as the end-to-end suite starts them."""

from __future__ import annotations

from ..e2e.conftest import (  # noqa: F401 - fixtures and hooks, reused as they are
    _any_free_http_port,
    backend,
    make_server,
    pytest_configure,
    pytest_generate_tests,
    server,
)
