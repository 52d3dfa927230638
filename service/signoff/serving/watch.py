"""Hot reload: watch the policy directory and reload the bundle when a policy file changes.

The watcher only decides *when* to reload; `Signoff.reload` does the rest exactly as for
SIGHUP and ReloadBundle (validate the whole bundle, swap one reference, audit
policy.loaded or policy.rejected, keep the last good bundle).

A directory that disappears cannot be watched any more (inotify drops the watch, and a
directory recreated under the same name is a new inode nobody watches), so the watcher
checks the directory's identity every CHECK_MS: when it is gone the reload is attempted
(rejected and audited: "no such policy directory"), then the watcher polls until the
directory is back, watches it again and reloads. The same path covers a directory
replaced by a rename (a deploy that swaps `policies/` for a new checkout).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from watchfiles import Change, awatch

from signoff.app.decisions import Signoff
from signoff.logs import event
from signoff.policy.bundle import content_version
from signoff.policy.load import policy_files

log = logging.getLogger("signoff.watch")

ACTOR = "watcher"
# How often the watcher wakes without events to check the directory is still the same one.
CHECK_MS = 500
# How often a missing directory is looked for.
POLL_S = 0.5
_POLICY_SUFFIXES = (".yaml", ".yml")
_TEST_SUFFIXES = ("_test.yaml", "_test.yml")


class PolicyWatcher:
    """Reloads the app's bundle when files under its policy directory change."""

    def __init__(self, app: Signoff, directory: Path, debounce: float = 0.3) -> None:
        self.app = app
        self.directory = Path(directory)
        self.debounce = debounce
        self.reloads = 0  # reloads attempted by this watcher, accepted or not
        self.last: tuple[bool, list[Any]] | None = None
        # Set while a watch is established; tests wait for it before changing files.
        self.ready = asyncio.Event()
        self._reloaded = asyncio.Condition()

    async def run(self) -> None:
        """Watch until cancelled; never raises, whatever happens to the directory."""
        first = True
        while True:
            try:
                await self._watch(first)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A watcher that dies silently would leave a server serving stale policies
                # while everyone believes edits take effect: log and start over.
                log.exception("policy watcher failed; watching again")
            self.ready.clear()
            first = False
            # Polling, not watching the parent: the parent may be gone too (a volume
            # unmounted), and this only runs while the directory is missing or replaced.
            while True:
                await asyncio.sleep(POLL_S)
                if self.directory.is_dir():
                    break

    async def wait_reloads(self, after: int) -> int:
        """Wait until more than `after` reloads were attempted; return the count."""
        async with self._reloaded:
            await self._reloaded.wait_for(lambda: self.reloads > after)
            return self.reloads

    async def _watch(self, first: bool) -> None:
        """Watch one incarnation of the directory until it disappears or is replaced."""
        identity = _identity(self.directory)
        if identity is None:
            return
        quiet_ms = max(1, round(self.debounce * 1000))
        established = False
        async for changes in awatch(
            self.directory,
            watch_filter=self._relevant,
            step=quiet_ms,  # changes are grouped until none arrives for this long...
            debounce=10 * quiet_ms,  # ...but a steady stream still reloads now and then
            rust_timeout=CHECK_MS,
            yield_on_timeout=True,
        ):
            if not established:
                # Whatever changed between the last load and now was not seen as events.
                established = True
                if await asyncio.to_thread(self._stale, first):
                    await self._reload("watch.start", changes)
                self.ready.set()
                continue
            if _identity(self.directory) != identity:
                if not self.directory.is_dir():
                    await self._reload("directory.gone", changes)
                return
            # An editor saving unchanged text, or a ReloadBundle that already loaded these
            # files, is not worth a policy.loaded entry.
            if changes and await asyncio.to_thread(self._differs):
                await self._reload("change", changes)

    def _stale(self, first: bool) -> bool:
        """Whether to reload on (re)watching: the last try failed, or the files differ."""
        if not first and (self.last is None or not self.last[0]):
            return True  # the directory came back: say so in the audit log
        return self._differs()

    def _differs(self) -> bool:
        """Whether the policy files differ from the bundle in force (cheap: hashing only)."""
        try:
            files = [(rel, path.read_bytes()) for rel, path in policy_files(self.directory)]
        except OSError:
            return True
        # The version is the content hash plus a git suffix; only the content needs a reload.
        return content_version(files) != self.app.bundle.version.partition("+git:")[0]

    async def _reload(self, trigger: str, changes: set[tuple[Change, str]]) -> None:
        try:
            accepted, errors = await self.app.reload(actor=ACTOR)
        except Exception as exc:
            # The audit store failed, not the bundle: the next change tries again.
            log.exception("policy reload by the watcher failed")
            accepted, errors = False, [exc]
        event(
            log,
            "policy.reload",
            logging.INFO if accepted else logging.ERROR,
            accepted=accepted,
            errors=len(errors),
            trigger="watch",
            cause=trigger,
            files=",".join(sorted(self._rel(p) for _, p in changes)[:5]),
        )
        async with self._reloaded:
            self.reloads += 1
            self.last = (accepted, errors)
            self._reloaded.notify_all()

    def _rel(self, path: str) -> str:
        """`path` relative to the directory ("." for itself), or as given if outside it."""
        root, full = os.path.abspath(self.directory), os.path.abspath(path)
        if full == root:
            return "."
        if full.startswith(root + os.sep):
            return Path(full[len(root) + 1 :]).as_posix()
        return path

    def _relevant(self, change: Change, path: str) -> bool:
        """Policy files, and anything that may be a directory of them; not tests or temp files."""
        rel = Path(self._rel(path))
        if rel.is_absolute() or rel == Path("."):
            return True  # the directory itself (deleted, moved), or somewhere unexpected
        if any(part.startswith(".") for part in rel.parts):
            return False  # the loader ignores hidden files and directories (.git, swap files)
        name = rel.name
        if name.endswith(_TEST_SUFFIXES):
            return False
        # A name without an extension may be a subdirectory moved in or out as a whole,
        # which reports no event for the files inside it.
        return name.endswith(_POLICY_SUFFIXES) or "." not in name


def _identity(directory: Path) -> tuple[int, int] | None:
    """(device, inode) of the directory, or None when it does not exist."""
    try:
        st = os.stat(directory)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if os.path.isdir(directory) else None
