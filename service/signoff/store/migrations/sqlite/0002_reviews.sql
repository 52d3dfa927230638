-- 0002: human reviews. One per REQUIRE_REVIEW decision, written in the decision's transaction,
-- changed only by conditional updates (WHERE version = ?), immutable once resolved.
-- Times are RFC 3339 UTC strings with microseconds and 'Z', so text order is time order.

CREATE TABLE reviews (
    review_id      TEXT PRIMARY KEY,
    decision_id    TEXT NOT NULL UNIQUE REFERENCES decisions (decision_id),
    principal_id   TEXT NOT NULL,
    on_behalf_of   TEXT NOT NULL,
    action_name    TEXT NOT NULL,
    reviewer_group TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (
        state IN ('PENDING', 'APPROVED', 'MODIFIED', 'REJECTED', 'EXPIRED', 'CANCELLED')),
    version        INTEGER NOT NULL CHECK (version >= 1),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    expires_at     TEXT,           -- NULL = never expires
    review         BLOB NOT NULL   -- serialized signoff.v1.Review; opaque to the store
);

-- Every index ends in (created_at, review_id), the listing order, so a page filtered by one
-- state and one group is read in order straight from the index and the cursor is a range
-- start, not an OFFSET. Several groups or states make SQLite sort the matching rows: bounded
-- by the pending backlog, which is what reviewers list.
CREATE INDEX reviews_state_group ON reviews (state, reviewer_group, created_at, review_id);
CREATE INDEX reviews_principal ON reviews (principal_id, created_at, review_id);
CREATE INDEX reviews_created ON reviews (created_at, review_id);
-- The expiry sweep only ever looks at pending reviews; resolved ones leave this index.
CREATE INDEX reviews_pending_expiry ON reviews (expires_at, review_id)
    WHERE state = 'PENDING';

-- Resolved reviews are immutable, and a review's identity never changes, whatever code path
-- writes: the store's conditional update is the only intended writer, these are the backstop.
CREATE TRIGGER reviews_resolved_immutable BEFORE UPDATE ON reviews
WHEN OLD.state <> 'PENDING'
BEGIN
    SELECT RAISE(ABORT, 'review is resolved and immutable: UPDATE refused');
END;

CREATE TRIGGER reviews_identity_fixed BEFORE UPDATE ON reviews
WHEN NEW.review_id IS NOT OLD.review_id
  OR NEW.decision_id IS NOT OLD.decision_id
  OR NEW.principal_id IS NOT OLD.principal_id
  OR NEW.on_behalf_of IS NOT OLD.on_behalf_of
  OR NEW.action_name IS NOT OLD.action_name
  OR NEW.created_at IS NOT OLD.created_at
BEGIN
    SELECT RAISE(ABORT, 'review identity columns are fixed: UPDATE refused');
END;

-- Every change is one version step, so a reviewer's "I saw version N" means exactly one state.
CREATE TRIGGER reviews_version_step BEFORE UPDATE ON reviews
WHEN NEW.version <> OLD.version + 1
BEGIN
    SELECT RAISE(ABORT, 'review version must grow by exactly 1: UPDATE refused');
END;

CREATE TRIGGER reviews_no_delete BEFORE DELETE ON reviews
BEGIN
    SELECT RAISE(ABORT, 'reviews are never deleted: DELETE refused');
END;
