"""What the Slack and e-mail approvals must share across processes, in either backend: the
Protocol part of `Store`, and SQL written once for both (`%s`; `for_sqlite` for SQLite).

Two tables (migrations sqlite/0008, postgres/0004), no part of the audit chain:

* ``slack_messages``: which Slack message (channel, ts) shows which review. Written when a
  message is posted (or a button on it is pressed), read by whichever process publishes a
  change of the review -- under `serve --workers`, on replicas, after a restart.
* ``used_nonces``: single-use keys until they expire -- e-mail link nonces, Slack request
  signatures and trigger ids. `use_nonces` is one conditional insert: of two processes
  racing with one key, exactly one is told it is the first.

Rows are small and rare (a review opening, a button press, a link followed), and nothing on
the decision path reads or writes them. `sweep_notify_state` drops used keys once expired
and the messages of settled reviews.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

# A key: (kind, nonce), e.g. ("email.link", nonce) or ("slack.trigger", digest).
NonceKey = tuple[str, str]
# Bounds of what is stored: ours (review ids, nonces) and Slack's (channel ids, ts, digests)
# are far shorter; anything longer is refused before it reaches the database.
MAX_KEY_CHARS = 128
MAX_KEYS = 8

ADD_MESSAGE = (
    "INSERT INTO slack_messages (review_id, channel, ts, posted_at) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (review_id, channel) DO NOTHING"
)
SELECT_MESSAGES = (
    "SELECT channel, ts FROM slack_messages WHERE review_id = %s ORDER BY posted_at, channel"
)
FORGET_MESSAGES = "DELETE FROM slack_messages WHERE review_id = %s"
# A key counts as unused when absent or expired; an expired row is taken over in place, so
# nothing depends on the sweep having run. ON CONFLICT settles a race in the database: the
# loser's statement sees the winner's row (committed, unexpired) and returns nothing.
_UPSERT = (
    "ON CONFLICT (kind, nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at "
    "WHERE used_nonces.expires_at <= %s RETURNING nonce"
)
USE_NONCE = f"INSERT INTO used_nonces (kind, nonce, expires_at) VALUES (%s, %s, %s) {_UPSERT}"
USE_NONCES_PG = (
    "INSERT INTO used_nonces (kind, nonce, expires_at) "
    f"SELECT k, n, %s FROM unnest(%s::text[], %s::text[]) AS t(k, n) {_UPSERT}"
)
SWEEP_NONCES = "DELETE FROM used_nonces WHERE expires_at <= %s"
# Messages of reviews settled (or never stored) and posted before the bound: the bound
# leaves time to the process that posted a message just as another one settled its review
# (slack_app.py re-reads the review after posting, and updates the message once more).
SWEEP_MESSAGES = (
    "DELETE FROM slack_messages WHERE posted_at < %s AND NOT EXISTS (SELECT 1 FROM reviews "
    "WHERE reviews.review_id = slack_messages.review_id AND reviews.state = 'PENDING')"
)


def check_keys(keys: Sequence[NonceKey]) -> list[NonceKey]:
    """The keys without repeats, in order; ValueError for none, too many or too long."""
    unique = list(dict.fromkeys(keys))
    if not unique or len(unique) > MAX_KEYS:
        raise ValueError(f"use_nonces takes 1 to {MAX_KEYS} keys, not {len(unique)}")
    for kind, nonce in unique:
        check_text("nonce kind", kind)
        check_text("nonce", nonce)
    return unique


def check_text(what: str, value: str) -> None:
    """ValueError for an empty value or one over MAX_KEY_CHARS."""
    if not value or len(value) > MAX_KEY_CHARS:
        raise ValueError(f"{what}: must be 1 to {MAX_KEY_CHARS} characters, not {len(value)}")


class NotifyState(Protocol):
    """Shared state of the Slack and e-mail approvals (part of `Store`)."""

    async def add_slack_message(
        self, review_id: str, channel: str, ts: str, now: dt.datetime
    ) -> None:
        """Note that message `ts` in `channel` shows the review; the first one noted stays."""
        ...

    async def slack_messages(self, review_id: str) -> dict[str, str]:
        """The messages noted for the review: channel -> ts, in the order they were noted."""
        ...

    async def forget_slack_messages(self, review_id: str) -> None:
        """Drop the messages noted for the review (it is settled: nothing will change)."""
        ...

    async def use_nonces(
        self, keys: Sequence[NonceKey], expires_at: dt.datetime, now: dt.datetime
    ) -> bool:
        """True if none of `keys` is in use at `now`; all are then in use until `expires_at`."""
        # Atomic, across processes and replicas: of concurrent calls sharing a key, exactly
        # one returns True. A False call still records its new keys (it was a replay).
        ...

    async def sweep_notify_state(self, now: dt.datetime, settled_before: dt.datetime) -> int:
        """Drop keys expired at `now`, and messages of settled reviews noted before
        `settled_before`; return how many rows went."""
        ...
