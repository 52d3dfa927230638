"""The standing-approval cache over a real store: what it reuses, and what it must not."""

from __future__ import annotations

import datetime as dt

from signoff.grant_cache import ActiveGrants
from signoff.store import Store
from signoff.store.grants_sql import GrantRecord

from .reviews import T0, change_audit, changed, open_review

KEY = ("refund.issue", "finance", "refunds", "over-threshold")


async def grant(store: Store, n: int, expires: dt.datetime) -> GrantRecord:
    """Approve review `rev-n` with a standing approval `g-n` expiring at `expires`."""
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
        grant=b"",
    )
    new = changed(r)
    await store.update_review(new, r.version, [change_audit(new)], record)
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
