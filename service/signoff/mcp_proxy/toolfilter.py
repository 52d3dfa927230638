"""Which tools tools/list leaves out: those Signoff denies whatever their arguments.

Signoff's Screen answers, per tool, whether a rule denies its action for this principal
without reading the arguments (or anything else a call could change: the session, the
client, the time); see service/signoff/policy/screen.py. The answers are cached per
principal and bundle version. The proxy asks again every `policy_refresh`, and when a
call's decision names a bundle other than the cached one; when the tools left out change,
every client gets `notifications/tools/list_changed`.

A hidden tool is only not offered: calling it anyway goes to Evaluate like any call,
which denies it and writes the audit entry. If Signoff cannot answer, nothing is hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from signoff import logs
from signoff.mcp_proxy.config import ProxyConfig
from signoff_client import AsyncClient, Screening, errors

log = logging.getLogger("signoff.mcp_proxy")

# What each call sets to its own value; the rest of context.mcp is the tool's.
VARYING = ("context.mcp.session_id", "context.mcp.client")
BATCH = 100  # Signoff's default batch limit
# A tool to screen: its action, resource id and the context every call of it carries.
Screened = tuple[str, str, dict[str, Any]]


class ToolFilter:
    """The cached screenings, and the task that keeps them current."""

    def __init__(self, config: ProxyConfig, client: AsyncClient) -> None:
        self.config = config
        self.client = client
        self.version = ""  # the bundle of the cached answers
        # Awaited when the tools left out differ from those clients were last given.
        self.on_change: Callable[[], Awaitable[None]] | None = None
        self._answers: dict[str, Screening] = {}  # by _key
        self._shown: dict[str, str] | None = None  # what clients were last given
        self._stale = asyncio.Event()

    async def hidden(self, tools: dict[str, Screened]) -> dict[str, str]:
        """Of `tools` (by the name clients see), those to leave out, with the reason."""
        if not self.config.hide_denied:
            return {}
        missing = {k: t for t in tools.values() if (k := self._key(t)) not in self._answers}
        if missing:
            before = self.version
            try:
                answers = await self._ask(missing)
                if before and self.version != before:  # a new bundle: all answers are stale
                    self._answers = await self._ask({self._key(t): t for t in tools.values()})
                else:
                    self._answers.update(answers)
            except errors.SignoffError as exc:
                logs.event(log, "mcp.tools.unscreened", logging.WARNING, error=exc.message)
                return {}
        return await self._settle(self._denied(tools))

    def _denied(self, tools: dict[str, Screened]) -> dict[str, str]:
        """The cached denials among `tools` (a tool not screened yet is not denied)."""
        out = {}
        for name, tool in tools.items():
            answer = self._answers.get(self._key(tool))
            if answer is not None and answer.denied:
                out[name] = answer.reason
        return out

    async def _settle(self, hidden: dict[str, str]) -> dict[str, str]:
        """Record what clients are given; tell them all if it changed (the client that
        lists now too: it lists again and gets the same)."""
        changed = self._shown is not None and set(hidden) != set(self._shown)
        self._shown = hidden
        if changed:
            logs.event(log, "mcp.tools.rescreened", version=self.version, hidden=",".join(hidden))
            if self.on_change is not None:
                await self.on_change()
        return hidden

    def saw_version(self, version: str) -> None:
        """A decision named the bundle `version`: re-screen at once if it is not ours."""
        if version and self.version and version != self.version:
            self._stale.set()

    async def keep_current(self, current: Callable[[], dict[str, Screened]]) -> None:
        """Re-screen `current()` every policy_refresh, or at once when a decision named
        another bundle; clients are told when what they were given changed. Runs until
        cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.policy_refresh):
                    await self._stale.wait()
            self._stale.clear()
            tools = current()
            if not tools or not self.config.hide_denied or self._shown is None:
                continue  # nothing listed yet: the first tools/list screens
            try:
                answers = await self._ask({self._key(t): t for t in tools.values()})
            except errors.SignoffError as exc:
                logs.event(log, "mcp.tools.unscreened", logging.WARNING, error=exc.message)
                continue
            self._answers = answers  # what is no longer listed is dropped too
            await self._settle(self._denied(tools))

    async def _ask(self, tools: dict[str, Screened]) -> dict[str, Screening]:
        """Screen `tools` (by key); one bundle version for all, else ask again."""
        items = list(tools.items())
        for _ in range(3):
            answers: dict[str, Screening] = {}
            for start in range(0, len(items), BATCH):
                chunk = items[start : start + BATCH]
                requests = [self._request(t) for _, t in chunk]
                results = await self.client.screen(requests, varying=VARYING)
                answers.update(zip([k for k, _ in chunk], results, strict=True))
            versions = {a.policy_version for a in answers.values()}
            # One bundle answered them all; else a reload came between two chunks: again.
            if len(versions) <= 1:
                self.version = versions.pop() if versions else self.version
                return answers
        raise errors.Unavailable("the policy bundle changed during every screening")

    def _request(self, tool: Screened) -> dict[str, Any]:
        action, upstream, context = tool
        return {
            "action": action,
            "principal": self.config.principal.as_dict(),
            "resource": {"kind": "mcp_server", "id": upstream},
            "context": {"mcp": context},
        }

    def _key(self, tool: Screened) -> str:
        # Per principal (the config's, today: one per proxy) and what is screened.
        return json.dumps([self.config.principal.id, *tool], sort_keys=True)
