"""PostgreSQL: the shared state of the Slack and e-mail approvals (store/notify_state.py).

Each call is one autocommit statement on a pooled connection, outside the group-commit
writer: these rows are no part of the audit chain, so they need not queue for its lock nor
ride in a decisions batch. A key's check and insert are one INSERT ... ON CONFLICT, so of
replicas racing with one key exactly one gets its row back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from signoff.store import notify_state as ns
from signoff.store.postgres import sql


class PostgresNotify:
    """The notify-state methods of PostgresStore (which provides `_read`)."""

    _read: Callable[..., Any]

    async def add_slack_message(
        self, review_id: str, channel: str, ts: str, now: dt.datetime
    ) -> None:
        """Note that message `ts` in `channel` shows the review; the first one noted stays."""
        for what, value in (("review_id", review_id), ("channel", channel), ("ts", ts)):
            ns.check_text(what, value)
        row = (review_id, channel, ts, sql.aware(now))

        async def write(conn: sql.Conn) -> None:
            await conn.execute(ns.ADD_MESSAGE, row)

        await self._read(write)

    async def slack_messages(self, review_id: str) -> dict[str, str]:
        """The messages noted for the review: channel -> ts, in the order they were noted."""

        async def read(conn: sql.Conn) -> dict[str, str]:
            cur = await conn.execute(ns.SELECT_MESSAGES, (review_id,))
            return {str(c): str(t) for c, t in await cur.fetchall()}

        return await self._read(read)  # type: ignore[no-any-return]

    async def forget_slack_messages(self, review_id: str) -> None:
        """Drop the messages noted for the review (it is settled: nothing will change)."""

        async def write(conn: sql.Conn) -> None:
            await conn.execute(ns.FORGET_MESSAGES, (review_id,))

        await self._read(write)

    async def use_nonces(
        self, keys: Sequence[ns.NonceKey], expires_at: dt.datetime, now: dt.datetime
    ) -> bool:
        """True if none of `keys` is in use at `now`; all are then in use until `expires_at`."""
        unique = ns.check_keys(keys)
        kinds, nonces = [k for k, _ in unique], [n for _, n in unique]
        args = (sql.aware(expires_at), kinds, nonces, sql.aware(now))

        async def write(conn: sql.Conn) -> bool:
            cur = await conn.execute(ns.USE_NONCES_PG, args)
            return len(await cur.fetchall()) == len(unique)

        return await self._read(write)  # type: ignore[no-any-return]

    async def sweep_notify_state(self, now: dt.datetime, settled_before: dt.datetime) -> int:
        """Drop keys expired at `now`, and messages of settled reviews noted before
        `settled_before`; return how many rows went."""

        async def write(conn: sql.Conn) -> int:
            gone = (await conn.execute(ns.SWEEP_NONCES, (sql.aware(now),))).rowcount
            cur = await conn.execute(ns.SWEEP_MESSAGES, (sql.aware(settled_before),))
            return max(gone, 0) + max(cur.rowcount, 0)

        return await self._read(write)  # type: ignore[no-any-return]
