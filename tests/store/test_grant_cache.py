"""The standing-approval cache over a real store: what it reuses, and what it must not."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from signoff import pb
from signoff.app.grants import desk as grant_app
from signoff.app.grants.cache import ActiveGrants
from signoff.store import Store
from signoff.store.grants_sql import GrantRecord

from .reviews import T0, change_audit, changed, open_review

KEY = ("refund.issue", "finance", "refunds", "over-threshold")


async def grant(store: Store, n: int, expires: dt.datetime, **columns: Any) -> GrantRecord:
    """Approve review `rev-n` with a standing approval `g-n` expiring at `expires`, its
    grant.created entry recording it as the server does (`columns` then differ in the row)."""
    r = await open_review(store, n)
    record = GrantRecord(
        grant_id=f"g-{n}",
        reviewer_group="finance",
        action_name="refund.issue",
        policy="refunds",
        rule="over-threshold",
        principal_id="",
        max_uses=5,
        uses=0,
        created_by="alice",
        created_at=T0,
        expires_at=expires,
        revoked_at=None,
        revoked_by="",
        grant=pb.review.Grant(grant_id=f"g-{n}", review_id=r.review_id).SerializeToString(),
    )
    created = grant_app._audit("grant.created", "alice", T0, record, {"review_id": r.review_id})
    record = dataclasses.replace(record, **columns)
    new = changed(r)
    await store.update_review(new, r.version, [change_audit(new), created], record)
    return record


async def test_a_read_is_reused_within_its_ttl_and_read_afresh_after_a_clear(
    store: Store,
) -> None:
    cache = ActiveGrants(store, ttl=3600)
    assert await cache.get(*KEY, T0) == []
    await grant(store, 1, T0 + dt.timedelta(hours=1))
    # Another process's grant: this process sees it only after the ttl or a clear.
    assert await cache.get(*KEY, T0) == []
    cache.clear()
    assert [g.grant_id for g in await cache.get(*KEY, T0)] == ["g-1"]


async def test_a_cached_grant_is_not_returned_past_its_expiry(store: Store) -> None:
    cache = ActiveGrants(store, ttl=3600)
    await grant(store, 1, T0 + dt.timedelta(minutes=5))
    assert [g.grant_id for g in await cache.get(*KEY, T0)] == ["g-1"]
    assert await cache.get(*KEY, T0 + dt.timedelta(minutes=5)) == []


async def test_ttl_zero_reads_the_store_every_time(store: Store) -> None:
    cache = ActiveGrants(store, ttl=0)
    assert await cache.get(*KEY, T0) == []
    await grant(store, 1, T0 + dt.timedelta(hours=1))
    assert [g.grant_id for g in await cache.get(*KEY, T0)] == ["g-1"]


async def test_reads_are_kept_per_action_group_and_rule(store: Store) -> None:
    cache = ActiveGrants(store, ttl=3600)
    await grant(store, 1, T0 + dt.timedelta(hours=1))
    assert await cache.get("refund.issue", "finance", "refunds", "other-rule", T0) == []
    assert [g.grant_id for g in await cache.get(*KEY, T0)] == ["g-1"]


async def test_a_grant_row_that_disagrees_with_its_entry_is_left_out(store: Store) -> None:
    # As if max_uses had been raised in the database after the grant was made: the row is
    # read, found to differ from its grant.created entry, and never offered to a decision.
    await grant(store, 1, T0 + dt.timedelta(hours=1), max_uses=500)
    await grant(store, 2, T0 + dt.timedelta(hours=1))
    cache = ActiveGrants(store, ttl=0)
    assert [g.grant_id for g in await cache.get(*KEY, T0)] == ["g-2"]
