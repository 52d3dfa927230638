"""SQLite: the shared state of the Slack and e-mail approvals (store/notify_state.py).

Writes go through the group-commit writer like every other: it is this backend's only
write connection, and its lock file is what orders the processes of `serve --workers` on
one file. A key's check and insert run in one write transaction, so of two processes
racing with one key exactly one inserts it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from signoff.core.audit import format_time
from signoff.store import notify_state as ns
from signoff.store.grants_sql import for_sqlite

_ADD = for_sqlite(ns.ADD_MESSAGE)
_SELECT = for_sqlite(ns.SELECT_MESSAGES)
_FORGET = for_sqlite(ns.FORGET_MESSAGES)
_USE = for_sqlite(ns.USE_NONCE)
_SWEEP_NONCES = for_sqlite(ns.SWEEP_NONCES)
_SWEEP_MESSAGES = for_sqlite(ns.SWEEP_MESSAGES)


class SqliteNotify:
    """The notify-state methods of SqliteStore (which provides `_read` and `_submit`)."""

    _read: Callable[..., Any]
    _submit: Callable[..., Any]

    async def add_slack_message(
        self, review_id: str, channel: str, ts: str, now: dt.datetime
    ) -> None:
        """Note that message `ts` in `channel` shows the review; the first one noted stays."""
        for what, value in (("review_id", review_id), ("channel", channel), ("ts", ts)):
            ns.check_text(what, value)
        row = (review_id, channel, ts, format_time(now))
        await self._submit(lambda tx: _run(tx, _ADD, row))

    async def slack_messages(self, review_id: str) -> dict[str, str]:
        """The messages noted for the review: channel -> ts, in the order they were noted."""

        def read(conn: Any) -> dict[str, str]:
            return {str(c): str(t) for c, t in conn.execute(_SELECT, (review_id,))}

        return await self._read(read)  # type: ignore[no-any-return]

    async def forget_slack_messages(self, review_id: str) -> None:
        """Drop the messages noted for the review (it is settled: nothing will change)."""
        await self._submit(lambda tx: _run(tx, _FORGET, (review_id,)))

    async def use_nonces(
        self, keys: Sequence[ns.NonceKey], expires_at: dt.datetime, now: dt.datetime
    ) -> bool:
        """True if none of `keys` is in use at `now`; all are then in use until `expires_at`."""
        unique = ns.check_keys(keys)
        until, at = format_time(expires_at), format_time(now)

        def apply(tx: Any) -> bool:
            fresh = 0
            for kind, nonce in unique:  # every key, so that a replay's new ones count too
                fresh += tx.conn.execute(_USE, (kind, nonce, until, at)).fetchone() is not None
            return fresh == len(unique)

        return await self._submit(apply)  # type: ignore[no-any-return]

    async def sweep_notify_state(self, now: dt.datetime, settled_before: dt.datetime) -> int:
        """Drop keys expired at `now`, and messages of settled reviews noted before
        `settled_before`; return how many rows went."""
        at, before = format_time(now), format_time(settled_before)

        def apply(tx: Any) -> int:
            gone = tx.conn.execute(_SWEEP_NONCES, (at,)).rowcount
            return int(gone + tx.conn.execute(_SWEEP_MESSAGES, (before,)).rowcount)

        return await self._submit(apply)  # type: ignore[no-any-return]


def _run(tx: Any, statement: str, args: tuple[Any, ...]) -> None:
    # Nothing to answer: the writer's cursor stays in the writer.
    tx.conn.execute(statement, args)
