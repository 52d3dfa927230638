-- 0004: what the reviewer console reads -- the backlog of each group and the precedents of a
-- review. Both are partial indexes: a row is in at most one of them, and only while (or once)
-- it is of interest, so they stay as small as the pending backlog and the decided history.

-- Per group: count, oldest created_at and earliest expires_at of the pending reviews, read
-- from the index alone in group order (GROUP BY without a sort, no table rows).
CREATE INDEX reviews_pending_backlog ON reviews (reviewer_group, created_at, expires_at)
    WHERE state = 'PENDING';

-- The latest decided reviews of one action, newest resolution first. A resolved review is
-- immutable, so its updated_at is its resolution time; CANCELLED ones were withdrawn, not
-- decided, and stay out.
CREATE INDEX reviews_decided_action ON reviews (action_name, updated_at, review_id)
    WHERE state IN ('APPROVED', 'MODIFIED', 'REJECTED', 'EXPIRED');
