-- 0002 (PostgreSQL): what the reviewer console reads -- the backlog of each group and the
-- precedents of a review; the same indexes as sqlite/0004. Built inside the migration's
-- transaction (not CONCURRENTLY), so review writes wait while they build: a few seconds for
-- millions of resolved reviews, once.

-- Per group: count, oldest created_at and earliest expires_at of the pending reviews, from
-- the index in group order.
CREATE INDEX reviews_pending_backlog ON reviews (reviewer_group, created_at, expires_at)
    WHERE state = 'PENDING';

-- The latest decided reviews of one action, newest resolution first. A resolved review is
-- immutable, so its updated_at is its resolution time; CANCELLED ones were withdrawn, not
-- decided, and stay out.
CREATE INDEX reviews_decided_action ON reviews (action_name, updated_at, review_id)
    WHERE state IN ('APPROVED', 'MODIFIED', 'REJECTED', 'EXPIRED');
