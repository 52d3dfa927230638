"""The reviewer console in a real browser: Debian's Chromium driven by Playwright, against
real servers started with the end-to-end fixtures (tests/e2e/conftest.py).

Playwright's own browser download is never used: the tests launch /usr/bin/chromium (or
SIGNOFF_CHROMIUM) with flags that keep it off the network. Without that browser, or without
the `playwright` package, the tests SKIP with the reason -- unless SIGNOFF_REQUIRE_BROWSER=1
(CI), which makes them FAIL instead, as SIGNOFF_REQUIRE_POSTGRES does for PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from signoff_client import Approval, Client, Decision, Review, Verdict

# The e2e fixtures, used here as they are: real servers on free ports, a fake clock.
from ..e2e.conftest import (  # noqa: F401
    FakeClock,
    MakeServer,
    ServerHandle,
    make_server,
    write_tokens,
)

CHROMIUM = Path(os.environ.get("SIGNOFF_CHROMIUM", "/usr/bin/chromium"))
REQUIRE_BROWSER = os.environ.get("SIGNOFF_REQUIRE_BROWSER") == "1"
# No first-run work, no updates, no QUIC, no sync: the machine (and CI) has no internet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
VIEWPORT = {"width": 1280, "height": 800}
# The screenshots of docs/reviewers.md are refreshed only when asked (SIGNOFF_SCREENSHOTS=1):
# ids and times differ on every run, and a test run should not leave the checkout modified.
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
REFRESH_SCREENSHOTS = os.environ.get("SIGNOFF_SCREENSHOTS") == "1"
EXPECT_TIMEOUT_MS = 10_000  # bound on every wait; never reached when things work
WAIT = 15.0

# token: (identity, roles). Reviewers of the example policies' `finance` group, one of
# `comms` (another group), an agent and an auditor.
PEOPLE = {
    "tok-bot": ("support-bot", ["agent"]),
    "tok-alice": ("alice", ["reviewer:finance"]),
    "tok-bob": ("bob", ["reviewer:finance"]),
    "tok-dave": ("dave", ["reviewer:comms"]),
    "tok-ann": ("ann", ["auditor"]),
}
CARD = "4111 1111 1111 1111"


def _unavailable() -> str:
    """Why the browser tests cannot run here ("" when they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"the playwright package is not installed ({exc}); pip install -e '.[dev]'"
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set SIGNOFF_CHROMIUM)"
    return ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    why = _unavailable()
    if not why or REQUIRE_BROWSER:  # required: the `browser` fixture fails, saying why
        return
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason=f"browser tests: {why}")
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module; each test gets fresh contexts (no shared storage).

    Not per session: Playwright's sync API keeps an event loop running in the main thread
    while it is started, and pytest-asyncio cannot run the async tests that come after."""
    if why := _unavailable():
        pytest.fail(f"SIGNOFF_REQUIRE_BROWSER=1 but {why}")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def tokens_file(directory: Path) -> Path:
    """A tokens file with PEOPLE, by SHA-256 as the server stores them."""
    return write_tokens(directory, PEOPLE)


@dataclass
class Console:
    """A real server with PEOPLE and a fake clock, and browser pages signed in to it."""

    make_server: MakeServer
    browser: Any
    tokens: Path
    clock: FakeClock = field(default_factory=FakeClock)
    server: ServerHandle | None = None
    contexts: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # uncaught exceptions in the pages
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4))

    def start(self, **overrides: Any) -> ServerHandle:
        """Start (or, with db= and listen addresses, restart) the server."""
        self.server = self.make_server(
            clock=self.clock,
            auth={"tokens_file": self.tokens},
            sweep_interval=3600.0,  # nothing expires unless a test says so
            **overrides,
        )
        return self.server

    @property
    def url(self) -> str:
        assert self.server is not None
        assert self.server.http_url
        return self.server.http_url

    def client(self, token: str) -> Client:
        assert self.server is not None
        return Client(self.server.target, token=token)

    def refund(self, amount: float = 750, **kw: Any) -> Decision:
        """The support bot asks for a refund (above 500: a `finance` review)."""
        with self.client("tok-bot") as bot:
            return bot.evaluate("refund.issue", **_refund_args(amount, **kw))

    def require(self, amount: float = 750, **kw: Any) -> Future[Approval]:
        """The support bot asks and waits for the review, in a thread."""

        def run() -> Approval:
            with self.client("tok-bot") as bot:
                return bot.require("refund.issue", **_refund_args(amount, **kw), timeout=60)

        return self.pool.submit(run)

    def act(self, review_id: str, verdict: Verdict, token: str = "tok-bob", **kw: Any) -> Review:
        """A reviewer acts on the review's current version over gRPC."""
        with self.client(token) as who:
            version = who.get_review(review_id).version
            return who.submit_review(review_id, verdict, expected_version=version, **kw)

    def page(self, token: str | None, path: str = "/") -> Any:
        """A new browser context (its own session storage) at `path`, signed in as `token`
        through the sign-in form; the deep link is kept across the sign-in."""
        from playwright.sync_api import expect

        context = self.browser.new_context(viewport=VIEWPORT, base_url=self.url)
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.goto(path)
        if token is not None:
            page.get_by_label("Access token").fill(token)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_test_id("whoami")).to_contain_text(PEOPLE[token][0])
        return page

    def close(self) -> None:
        for c in self.contexts:
            c.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        assert not self.errors, f"uncaught errors in the console: {self.errors}"


def _refund_args(amount: float, **kw: Any) -> dict[str, Any]:
    return {
        "params": {"amount": amount, "currency": "EUR", "card_number": CARD},
        "principal": {"id": "support-bot", "kind": "agent"},
        "resource": {"kind": "account", "id": kw.pop("account", "acct_42")},
        "justification": kw.pop(
            "justification", "Customer was charged twice for order 1041 (ticket T-88)."
        ),
        "context": kw.pop("context", {"ticket": "T-88", "channel": "chat"}),
        **kw,
    }


@pytest.fixture
def console(make_server: MakeServer, browser: Any, tmp_path: Path) -> Iterator[Console]:  # noqa: F811
    c = Console(make_server, browser, tokens_file(tmp_path))
    c.start()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[[Any, str], Path]:
    """Take `<name>.png` of a page at the 1280x800 viewport: into docs/screenshots with
    SIGNOFF_SCREENSHOTS=1, else into the test's temporary directory."""

    def take(page: Any, name: str) -> Path:
        where = DOCS_SCREENSHOTS if REFRESH_SCREENSHOTS else tmp_path
        where.mkdir(parents=True, exist_ok=True)
        path = where / f"{name}.png"
        page.screenshot(path=str(path))
        return path

    return take
